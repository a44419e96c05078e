# The example programs, run and checked: tests/check-example.sh runs each
# binary (under LOOM_TEST_WRAPPER, e.g. valgrind, when set) and matches its
# stdout line by line against examples/expected/<test>.txt, one extended
# regex per line. Timings are checked with tolerant regexes that still fail
# when tasks that should overlap run one after the other.
#
# loom_example_test(NAME name EXAMPLE example [STATUS n] [ARGS args...])
#   registers the test example-<name>, expecting examples/expected/<name>.txt
#   and exit status n (default 0).
set(LOOM_EXAMPLE_CHECK ${CMAKE_CURRENT_SOURCE_DIR}/check-example.sh)
set(LOOM_EXAMPLE_EXPECTED ${PROJECT_SOURCE_DIR}/examples/expected)

function(loom_example_test)
  cmake_parse_arguments(arg "" "NAME;EXAMPLE;STATUS" "ARGS" ${ARGN})
  if(NOT DEFINED arg_STATUS)
    set(arg_STATUS 0)
  endif()
  # The wrapper goes inside the checker's command, not in front of sh: it is
  # the example that valgrind must watch.
  add_test(NAME example-${arg_NAME}
    COMMAND sh ${LOOM_EXAMPLE_CHECK} --status ${arg_STATUS}
            ${LOOM_EXAMPLE_EXPECTED}/${arg_NAME}.txt --
            ${LOOM_TEST_WRAPPER} $<TARGET_FILE:example-${arg_EXAMPLE}> ${arg_ARGS})
  # Generous: under valgrind, spawning 10,000 tasks takes a while.
  set_tests_properties(example-${arg_NAME} PROPERTIES TIMEOUT 300)
endfunction()

loom_example_test(NAME hello EXAMPLE hello)
loom_example_test(NAME tasks EXAMPLE tasks)
loom_example_test(NAME sleep_sort EXAMPLE sleep_sort)
loom_example_test(NAME sleep_sort-args EXAMPLE sleep_sort ARGS 5 3 9 1 3 0 10 2)
loom_example_test(NAME sleep_sort-many EXAMPLE sleep_sort ARGS --many 10000)
loom_example_test(NAME sleep_sort-usage EXAMPLE sleep_sort STATUS 2 ARGS 5 x)
loom_example_test(NAME embed EXAMPLE embed)
loom_example_test(NAME gather EXAMPLE gather)
loom_example_test(NAME gather_errors EXAMPLE gather_errors)
loom_example_test(NAME wait EXAMPLE wait)
loom_example_test(NAME as_completed EXAMPLE as_completed)
loom_example_test(NAME wait_for EXAMPLE wait_for)
loom_example_test(NAME task_group EXAMPLE task_group)
loom_example_test(NAME producer_consumer EXAMPLE producer_consumer)
loom_example_test(NAME semaphore_limit EXAMPLE semaphore_limit)
loom_example_test(NAME lock EXAMPLE lock)
