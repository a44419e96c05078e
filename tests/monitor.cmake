# The monitor (src/io/monitor.c) and the gdb helper (tools/loom-gdb.py),
# included by tests/CMakeLists.txt.

# gdb on a program stopped with tasks parked (tests/test-gdb.sh); SKIPPED
# without gdb. Not under LOOM_TEST_WRAPPER: gdb runs the program itself.
add_executable(test-gdb test-gdb.c)
target_link_libraries(test-gdb PRIVATE loom::loom)
target_compile_options(test-gdb PRIVATE -g -O1 -fno-omit-frame-pointer)
loom_target_warnings(test-gdb)
# Under the sanitizers, no core file (gcore would write their shadow
# memory).
if(LOOM_SANITIZE OR LOOM_TSAN)
  set(gdb_core nocore)
else()
  set(gdb_core core)
endif()
if(LOOM_SANITIZE AND LOOM_FIBER_BACKEND STREQUAL "ucontext")
  set(gdb_parksite noparksite) # test-gdb.sh says why
else()
  set(gdb_parksite parksite)
endif()
add_test(NAME gdb COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/test-gdb.sh
         ${PROJECT_SOURCE_DIR} $<TARGET_FILE:test-gdb> ${gdb_core} ${gdb_parksite})
set_tests_properties(gdb PROPERTIES SKIP_REGULAR_EXPRESSION "SKIPPED: " TIMEOUT 120)

# The monitor's commands, bad commands, clients going away, stop/start,
# paths (tests/test-monitor.c).
# Runtimes with monitors on several threads: under ThreadSanitizer too.
loom_test_program(monitor)
loom_add_test(monitor $<TARGET_FILE:test-monitor>)
set_tests_properties(monitor PROPERTIES LABELS threads)

# examples/monitor.c driven by tools/loom-monitor: ps, cancel by id, a bad
# command, SIGINT (tests/run-monitor-example.sh).
if(TARGET example-monitor AND TARGET loom-monitor)
  add_test(NAME example-monitor COMMAND sh ${LOOM_EXAMPLE_CHECK}
           ${LOOM_EXAMPLE_EXPECTED}/monitor.txt --
           sh ${CMAKE_CURRENT_SOURCE_DIR}/run-monitor-example.sh
           $<TARGET_FILE:loom-monitor> ${LOOM_TEST_WRAPPER}
           $<TARGET_FILE:example-monitor>)
  set_tests_properties(example-monitor PROPERTIES TIMEOUT 300)
endif()
