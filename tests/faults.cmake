# Allocation-failure sweep (issue 10): test-faults fails the k-th
# allocation of loom's code through the counting allocator's hooks
# (harness-alloc.c, which every test program links); libuv's allocations
# reach the same hooks through uv_replace_allocator. Under LOOM_TEST_WRAPPER
# (Valgrind in CI) this still works: __real_malloc is the C library's
# malloc, which Valgrind replaces, so memcheck sees every block.
loom_test_program(faults)
loom_add_test(faults $<TARGET_FILE:test-faults>)
# HTTP transfers are swept too when the client is built.
if(LOOM_WITH_CURL)
  target_compile_definitions(test-faults PRIVATE LOOM_TEST_CURL)
  target_link_libraries(test-faults PRIVATE loom_http_static)
endif()

# Its TLS scenarios in TLS builds: they make their certificate with
# OpenSSL (tls-keys.h). (test-io-sweep's are set in CMakeLists.txt.)
if(LOOM_WITH_TLS)
  target_link_libraries(test-faults PRIVATE loom_tls_static PkgConfig::OPENSSL)
  target_compile_definitions(test-faults PRIVATE LOOM_WITH_TLS)
endif()
