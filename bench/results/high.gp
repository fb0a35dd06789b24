# Plot of high.tsv: gnuplot high.gp writes high.png (columns: see the header of high.tsv).
set terminal pngcairo size 1100,1000 font ",10"
set output "high.png"
set datafile separator "\t"
set datafile missing "NaN"
set multiplot layout 3,1 title "shmstats scenario high: 100 k events/s for 60 s (2 x 2 threads)"
set grid
set key outside right top
set xlabel "seconds"
set ylabel "events/s"
set format y "%.1s%c"
plot "high.tsv" using 1:2 with lines lw 2 title "offered", \
     "" using 1:3 with lines lw 2 title "delivered", \
     "" using 1:4 with lines lw 2 title "dropped", \
     "" using 1:5 with lines lw 1 title "folded"
set ylabel "latency, ms"
set format y "%g"
set logscale y
plot "high.tsv" using 1:6 with linespoints pt 7 ps 0.5 title "p50", \
     "" using 1:7 with linespoints pt 7 ps 0.5 title "p99"
unset logscale y
set ylabel "percent"
set yrange [0:*]
plot "high.tsv" using 1:($8*100) with lines lw 2 title "max ring fill", \
     "" using 1:10 with lines lw 2 title "collector CPU", \
     "" using 1:12 with lines lw 1 title "producers CPU"
unset multiplot
