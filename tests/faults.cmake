# Allocation-failure sweep (issue 10): test-faults links loom_static with
# the allocator wrapped, so its __wrap_ functions can fail the k-th
# allocation of loom's code; libuv's allocations reach the same hook
# through uv_replace_allocator. Under LOOM_TEST_WRAPPER (Valgrind in CI)
# this still works: __real_malloc is the C library's malloc, which
# Valgrind replaces, so memcheck sees every block.
add_executable(test-faults test-faults.c)
target_include_directories(test-faults PRIVATE ${CMOCKA_INCLUDE}
                           ${PROJECT_SOURCE_DIR}/src)
target_link_libraries(test-faults PRIVATE loom_static ${CMOCKA_LIB})
target_compile_definitions(test-faults PRIVATE ${LOOM_FIBER_DEFS})
target_link_options(test-faults PRIVATE
                    -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=free)
loom_add_test(faults $<TARGET_FILE:test-faults>)
