# run-with-server.sh: sourced (`. run-with-server.sh`, not run) by the
# scripts that run a test next to a server of its own (run-with-redis.sh,
# run-with-nginx.sh, run-with-http-server.sh) and by those that run an
# example that is itself a server (run-server-example.sh,
# run-graceful-shutdown.sh, run-monitor-example.sh). What they share lives
# here: a scratch directory and the server stopped on every way out, a free
# port, a bounded lifetime, the SKIPPED path, the placeholders in the
# command's arguments, and reading the port an example says it serves on.
#
# The sourcing script sets `me` (its name, for messages) first. POSIX sh.
# shellcheck shell=sh
: "${me:?set by the script that sources this file}"

# server_need_command [--after WORD] "$@": exits 2 with a usage line when
# there is no command to run; with --after, when there is not first an
# argument, which the usage line shows as WORD.
server_need_command() {
  need_args=1
  need_usage="COMMAND [ARG...]"
  if [ "${1-}" = --after ]; then
    need_args=2
    need_usage="$2 $need_usage"
    shift 2
  fi
  if [ $# -lt $need_args ]; then
    echo "usage: $0 $need_usage" >&2
    exit 2
  fi
}

# server_need_python: sets python ($LOOM_PYTHON, default /usr/bin/python3;
# plain Python, no packages); without it, exits 77, which the tests register
# as "skipped".
server_need_python() {
  python=${LOOM_PYTHON:-/usr/bin/python3}
  if ! [ -x "$python" ]; then
    echo "$me: $python not found: skipping" >&2
    exit 77
  fi
}

# server_skip VAR REASON COMMAND...: there is no server to start. With
# ${VAR}_STATUS set (for commands that are not tests, such as the examples),
# prints SKIPPED with REASON and exits with that status; otherwise runs
# COMMAND with VAR set to REASON, so that the test reports itself SKIPPED
# with that reason rather than passing.
server_skip() {
  skip_var=$1
  skip_reason=$2
  shift 2
  echo "$me: $skip_reason" >&2
  eval "skip_status=\${${skip_var}_STATUS:-}"
  if [ -n "$skip_status" ]; then
    echo "SKIPPED: $skip_reason"
    exit "$skip_status"
  fi
  eval "$skip_var=\$skip_reason"
  export "${skip_var?}"
  exec "$@"
}

# server_scratch TAG SIGNAL STATUSES: makes the scratch directory $tmp and
# sets the EXIT trap that stops the server ($pid) and a client ($cpid),
# whichever runs, with SIGNAL (TERM, or KILL for a server under test that
# may ignore it), waits for them and removes $tmp. STATUSES says how this
# script exits (through the EXIT trap) when it is sent a signal: "2", with
# status 2 on INT, TERM and HUP; "128+n", with 130 on INT and 143 on TERM,
# as a shell killed by them.
server_scratch() {
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/loom-$1.XXXXXX") || exit 2
  server_signal=$2
  pid=
  cpid=
  trap server_cleanup EXIT
  case $3 in
  2) trap 'exit 2' INT TERM HUP ;;
  *)
    trap 'exit 130' INT
    trap 'exit 143' TERM
    ;;
  esac
}
# shellcheck disable=SC2317 # called by the trap
server_cleanup() {
  for p in $cpid $pid; do
    kill -"$server_signal" "$p" 2>/dev/null
    wait "$p" 2>/dev/null
  done
  rm -rf "$tmp"
}

# server_spawn COMMAND...: starts the server COMMAND in the background, as
# $pid, killed after 10 minutes in any case so that none outlives the test.
server_spawn() {
  timeout -s KILL 600 "$@" &
  pid=$!
}

# server_start WHAT START READY LOG: starts a server on a free port. START
# PORT starts it (with server_spawn) on PORT, random in 20000-59999; READY
# PORT succeeds once it serves, polled for up to 10 s. A server that exits
# meanwhile could not bind (the port is taken): another port is tried, ten
# in all. Sets port; exits 2, showing LOG, when WHAT did not start.
server_start() {
  port=
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    try=$((20000 + ($(od -An -N2 -tu2 /dev/urandom) % 40000)))
    "$2" "$try"
    i=0
    while [ $i -lt 100 ]; do
      if ! kill -0 "$pid" 2>/dev/null; then break; fi # exited: port taken
      if "$3" "$try"; then
        port=$try
        break
      fi
      i=$((i + 1))
      sleep 0.1
    done
    [ -n "$port" ] && return 0
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    pid=
  done
  echo "$me: $1 did not start; its log:" >&2
  cat "$4" >&2 2>/dev/null
  exit 2
}

# server_run PLACEHOLDER VALUE ... -- COMMAND...: runs COMMAND with each
# PLACEHOLDER in its arguments replaced by its VALUE, and exits with its
# status. COMMAND runs through server_exec, "$@" unless the script defines
# its own, and server_failed runs when it fails (by default, nothing).
server_run() {
  subs=
  while [ "$1" != -- ]; do
    subs="$subs$1=$2
"
    shift 2
  done
  shift
  n=$#
  while [ "$n" -gt 0 ]; do
    case $1 in
    *@*) arg=$(server_subst "$1") ;;
    *) arg=$1 ;;
    esac
    shift
    set -- "$@" "$arg"
    n=$((n - 1))
  done
  server_exec "$@"
  status=$?
  [ "$status" -ne 0 ] && server_failed
  exit "$status"
}
# server_subst ARG: ARG with the placeholders of $subs replaced.
server_subst() {
  a=$1
  while IFS= read -r sub; do
    [ -n "$sub" ] || continue
    name=${sub%%=*}
    value=${sub#*=}
    while :; do
      case $a in
      *"$name"*) a=${a%%"$name"*}$value${a#*"$name"} ;;
      *) break ;;
      esac
    done
  done <<EOF
$subs
EOF
  printf '%s' "$a"
}
server_exec() { "$@"; }
server_failed() { :; }

# example_start COMMAND...: starts the example server COMMAND (told to
# listen on port 0) in the background as $pid, its standard output into a
# FIFO that stays open on fd 3, reads its first line ("serving on
# 127.0.0.1:PORT"), prints it and sets port to what follows the last colon.
# Exits 2 when the server prints nothing or no port.
example_start() {
  mkfifo "$tmp/out" || exit 2
  "$@" >"$tmp/out" </dev/null &
  pid=$!
  exec 3<"$tmp/out"
  if ! IFS= read -r line <&3; then
    echo "$me: the server printed nothing" >&2
    exit 2
  fi
  printf '%s\n' "$line"
  port=${line##*:}
  case $port in
  '' | *[!0-9]*)
    echo "$me: no port in '$line'" >&2
    exit 2
    ;;
  esac
}

# example_interrupt: stops the example server with SIGINT (what Ctrl-C
# sends), prints its last lines up to its exit, and exits with its status.
example_interrupt() {
  kill -INT "$pid"
  while IFS= read -r line <&3; do
    printf '%s\n' "$line"
  done
  wait "$pid"
  status=$?
  pid=
  exit "$status"
}
