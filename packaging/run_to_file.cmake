# cmake -DPROGRAM=... -DARGS="a;b" -DOUT=file -P run_to_file.cmake: runs PROGRAM ARGS with stdout
# in OUT, failing the build if it fails (the example configuration is the collector's own output).
execute_process(COMMAND ${PROGRAM} ${ARGS} OUTPUT_FILE ${OUT}.tmp RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  file(REMOVE ${OUT}.tmp)
  message(FATAL_ERROR "${PROGRAM} ${ARGS} failed: ${rc}")
endif()
file(RENAME ${OUT}.tmp ${OUT})
