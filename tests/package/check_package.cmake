# Installs the build into a scratch prefix and builds and runs a consumer with find_package.
set(prefix ${BUILD_DIR}/package-test/prefix)
file(REMOVE_RECURSE ${BUILD_DIR}/package-test)
foreach(step
    "${CMAKE_COMMAND};--install;${BUILD_DIR};--prefix;${prefix}"
    "${CMAKE_COMMAND};-S;${SOURCE_DIR}/tests/package/consumer;-B;${BUILD_DIR}/package-test/build;-G;Ninja;-DCMAKE_PREFIX_PATH=${prefix};-DCMAKE_CXX_FLAGS=${CXX_FLAGS}"
    "${CMAKE_COMMAND};--build;${BUILD_DIR}/package-test/build"
    "${BUILD_DIR}/package-test/build/consumer")
  execute_process(COMMAND ${step} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "package test step failed (${rc}): ${step}\n${out}\n${err}")
  endif()
endforeach()
message(STATUS "${out}")
