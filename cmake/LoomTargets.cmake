# Compile settings loom puts on its own targets, never on the directory or
# the global flags: a project that add_subdirectory()s loom keeps its own
# warnings, build type and sanitizers, and loom's stay on loom's targets.
#
# loom_target_warnings(<target>)
#   - the house warning set: -Wall -Wextra -Wmissing-prototypes -Wshadow
#     -Wstrict-prototypes, and -Werror under LOOM_WERROR;
#   - -fno-omit-frame-pointer under LOOM_FRAME_POINTERS (OFF): for
#     profilers that walk frame pointers (perf record -g). Task dumps do
#     not need them: a parked task unwinds its own stack with the unwind
#     tables (src/core/backtrace.c); only their fallback walk, for a task
#     with too little stack left, follows frame pointers. They cost about
#     3.5% more instructions per TCP echo round trip, 7% per yield
#     (callgrind; docs/debugging.md). Sanitizer builds keep them anyway;
#   - LOOM_DEBUG=1 (internal invariant checks, src/core/assert.h) in Debug
#     and LOOM_SANITIZE builds;
#   - under LOOM_SANITIZE, AddressSanitizer + UndefinedBehaviorSanitizer for
#     compiling and linking. The link flags are PUBLIC on a library target, so
#     whatever links a sanitized loom also links the sanitizer runtimes (ASan
#     insists its runtime comes first).
#   - under LOOM_TSAN, ThreadSanitizer the same way (and LOOM_DEBUG=1); the
#     fiber layer then announces its switches to it (src/fiber/fiber.c).
# C only: the assembly context switches take none of these.
include_guard(GLOBAL)

set(LOOM_WARNING_FLAGS -Wall -Wextra -Wmissing-prototypes -Wshadow
    -Wstrict-prototypes)
set(LOOM_SANITIZE_FLAGS -fsanitize=address,undefined -fno-omit-frame-pointer
    -fno-sanitize-recover=undefined)
set(LOOM_SANITIZE_LINK -fsanitize=address,undefined)
set(LOOM_TSAN_FLAGS -fsanitize=thread -fno-omit-frame-pointer)
set(LOOM_TSAN_LINK -fsanitize=thread)

function(loom_target_warnings target)
  get_target_property(type ${target} TYPE)
  set(scope PRIVATE)
  if(type STREQUAL "INTERFACE_LIBRARY")
    set(scope INTERFACE)
  endif()
  set(flags ${LOOM_WARNING_FLAGS})
  if(LOOM_FRAME_POINTERS)
    list(APPEND flags -fno-omit-frame-pointer)
  endif()
  if(LOOM_WERROR)
    list(APPEND flags -Werror)
  endif()
  set(san_link ${LOOM_SANITIZE_LINK})
  if(LOOM_TSAN)
    if(LOOM_SANITIZE)
      message(FATAL_ERROR "LOOM_TSAN and LOOM_SANITIZE cannot be combined")
    endif()
    list(APPEND flags ${LOOM_TSAN_FLAGS})
    set(san_link ${LOOM_TSAN_LINK})
  elseif(LOOM_SANITIZE)
    list(APPEND flags ${LOOM_SANITIZE_FLAGS})
  endif()
  target_compile_options(${target} ${scope} $<$<COMPILE_LANGUAGE:C>:${flags}>)
  if(LOOM_SANITIZE OR LOOM_TSAN)
    target_compile_definitions(${target} ${scope} LOOM_DEBUG=1)
    set(link_scope PRIVATE)
    if(type MATCHES "LIBRARY$")
      set(link_scope PUBLIC)
    endif()
    if(type STREQUAL "INTERFACE_LIBRARY")
      set(link_scope INTERFACE)
    endif()
    if(NOT type STREQUAL "OBJECT_LIBRARY")
      target_link_options(${target} ${link_scope} ${san_link})
    endif()
  else()
    target_compile_definitions(${target} ${scope} $<$<CONFIG:Debug>:LOOM_DEBUG=1>)
  endif()
endfunction()
