# cmake -DPROGRAM=path -DNAME=shmstats-collector -DSUMMARY="..." -DDATE=YYYY-MM -DOUT=x.1
#       -P man_page.cmake
# A short man page made from the binary's --help and --version, so it never disagrees with them.
execute_process(COMMAND ${PROGRAM} --help OUTPUT_VARIABLE help RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${PROGRAM} --help failed: ${rc}")
endif()
execute_process(COMMAND ${PROGRAM} --version OUTPUT_VARIABLE version RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${PROGRAM} --version failed: ${rc}")
endif()
# roff: a backslash is written \e; a line starting with '.' or '\'' would be a request.
foreach(var help version)
  string(REPLACE "\\" "\\e" ${var} "${${var}}")
  string(REGEX REPLACE "(^|\n)([.'])" "\\1\\\\&\\2" ${var} "${${var}}")
endforeach()
string(REGEX MATCH "^[^\n]*" first_version_line "${version}")
string(REPLACE "${NAME} " "" project_version "${first_version_line}")
string(TOUPPER "${NAME}" title)
file(WRITE ${OUT}
".TH ${title} 1 \"${DATE}\" \"shmstats ${project_version}\" \"User Commands\"
.SH NAME
${NAME} \\- ${SUMMARY}
.SH SYNOPSIS
.B ${NAME}
[\\fIOPTIONS\\fR]
.SH DESCRIPTION
The text of \\fB${NAME} \\-\\-help\\fR:
.PP
.nf
${help}
.fi
.SH VERSION
.nf
${version}
.fi
.SH SEE ALSO
shmstats-collector(1), shmstats-recv(1), shm-dump(1), shmstats-loadgen(1);
/usr/share/doc/shmstats (README.md, docs/TUNING.md, docs/TROUBLESHOOTING.md in the sources).
")
