# The example programs, run and checked: tests/check-example.sh runs each
# binary (under LOOM_TEST_WRAPPER, e.g. valgrind, when set) and matches its
# stdout line by line against examples/expected/<test>.txt, one extended
# regex per line. Timings are checked with tolerant regexes that still fail
# when tasks that should overlap run one after the other.
#
# loom_example_test(NAME name EXAMPLE example [STATUS n] [HTTP_SERVER]
#                   [CLIENT kind] [ARGS args...])
#   registers the test example-<name>, expecting examples/expected/<name>.txt
#   and exit status n (default 0).
#   HTTP_SERVER: the test runs next to a local HTTP server (Python's
#     http.server on 127.0.0.1, run-with-http-server.sh); @PORT@ in ARGS
#     becomes its port, @DEADPORT@ a port where connections are refused.
#   CLIENT kind: the example is a server in its serving mode (ARGS 0: a free
#     port); run-server-example.sh has a client of that kind visit it, then
#     stops it with SIGINT, and the output checked is the script's.
#   Both need Python 3 (LOOM_TEST_PYTHON, /usr/bin/python3 preferred):
#   without it, such tests are not registered.
set(LOOM_EXAMPLE_CHECK ${CMAKE_CURRENT_SOURCE_DIR}/check-example.sh)
set(LOOM_EXAMPLE_EXPECTED ${PROJECT_SOURCE_DIR}/examples/expected)
find_program(LOOM_TEST_PYTHON python3 HINTS /usr/bin
             DOC "Python 3 for the network example tests (plain, no packages)")
if(NOT LOOM_TEST_PYTHON)
  message(STATUS "python3 not found: the network example tests that need a "
                 "local HTTP server or client are left out")
endif()

function(loom_example_test)
  cmake_parse_arguments(arg "HTTP_SERVER" "NAME;EXAMPLE;STATUS;CLIENT" "ARGS" ${ARGN})
  if(NOT DEFINED arg_STATUS)
    set(arg_STATUS 0)
  endif()
  set(needs_python OFF)
  if(arg_HTTP_SERVER OR DEFINED arg_CLIENT)
    set(needs_python ON)
    if(NOT LOOM_TEST_PYTHON)
      return()
    endif()
  endif()
  # The wrapper goes inside the checker's command, not in front of sh: it is
  # the example that valgrind must watch.
  set(run ${LOOM_TEST_WRAPPER} $<TARGET_FILE:example-${arg_EXAMPLE}> ${arg_ARGS})
  if(DEFINED arg_CLIENT)
    set(run sh ${CMAKE_CURRENT_SOURCE_DIR}/run-server-example.sh ${arg_CLIENT} ${run})
  endif()
  set(cmd sh ${LOOM_EXAMPLE_CHECK} --status ${arg_STATUS}
          ${LOOM_EXAMPLE_EXPECTED}/${arg_NAME}.txt -- ${run})
  if(arg_HTTP_SERVER)
    set(cmd sh ${CMAKE_CURRENT_SOURCE_DIR}/run-with-http-server.sh ${cmd})
  endif()
  add_test(NAME example-${arg_NAME} COMMAND ${cmd})
  # Generous: under valgrind, spawning 10,000 tasks takes a while. This is
  # also what bounds a server example that hangs.
  set_tests_properties(example-${arg_NAME} PROPERTIES TIMEOUT 300)
  if(needs_python)
    set_tests_properties(example-${arg_NAME} PROPERTIES
      ENVIRONMENT "LOOM_PYTHON=${LOOM_TEST_PYTHON}" SKIP_RETURN_CODE 77)
  endif()
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
loom_example_test(NAME to_thread EXAMPLE to_thread)
loom_example_test(NAME run_in_executor EXAMPLE run_in_executor)
loom_example_test(NAME future EXAMPLE future)
loom_example_test(NAME threadsafe EXAMPLE threadsafe)

# Networking: 127.0.0.1 and ports the kernel picks (port 0) only.
loom_example_test(NAME echo_server-selftest EXAMPLE echo_server ARGS --selftest)
loom_example_test(NAME echo_server-serve EXAMPLE echo_server CLIENT echo ARGS 0)
# N runtimes on N threads sharing one port (SO_REUSEPORT); threaded, so
# also run under ThreadSanitizer (the `threads` label).
loom_example_test(NAME multicore_echo-selftest EXAMPLE multicore_echo ARGS --selftest 3)
loom_example_test(NAME multicore_echo-serve EXAMPLE multicore_echo CLIENT echo ARGS 0 2)
foreach(t multicore_echo-selftest multicore_echo-serve)
  if(TEST example-${t})
    set_tests_properties(example-${t} PROPERTIES LABELS threads)
  endif()
