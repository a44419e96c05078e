#!/bin/sh
# test-gdb.sh SOURCE_DIR PROGRAM [nocore]
#
# Runs PROGRAM (tests/test-gdb.c) under `gdb -batch`, stopped in
# gdb_stop_here() with tasks parked, loads tools/loom-gdb.py and checks what
# `loom tasks` and `loom bt` print: on the live process, then on a core
# file of it (gcore). SKIPPED (with the reason) without gdb, or where gdb
# cannot run the program (no ptrace in a container). `nocore` leaves the
# core file out: under AddressSanitizer, whose shadow memory spans
# terabytes of address space, gcore takes minutes.
set -u
src=$1
prog=$2
core=${3:-core}
# `noparksite`: ASan's swapcontext interceptor tops every parked stack of
# the ucontext backend and hides the loom call a task is parked in, so
# `loom tasks` leaves that column empty there (the backtraces still show).
parksite=${4:-parksite}
if ! command -v gdb >/dev/null 2>&1; then
  echo "SKIPPED: gdb is not installed"
  exit 0
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/loom-gdb.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT

fail=0
check() { # check FILE WHAT REGEX
  if ! grep -Eq "$3" "$1"; then
    echo "FAIL: $2: no line matching /$3/ in:" >&2
    sed 's/^/  | /' "$1" >&2
    fail=1
  fi
}

# gdb's own noise (thread_db, debuginfod) is of no interest.
gdb -nx -batch -q \
  -ex 'set debuginfod enabled off' \
  -ex 'set confirm off' \
  -ex 'set pagination off' \
  -ex 'break gdb_stop_here' \
  -ex run \
  -ex "source $src/tools/loom-gdb.py" \
  -ex 'echo ==tasks\n' -ex 'loom tasks' \
  -ex 'echo ==bt-sleeper\n' -ex 'loom bt 2' \
  -ex 'echo ==bt-event\n' -ex 'loom bt 3' \
  -ex 'echo ==bt-lock\n' -ex 'loom bt 4' \
  -ex 'echo ==bt-main\n' -ex 'loom bt 1' \
  -ex 'echo ==bt-none\n' -ex 'loom bt 999' \
  -ex 'echo ==bt-unstarted\n' -ex 'loom bt 6' \
  -ex 'echo ==task\n' -ex 'loom task 2' -ex 'bt' \
  -ex 'echo ==task-off\n' -ex 'loom task off' -ex 'bt' -ex 'echo ==end\n' \
  -ex "$([ "$core" = core ] && echo "gcore $tmp/core" || echo "echo")" \
  -ex kill \
  "$prog" >"$tmp/live" 2>&1
if ! grep -q '^==tasks' "$tmp/live"; then
  if grep -Eqi 'ptrace|Operation not permitted|could not (launch|start)' "$tmp/live"; then
    echo "SKIPPED: gdb cannot run the program here:"
    sed 's/^/  | /' "$tmp/live"
    exit 0
  fi
  echo "FAIL: gdb did not stop the program:" >&2
  sed 's/^/  | /' "$tmp/live" >&2
  exit 1
fi
# The helper reads loom's structures from its debug information: a
# library built without -g (a Release build) has none to read.
if grep -q 'No struct type named loom_s' "$tmp/live"; then
  echo "SKIPPED: libloom has no debug information (build with -g, e.g. RelWithDebInfo)"
  exit 0
fi

