# Runs the memento CLI and checks what a user sees: the exit status, the output, and the files
# left in an output directory.
#   -DCOMMAND="exe|arg|arg"   the command, arguments separated by |
#   -DEXPECT=success|failure  the exit status wanted (failure: non-zero)
#   -DREGEX=...               what stdout + stderr must match
#   -DOUT_DIR=dir             with EXPECT=failure: no results.json may be there; with success:
#   -DFILES="a|b"             these files must be there
string(REPLACE "|" ";" command "${COMMAND}")
if(DEFINED OUT_DIR)
  file(REMOVE_RECURSE "${OUT_DIR}")
endif()
execute_process(COMMAND ${command} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
set(all "${out}${err}")
if(EXPECT STREQUAL "success" AND NOT rc EQUAL 0)
  message(FATAL_ERROR "exit status ${rc}, wanted 0:\n${all}")
elseif(EXPECT STREQUAL "failure" AND rc EQUAL 0)
  message(FATAL_ERROR "exit status 0, wanted an error:\n${all}")
endif()
if(DEFINED REGEX AND NOT all MATCHES "${REGEX}")
  message(FATAL_ERROR "the output does not match \"${REGEX}\":\n${all}")
endif()
if(DEFINED OUT_DIR AND EXPECT STREQUAL "failure" AND EXISTS "${OUT_DIR}/results.json")
  message(FATAL_ERROR "a failed run left ${OUT_DIR}/results.json behind")
endif()
if(DEFINED FILES)
  string(REPLACE "|" ";" files "${FILES}")
  foreach(f IN LISTS files)
    if(NOT EXISTS "${OUT_DIR}/${f}")
      message(FATAL_ERROR "${OUT_DIR}/${f} was not written:\n${all}")
    endif()
  endforeach()
endif()
message(STATUS "${all}")
