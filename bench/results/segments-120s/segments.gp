# Plot of segments.tsv: gnuplot segments.gp writes segments.png (columns: see the header of segments.tsv).
set terminal pngcairo size 1100,1000 font ",10"
set output "segments.png"
set datafile separator "\t"
set datafile missing "NaN"
set multiplot layout 3,1 title "shmstats scenario segments: 64 producer processes at 100 events/s each for 20 s (collector memory with 64 segments) (64 x 1 threads, scale 6)"
set grid
set key outside right top
set xlabel "seconds"
set ylabel "events/s"
set format y "%.1s%c"
plot "segments.tsv" using 1:2 with lines lw 2 title "offered", \
     "" using 1:3 with lines lw 2 title "delivered", \
     "" using 1:4 with lines lw 2 title "dropped", \
     "" using 1:5 with lines lw 1 title "folded"
set ylabel "latency, ms"
set format y "%g"
set logscale y
plot "segments.tsv" using 1:6 with linespoints pt 7 ps 0.5 title "p50", \
     "" using 1:7 with linespoints pt 7 ps 0.5 title "p99"
unset logscale y
set ylabel "percent"
set yrange [0:*]
plot "segments.tsv" using 1:($8*100) with lines lw 2 title "max ring fill", \
     "" using 1:10 with lines lw 2 title "collector CPU", \
     "" using 1:12 with lines lw 1 title "producers CPU"
unset multiplot