endforeach()
loom_example_test(NAME pizza_server-selftest EXAMPLE pizza_server ARGS --selftest)
loom_example_test(NAME pizza_server-serve EXAMPLE pizza_server CLIENT pizza ARGS 0)
loom_example_test(NAME http_head EXAMPLE http_head ARGS --selftest)
loom_example_test(NAME http_head-python EXAMPLE http_head HTTP_SERVER
                  ARGS http://127.0.0.1:@PORT@/hello.txt)
loom_example_test(NAME http_get EXAMPLE http_get STATUS 1 HTTP_SERVER
                  ARGS http://127.0.0.1:@PORT@/hello.txt
                       http://127.0.0.1:@DEADPORT@/
                       http://127.0.0.1:@PORT@/big.bin
                       http://127.0.0.1:@PORT@/chunked
                       http://127.0.0.1:@PORT@/missing.txt)
loom_example_test(NAME http_get-bad_urls EXAMPLE http_get STATUS 1
                  ARGS https://example.com/ ftp://example.com/ http://:80/)
loom_example_test(NAME udp_echo EXAMPLE udp_echo)
loom_example_test(NAME http_hello-selftest EXAMPLE http_hello ARGS --selftest)
loom_example_test(NAME mini_redis-selftest EXAMPLE mini_redis ARGS --selftest)

# Subprocesses: /bin/sh scripts, and process_pool running itself as its
# workers.
loom_example_test(NAME subprocess_lines EXAMPLE subprocess_lines)
loom_example_test(NAME subprocess_lines-timeout EXAMPLE subprocess_lines STATUS 1
                  ARGS -t 2000 /bin/sh -c "echo started && exec sleep 30")
loom_example_test(NAME subprocess_lines-missing EXAMPLE subprocess_lines STATUS 127
                  ARGS no-such-program-loom)
loom_example_test(NAME process_pool EXAMPLE process_pool ARGS -j 2)
loom_example_test(NAME process_pool-one EXAMPLE process_pool ARGS -j 1)

# graceful_shutdown: a request in flight when SIGTERM (a supervisor's stop)
# or SIGINT (Ctrl-C) arrives still gets its answer, and the server exits 0
# (run-graceful-shutdown.sh sends the signal mid-request); a second SIGTERM
# during the grace period cuts the request short, exit status 1.
if(LOOM_TEST_PYTHON)
  foreach(case TERM INT twice)
    set(sig ${case})
    set(status 0)
    if(case STREQUAL "twice")
      set(sig TERM,TERM)
      set(status 1)
    endif()
    add_test(NAME example-graceful_shutdown-${case}
      COMMAND sh ${LOOM_EXAMPLE_CHECK} --status ${status}
              ${LOOM_EXAMPLE_EXPECTED}/graceful_shutdown-${case}.txt
              -- sh ${CMAKE_CURRENT_SOURCE_DIR}/run-graceful-shutdown.sh ${sig}
              ${LOOM_TEST_WRAPPER} $<TARGET_FILE:example-graceful_shutdown> 0)
    set_tests_properties(example-graceful_shutdown-${case} PROPERTIES TIMEOUT 300
      ENVIRONMENT "LOOM_PYTHON=${LOOM_TEST_PYTHON}" SKIP_RETURN_CODE 77)
  endforeach()
endif()

# redis_client (built when hiredis is found) against a redis-server that
# run-with-redis.sh starts on a free port; without redis-server the test is
# skipped (77), never passed.
if(TARGET example-redis_client)
  add_test(NAME example-redis_client
    COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/run-with-redis.sh
            sh ${LOOM_EXAMPLE_CHECK} ${LOOM_EXAMPLE_EXPECTED}/redis_client.txt
            -- ${LOOM_TEST_WRAPPER} $<TARGET_FILE:example-redis_client> @PORT@)
  set_tests_properties(example-redis_client PROPERTIES TIMEOUT 300
    ENVIRONMENT "LOOM_REDIS_SKIP_STATUS=77" SKIP_RETURN_CODE 77)
endif()

# Files: temporary directories only, removed by the examples themselves.
loom_example_test(NAME read_files EXAMPLE read_files)
loom_example_test(NAME read_files-missing EXAMPLE read_files STATUS 1
                  ARGS /dev/null /nonexistent/missing)
loom_example_test(NAME write_read_lines EXAMPLE write_read_lines)
loom_example_test(NAME stream_to_file-selftest EXAMPLE stream_to_file ARGS --selftest)
loom_example_test(NAME stream_to_file-python EXAMPLE stream_to_file HTTP_SERVER
                  ARGS http://127.0.0.1:@PORT@/big.bin)
# The HTTP client's examples (built with LOOM_WITH_CURL) against an nginx
# that run-with-nginx.sh starts on free ports with a test CA; without nginx
# the tests are skipped (77), never passed.
function(loom_nginx_example_test name ex status)
  add_test(NAME example-${name}
    COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/run-with-nginx.sh
            sh ${LOOM_EXAMPLE_CHECK} --status ${status}
            ${LOOM_EXAMPLE_EXPECTED}/${name}.txt -- ${ARGN})
  set_tests_properties(example-${name} PROPERTIES TIMEOUT 300
    ENVIRONMENT "LOOM_NGINX_SKIP_STATUS=77" SKIP_RETURN_CODE 77)
endfunction()
if(LOOM_WITH_CURL)
  set(run ${LOOM_TEST_WRAPPER})
  loom_nginx_example_test(https_get https_get 0
    ${run} $<TARGET_FILE:example-https_get> https://localhost:@TLSPORT@/hello.txt @CA@)
  # Without the test CA the system's store does not know the certificate.
  loom_nginx_example_test(https_get-unknown_ca https_get 1
    ${run} $<TARGET_FILE:example-https_get> https://localhost:@TLSPORT@/hello.txt)
  loom_nginx_example_test(fetch_many fetch_many 0
    ${run} $<TARGET_FILE:example-fetch_many> -r 10 http://127.0.0.1:@PORT@/hello.txt)
  loom_nginx_example_test(fetch_many-mixed fetch_many 1
    ${run} $<TARGET_FILE:example-fetch_many> -l 2 http://127.0.0.1:@PORT@/hello.txt
    http://127.0.0.1:@PORT@/no/such/file http://127.0.0.1:@PORT@/redirect/3
    http://127.0.0.1:1/)
  # The file downloaded must be the file served: the wrapper watches the
  # example, cmp compares.
  list(JOIN LOOM_TEST_WRAPPER " " wrap)
  loom_nginx_example_test(download download 0
    sh -c "${wrap} \"$1\" \"$2\" @ROOT@/../download.bin && cmp @ROOT@/../download.bin @ROOT@/big.bin && echo identical"
    download $<TARGET_FILE:example-download> http://127.0.0.1:@PORT@/big.bin)
endif()

# hang_debug: a deliberately deadlocked program; SIGQUIT makes it write a
# task dump to stderr, which must say which task waits on which lock, and
# it runs on until SIGINT ends it (run-hang-debug.sh).
add_test(NAME example-hang_debug
  COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/run-hang-debug.sh ${LOOM_TEST_WRAPPER}
          $<TARGET_FILE:example-hang_debug>)
set_tests_properties(example-hang_debug PROPERTIES TIMEOUT 300)

# tls_echo_server, driven by openssl s_client (run-tls-example.sh makes the
# certificates with the openssl tool); without the tool the script says
# SKIPPED and why, and the test counts as skipped (77), never passed.
if(LOOM_WITH_TLS AND TARGET example-tls_echo_server)
  add_test(NAME example-tls_echo_server
           COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/run-tls-example.sh --check
           ${LOOM_EXAMPLE_CHECK} ${LOOM_EXAMPLE_EXPECTED}/tls_echo_server.txt
           ${LOOM_TEST_WRAPPER} $<TARGET_FILE:example-tls_echo_server>)
  set_tests_properties(example-tls_echo_server PROPERTIES TIMEOUT 300
                       SKIP_RETURN_CODE 77)
endif()

# https_hello's self-test, with the certificates of tls-certs.sh (made once
# in the build tree). Without the openssl tool, which makes them, it says
# SKIPPED and why, and the test counts as skipped (77), never passed.
if(TARGET example-https_hello)
  set(certs ${CMAKE_CURRENT_BINARY_DIR}/https_hello-certs)
  add_test(NAME example-https_hello-selftest COMMAND sh -c
           "command -v openssl >/dev/null 2>&1 && exec \"$@\" || (echo 'SKIPPED: the openssl tool is missing (the test certificates)' && exit 77)"
           sh sh ${LOOM_EXAMPLE_CHECK}
           ${LOOM_EXAMPLE_EXPECTED}/https_hello-selftest.txt --
           sh -c "sh \"$0\" \"$1\" >/dev/null 2>&1 && shift && exec \"$@\""
           ${CMAKE_CURRENT_SOURCE_DIR}/tls-certs.sh ${certs} ${LOOM_TEST_WRAPPER}
           $<TARGET_FILE:example-https_hello> --selftest ${certs}/server.pem
           ${certs}/server.key ${certs}/ca.pem)
  set_tests_properties(example-https_hello-selftest PROPERTIES TIMEOUT 300
                       SKIP_RETURN_CODE 77)
endif()
