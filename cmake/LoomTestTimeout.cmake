# loom_default_test_timeout(): gives every test of the calling directory
# that has no TIMEOUT of its own a bound (LOOM_TEST_TIMEOUT seconds), so
# that a test that hangs fails with its name in the log instead of holding
# the whole run for ctest's default 1,500 s. Tests are scoped to their
# directory (before CMake 3.28), hence one call at the end of each.
set(LOOM_TEST_TIMEOUT 600 CACHE STRING
  "Seconds a test may run before ctest stops it (tests without their own)")

function(loom_default_test_timeout)
  get_property(tests DIRECTORY PROPERTY TESTS)
  foreach(t IN LISTS tests)
    get_test_property(${t} TIMEOUT timeout)
    if(NOT timeout)
      set_tests_properties(${t} PROPERTIES TIMEOUT ${LOOM_TEST_TIMEOUT})
    endif()
  endforeach()
endfunction()
