#!/bin/sh
# run-hang-debug.sh COMMAND [ARG...]
#
# Tests examples/hang_debug: starts COMMAND (the example, possibly under a
# wrapper such as valgrind), waits for its "stuck (pid N)" line, sends it
# SIGQUIT, reads the task dump it writes to stderr up to its stats line,
# checks that the dump says which task waits on which lock, which task
# holds it, and the function it waits in, then ends the program with
# SIGINT and checks that it exits cleanly. Prints the lines it checked; exits 0 if all is well,
# 1 if a check failed, 2 if something else went wrong.
#
# No sleeps: each step waits for a line of output. The program is killed
# on every way out (the EXIT trap); the test's own timeout bounds a hang.
set -u
if [ $# -lt 1 ]; then
  echo "usage: $0 COMMAND [ARG...]" >&2
  exit 2
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/loom-hang.XXXXXX") || exit 2
pid=
# shellcheck disable=SC2317 # called by the trap
cleanup() {
  if [ -n "$pid" ]; then
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkfifo "$tmp/out" "$tmp/err" || exit 2
"$@" >"$tmp/out" 2>"$tmp/err" </dev/null &
pid=$!
exec 3<"$tmp/out" 4<"$tmp/err"

# stdout: the two "holds" lines, then "stuck (pid N)".
while IFS= read -r line <&3; do
  printf '%s\n' "$line"
  case $line in "stuck (pid "*) break ;; esac
done
case ${line:-} in
"stuck (pid "*) ;;
*)
  echo "run-hang-debug: the program never said it was stuck" >&2
  exit 2
  ;;
esac
# The pid the program prints is its own (under valgrind, $pid is valgrind's
# launcher, which forwards signals anyway).
kill -QUIT "$pid"

dump=$tmp/dump
: >"$dump"
while IFS= read -r line <&4; do
  printf '%s\n' "$line" >>"$dump"
  case $line in "stats: "*) break ;; esac
done

fail=0
check() { # check DESCRIPTION EXTENDED-REGEX
  if grep -Eq -- "$2" "$dump"; then
    echo "ok: $1"
  else
    echo "FAILED: $1 (no line matches '$2')"
    fail=1
  fi
}
check "a dump header" "^loom: task dump, 3 task\\(s\\)"
check "main waits for transfer-a" "^task 1 'main' parked for [0-9]+ ms: join of task 2 'transfer-a'"
check "transfer-a waits for the ledger, which transfer-b holds" "^  task 2 'transfer-a' parked for [0-9]+ ms: lock 'ledger' \\(0x[0-9a-f]+\\) held by task 3 'transfer-b'\$"
check "transfer-b waits for the accounts, which transfer-a holds" "^  task 3 'transfer-b' parked for [0-9]+ ms: lock 'accounts' \\(0x[0-9a-f]+\\) held by task 2 'transfer-a'\$"
check "the backtrace has take()" "^ +#[0-9]+ take\\+0x[0-9a-f]+ "
check "the backtrace has transfer()" "^ +#[0-9]+ transfer\\+0x[0-9a-f]+ "
check "stats" "^stats: tasks live 3"
if [ "$fail" -ne 0 ]; then
  echo "--- the dump:"
  cat "$dump"
fi

# The program runs on after a dump: SIGINT ends it, cleanly.
kill -INT "$pid"
while IFS= read -r line <&3; do printf '%s\n' "$line"; done
wait "$pid"
status=$?
pid=
if [ "$status" -ne 0 ]; then
  echo "FAILED: exit status $status after SIGINT"
  cat <&4
  exit 1
fi
echo "exit status 0"
exit "$fail"