for out in live core; do
  if [ "$out" = core ]; then
    if [ "$core" != core ]; then
      break
    fi
    if [ ! -s "$tmp/core" ]; then
      echo "note: gcore wrote no core file; the core-file half is not checked"
      break
    fi
    gdb -nx -batch -q -ex 'set debuginfod enabled off' \
      -ex "source $src/tools/loom-gdb.py" \
      -ex 'echo ==tasks\n' -ex 'loom tasks' \
      -ex 'echo ==bt-sleeper\n' -ex 'loom bt 2' \
      -ex 'echo ==bt-event\n' -ex 'loom bt 3' \
      -ex 'echo ==bt-lock\n' -ex 'loom bt 4' \
      "$prog" "$tmp/core" >"$tmp/core.out" 2>&1
    f=$tmp/core.out
  else
    f=$tmp/live
  fi
  sed -n '/^==tasks/,/^==bt-sleeper/p' "$f" >"$tmp/tasks"
  check "$tmp/tasks" "$out: header" '^runtime 0x[0-9a-f]+: 6 tasks$'
  check "$tmp/tasks" "$out: main" '^ +1 +main +running +\[main\]'
  if [ "$parksite" = parksite ]; then
    check "$tmp/tasks" "$out: sleeper" '^ +2 +sleeper +parked +.*loom_+sleep'
    check "$tmp/tasks" "$out: event-waiter" '^ +3 +event-waiter +parked +.*loom_+event_wait'
    check "$tmp/tasks" "$out: lock-waiter" '^ +4 +lock-waiter +parked +.*loom_+lock_acquire'
  else
    check "$tmp/tasks" "$out: sleeper" '^ +2 +sleeper +parked +sleep until'
    check "$tmp/tasks" "$out: event-waiter" '^ +3 +event-waiter +parked +event 0x'
    check "$tmp/tasks" "$out: lock-waiter" '^ +4 +lock-waiter +parked +lock 0x'
  fi
  check "$tmp/tasks" "$out: quick" '^ +5 +quick +finished'
  check "$tmp/tasks" "$out: unstarted" '^ +6 +unstarted +ready'
  sed -n '/^==bt-sleeper/,/^==bt-event/p' "$f" >"$tmp/bt2"
  check "$tmp/bt2" "$out: bt 2 title" "^task 2 'sleeper' \\(parked\\)"
  check "$tmp/bt2" "$out: bt 2 frame" '^#[0-9]+ .*gdb_parked_in_sleep'
  check "$tmp/bt2" "$out: bt 2 entry" '^#[0-9]+ .*sleeper'
  sed -n '/^==bt-event/,/^==bt-lock/p' "$f" >"$tmp/bt3"
  check "$tmp/bt3" "$out: bt 3 frame" '^#[0-9]+ .*gdb_parked_on_event'
  sed -n '/^==bt-lock/,$p' "$f" >"$tmp/bt4"
  check "$tmp/bt4" "$out: bt 4 frame" '^#[0-9]+ .*gdb_parked_on_lock'
  if [ "$out" = live ]; then
    sed -n '/^==bt-main/,/^==bt-none/p' "$f" >"$tmp/bt1"
    check "$tmp/bt1" "$out: bt 1 (running)" '^#0 .*gdb_stop_here'
    sed -n '/^==bt-none/,/^==bt-unstarted/p' "$f" >"$tmp/bt999"
    check "$tmp/bt999" "$out: bt 999" 'loom bt: no task 999'
    sed -n '/^==bt-unstarted/,/^==task$/p' "$f" >"$tmp/bt6"
    check "$tmp/bt6" "$out: bt 6 (never run)" 'not started: no stack yet'
    sed -n '/^==task$/,/^==task-off/p' "$f" >"$tmp/task"
    check "$tmp/task" "$out: loom task 2" '^#[0-9]+ .*gdb_parked_in_sleep'
    sed -n '/^==task-off/,/^==end/p' "$f" >"$tmp/taskoff"
    check "$tmp/taskoff" "$out: loom task off" '^#1 .*main_task'
  fi
done
if [ "$fail" -ne 0 ]; then
  echo "--- full gdb output (live) ---" >&2
  cat "$tmp/live" >&2
  [ -f "$tmp/core.out" ] && { echo "--- core ---" >&2; cat "$tmp/core.out" >&2; }
  exit 1
fi
echo "gdb helper: loom tasks and loom bt OK"
