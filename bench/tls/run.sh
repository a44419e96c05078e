#!/bin/bash
# The TLS benchmark: loom's TLS streams under real load tools, against the
# servers and tools users trust, all on the same OpenSSL:
#
#   ka50, ka1000  HTTPS "Hello, World!" under wrk, keep-alive, 50 and 1,000
#                 connections: loom's straightforward server
#                 (examples/https_hello.c) against nginx (one worker);
#   hs            new connections: wrk with `Connection: close`, so every
#                 request is a TCP connection and a TLS handshake (wrk
#                 resumes its sessions with the tickets the servers send:
#                 an abbreviated handshake, as a returning client makes);
#   hsfull        the same with no tickets (NumTickets 0 on both servers):
#                 every handshake a full one, certificate and signature
#                 included;
#   bulk          1 GiB over one TLS connection: bench-tls-bulk sending
#                 (reading its stdin) and receiving, against `openssl
#                 s_client` piping the same data into `openssl s_server`
#                 (stdout to /dev/null); and each loom side against the
#                 other tool, to tell the sender from the receiver.
#
# Every side uses the same certificate (an ECDSA P-256 key signed by a test
# CA made here with `openssl req`, or RSA 2048 with LOOM_TLSBENCH_KEY=rsa)
# and is held to TLS 1.3, TLS_AES_128_GCM_SHA256 and X25519, both by the
# servers' own settings and by an OpenSSL configuration file (OPENSSL_CONF)
# every process loads; the checks before any timing show what a client
# offering everything is given.
#
# Servers run on one core (taskset), the load tool or the sending side on
# another; each run starts fresh processes, and the order rotates from
# round to round. Prints a Markdown table: requests per second (or MiB/s),
# median over the rounds and the range; the server's CPU time per request
# (or the sender's and receiver's CPU seconds); and loom's ratio to the
# peer, the median of the per-round ratios.
#
#   bench/tls/run.sh [BUILD_DIR]
#
# BUILD_DIR (default: build-bench in the source tree) is configured as a
# Release build with the examples and benchmarks on, and https_hello and
# bench-tls-bulk are built in it. Without loom's TLS (no OpenSSL found at
# configure time) the peers still run, and a line says "loom TLS not
# built". Missing tools (wrk, nginx-light, openssl, curl) are installed with
# apt-get (as root), unless LOOM_TLSBENCH_NO_INSTALL=1.
#
# Environment:
#   LOOM_TLSBENCH_ROUNDS      rounds (default 5)
#   LOOM_TLSBENCH_SECONDS     seconds per wrk run (default 5)
#   LOOM_TLSBENCH_CASES       any of ka50 ka1000 hs hsfull bulk (default all)
#   LOOM_TLSBENCH_BULK_MIB    MiB sent in the bulk case (default 1024)
#   LOOM_TLSBENCH_KEY         ec (default) or rsa
#   LOOM_TLSBENCH_SERVER_CPU  the servers' (and receivers') CPU (default 1)
#   LOOM_TLSBENCH_CLIENT_CPU  wrk's (and the senders') CPU (default 0)
#   LOOM_TLSBENCH_CALLGRIND   1: the HTTPS servers run under callgrind, and
#                             the figure after requests/s is the server's
#                             instructions per request, counted over a
#                             window of LOOM_TLSBENCH_SECONDS in the middle
#                             of a wrk run (run_cg): repeatable where times
#                             on a shared machine are not (cases ka50 hs
#                             hsfull by default; never bulk). The window
#                             opens LOOM_TLSBENCH_CG_WARMUP seconds (25)
#                             into the run, once the keep-alive
#                             connections' handshakes are done: on a loaded
#                             machine callgrind needs longer, and a warning
#                             says so
set -eu

here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$(dirname "$here")")
build=${1:-$src/build-bench}
# shellcheck source=bench/lib.sh
. "$src/bench/lib.sh"

rounds=${LOOM_TLSBENCH_ROUNDS:-5}
secs=${LOOM_TLSBENCH_SECONDS:-5}
cases=${LOOM_TLSBENCH_CASES:-ka50 ka1000 hs hsfull bulk}
bulk_mib=${LOOM_TLSBENCH_BULK_MIB:-1024}
keytype=${LOOM_TLSBENCH_KEY:-ec}
scpu=${LOOM_TLSBENCH_SERVER_CPU:-1}
ccpu=${LOOM_TLSBENCH_CLIENT_CPU:-0}
suite=TLS_AES_128_GCM_SHA256
cg=""
if [ "${LOOM_TLSBENCH_CALLGRIND:-0}" = 1 ]; then
  cg=1
  # Not ka1000 by default: 1,000 handshakes at callgrind's pace take
  # minutes before the window opens.
  cases=$(echo " ${LOOM_TLSBENCH_CASES:-ka50 hs hsfull} " | sed 's/ bulk / /')
fi
for c in $cases; do
  case $c in ka50 | ka1000 | hs | hsfull | bulk) ;;
  *) die "unknown case '$c' (ka50 ka1000 hs hsfull bulk)" ;;
  esac
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/loom-tlsbench.XXXXXX")
srv_pid=""
stop_server() {
  if [ -n "$srv_pid" ]; then
    kill_tree "$srv_pid"
    wait "$srv_pid" 2>/dev/null || true
    srv_pid=""
  fi
}
# Every process the runner started, servers of the runs in $(...)
# subshells included: none outlives an interrupted run.
cleanup() {
  local c
  for c in $(ps -o pid= --ppid $$ 2>/dev/null); do kill_tree "$c"; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- tools ------------------------------------------------------------------
bench_install "${LOOM_TLSBENCH_NO_INSTALL:-0}" wrk:wrk nginx:nginx-light openssl:openssl \
  curl:curl python3:python3 taskset:util-linux
[ -z "$cg" ] || bench_install "${LOOM_TLSBENCH_NO_INSTALL:-0}" valgrind:valgrind

# ---- build ------------------------------------------------------------------
bench_cmake "$src" "$build" examples
say "== building"
hello=$build/examples/https_hello
bulk=$build/bench/bench-tls-bulk
loom=1
if ! cmake --build "$build" -j2 --target example-https_hello bench-tls-bulk \
  >"$tmp/build.log" 2>&1; then
  loom=""
  if grep -qi 'unknown target\|no rule to make target' "$tmp/build.log"; then
    say "== loom TLS not built (configured without OpenSSL: libssl-dev): peers only"
  else
    tail -n 30 "$tmp/build.log" >&2
    say "== loom TLS not built (the build above failed): peers only"
  fi
fi

bench_raise_nofile

srv_pin=(taskset -c "$scpu")
cli_pin=(taskset -c "$ccpu")
say "== servers on CPU $scpu, clients on CPU $ccpu; $rounds rounds; $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
say "== $(wrk --version 2>&1 | head -n 1 | cut -c1-40); $(nginx -v 2>&1 | sed 's/.*: //'); $(openssl version)"

# ---- certificates and OpenSSL's settings ------------------------------------------
case $keytype in
ec) newkey=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1) ;;
rsa) newkey=(-newkey rsa:2048) ;;
*) die "LOOM_TLSBENCH_KEY: ec or rsa, not '$keytype'" ;;
esac
{
  openssl req -x509 "${newkey[@]}" -nodes -keyout "$tmp/ca.key" -out "$tmp/ca.pem" \
    -days 2 -subj "/CN=loom bench CA" &&
    openssl req "${newkey[@]}" -nodes -keyout "$tmp/server.key" -out "$tmp/server.csr" \
      -subj "/CN=localhost" &&
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$tmp/ext.cnf" &&
    openssl x509 -req -in "$tmp/server.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" \
      -CAcreateserial -out "$tmp/server.pem" -days 2 -extfile "$tmp/ext.cnf"
} >"$tmp/openssl.log" 2>&1 || {
  cat "$tmp/openssl.log" >&2
  die "openssl req failed"
}
cert=$tmp/server.pem key=$tmp/server.key ca=$tmp/ca.pem

# What every process of the benchmark loads (OPENSSL_CONF): TLS 1.3 only,
# one cipher suite, one group. ossl-notickets.cnf adds NumTickets 0, for
# the servers of hsfull.
write_ossl_conf() { # file [extra line]
  cat >"$1" <<EOF
openssl_conf = loom_bench
[loom_bench]
ssl_conf = loom_bench_ssl
[loom_bench_ssl]
system_default = loom_bench_tls
[loom_bench_tls]
MinProtocol = TLSv1.3
Ciphersuites = $suite
Groups = X25519
${2:-}
EOF
}
write_ossl_conf "$tmp/ossl.cnf"
write_ossl_conf "$tmp/ossl-notickets.cnf" "NumTickets = 0"
export OPENSSL_CONF=$tmp/ossl.cnf

# ---- servers ----------------------------------------------------------------
# start_server NAME TICKETS: starts https-NAME (loom or nginx) on a free
# port (sets srv_pid and port), with session tickets or without (TICKETS
# 0), and waits until it accepts connections.
start_server() {
  local name=$1 tickets=$2 conf=$tmp/ossl.cnf cmd
  [ "$tickets" = 1 ] || conf=$tmp/ossl-notickets.cnf
  port=""
  case $name in
  loom) cmd=("$hello" "$cert" "$key" 0) ;;
  nginx)
    port=$(free_port)
    # One process serves, as in bench/realload.
    bench_nginx "$tmp" "127.0.0.1:$port ssl" "\
    ssl_certificate $cert;
    ssl_certificate_key $key;
    ssl_protocols TLSv1.3;
    ssl_conf_command Ciphersuites $suite;
    ssl_ecdh_curve X25519;
    $([ "$tickets" = 1 ] || echo "ssl_conf_command NumTickets 0;")" ;;
  *) die "unknown server $name" ;;
  esac
  [ -n "$cg" ] && cmd=(valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.out"
    "${cmd[@]}")
  OPENSSL_CONF=$conf "${srv_pin[@]}" "${cmd[@]}" >"$tmp/srv.out" 2>"$tmp/srv.err" </dev/null &
  srv_pid=$!
  bench_wait_server "$name" 300
}

hz=$(getconf CLK_TCK)
http_servers="nginx"
[ -n "$loom" ] && http_servers="loom nginx"
# bulk: who sends -> who receives. "loom" and "openssl" are the two tools
# end to end, the figures the target compares; "loom-send" is loom's
# sender into s_server, "loom-recv" s_client into loom's receiver.
bulk_pairs="openssl"
[ -n "$loom" ] && bulk_pairs="loom openssl loom-send loom-recv"

# ---- one run -------------------------------------------------------------------
# run_one CASE SERVER: prints "rps cpu_us_per_request peak_rss_kib".
run_one() {
  local case=$1 s=$2 t0 t1 n rps conns=50 tickets=1 extra=()
  [ "$case" = ka1000 ] && conns=1000
  [ "$case" = hsfull ] && tickets=0
  case $case in hs | hsfull) extra=(-H 'Connection: close') ;; esac
  start_server "$s" "$tickets"
  if [ -n "$cg" ]; then
    extra_hs=$([ ${#extra[@]} -gt 0 ] && echo 1) run_cg "$conns" "${extra[@]}"
    return 0
  fi
  t0=$(proc_cpu_ticks "$srv_pid")
  "${cli_pin[@]}" wrk -t1 -c"$conns" -d"${secs}s" --timeout 10s "${extra[@]}" \
    "https://127.0.0.1:$port/" >"$tmp/load.out" 2>&1 || true
  t1=$(proc_cpu_ticks "$srv_pid")
  # "  1234567 requests in 5.00s, ..." and "Requests/sec: 246913.40"
  n=$(awk '/ requests in / { print $1 }' "$tmp/load.out")
  rps=$(awk '/^Requests\/sec:/ { print $2 }' "$tmp/load.out")
  if grep -q 'Non-2xx\|Socket errors' "$tmp/load.out"; then
    say "   warning: $s $case: $(grep 'Non-2xx\|Socket errors' "$tmp/load.out" | tr -s ' ')"
  fi
  local rss
  rss=$(proc_peak_rss_kib "$srv_pid")
  stop_server
  if [ -z "$rps" ] || [ -z "$n" ] || [ "$n" = 0 ]; then
    # No figure for this round (wrk timed out, on a loaded machine): said,
    # and left out of the medians, rather than the whole run lost.
    say "   warning: $s $case: no figure: $(tail -n 3 "$tmp/load.out" | tr -s ' \n' ' ')"
    return 0
  fi
  awk -v r="$rps" -v n="$n" -v c=$((t1 - t0)) -v hz="$hz" -v m="$rss" \
    'BEGIN { printf "%s %.3f %s\n", r, c / hz / n * 1e6, m }'
}

# run_cg CONNS [WRK_ARGS...]: the server runs under callgrind; one wrk run
# of 25 s + secs + 3 s, the counters zeroed at 25 s (the connections are
# open, their handshakes done at callgrind's pace, the code warm) and
# dumped secs later. Prints "rps ir_per_request
# peak_rss_kib", the requests being the server's calls to SSL_write or
# SSL_write_ex in the window (one per answer, for both servers): exact,
# where wrk's count would include requests outside the window.
run_cg() {
  local conns=$1 wpid ir rss
  shift
  local warm=${LOOM_TLSBENCH_CG_WARMUP:-25}
  "${cli_pin[@]}" wrk -t1 -c"$conns" -d$((warm + secs + 3))s --timeout 30s "$@" \
    "https://127.0.0.1:$port/" >"$tmp/load.out" 2>&1 &
  wpid=$!
  sleep "$warm"
  rm -f "$tmp"/cg.out.*
  callgrind_control -z "$srv_pid" >/dev/null
  sleep "$secs"
  callgrind_control -d "$srv_pid" >/dev/null
  wait "$wpid" || true
  rss=$(proc_peak_rss_kib "$srv_pid")
  stop_server
  # Names are compressed: "cfn=(id) name" the first time, "cfn=(id)" after.
  ir=$(cat "$tmp"/cg.out.* | awk '
    /^summary:/ { total = $2 }
    /^c?fn=\(/ {
      match($0, /\(([0-9]+)\)/); id = substr($0, RSTART + 1, RLENGTH - 2)
      rest = substr($0, RSTART + RLENGTH); sub(/^ /, "", rest)
      if (rest != "") name[id] = rest
      if ($0 ~ /^cfn=/) { getline; if ($1 ~ /^calls=/) { split($1, a, "="); calls[id] += a[2] } }
    }
    END {
      for (id in calls) {
        if (name[id] == "SSL_write" || name[id] == "SSL_write_ex") n += calls[id]
        if (name[id] == "EVP_PKEY_derive") hs += calls[id] # one per handshake
      }
      if (n) printf "%.0f %d %d", total / n, n, hs
    }')
  if [ -z "$ir" ]; then
    say "   warning: no answers counted under callgrind: $(tail -n 3 "$tmp/load.out" | tr -s ' \n' ' ')"
    return 0
  fi
  # shellcheck disable=SC2086 # three numbers
  set -- $ir
  if [ "${extra_hs:-}" != 1 ] && [ "$3" -gt 0 ]; then
    say "   warning: $3 handshakes in the keep-alive window, counted in; lengthen LOOM_TLSBENCH_CG_WARMUP ($warm s)"
  fi
  # requests/s: those of the window, at callgrind's pace.
  echo "$(awk -v n="$2" -v s="$secs" 'BEGIN { printf "%.1f", n / s }') $1 $rss"
}

# listening PORT: whether a socket listens on 127.0.0.1:PORT, found
# without connecting (s_server -naccept 1 would take a probe for its one
# client).
listening() {
  awk -v p=":$(printf '%04X' "$1")" '$2 ~ p "$" && $4 == "0A" { f = 1 } END { exit !f }' \
    /proc/net/tcp
}

# bulk_one PAIR BYTES [count]: sends BYTES zero bytes (from `head` through
# a pipe, the sender's stdin) over one TLS connection, receiver pinned to
# the server CPU, sender (and head) to the client CPU. Prints "MiB/s
# sender_cpu_s receiver_cpu_s received_bytes": the wall time runs from the
# sender's start to the receiver's exit (handshake and close included, a
# few ms), CPU times are each process's user + system. With count, what
# s_server receives goes to a file to be counted, not to /dev/null.
bulk_one() {
  local pair=$1 bytes=$2 mode=${3:-time} rport sender=openssl receiver=openssl out=/dev/null
  local TIMEFORMAT='%U %S' t0 t1 got
  case $pair in loom | loom-recv) receiver=loom ;; esac
  case $pair in loom | loom-send) sender=loom ;; esac
  [ "$mode" = count ] && out=$tmp/bulk.out
  rport=$(free_port)
  rm -f "$tmp/recv.out" "$tmp/bulk.out" "$tmp/fifo"
  if [ $receiver = loom ]; then
    { time "${srv_pin[@]}" "$bulk" recv "$rport" "$cert" "$key" \
      >"$tmp/recv.out" 2>"$tmp/recv.err"; } 2>"$tmp/recv.time" &
  else
    # s_server reads its stdin too, and ends the connection at its EOF: a
    # FIFO opened read-write never has one.
    mkfifo "$tmp/fifo"
    { time "${srv_pin[@]}" openssl s_server -accept "127.0.0.1:$rport" -cert "$cert" -key "$key" \
      -quiet -naccept 1 0<>"$tmp/fifo" >"$out" 2>"$tmp/recv.err"; } 2>"$tmp/recv.time" &
  fi
  srv_pid=$!
  for _ in $(seq 100); do
    listening "$rport" && break
    kill -0 "$srv_pid" 2>/dev/null || break
    sleep 0.05
  done
  listening "$rport" || { cat "$tmp/recv.err" >&2; die "bulk $pair: receiver did not start"; }
  t0=$(date +%s%N)
  if [ $sender = loom ]; then
    "${cli_pin[@]}" head -c "$bytes" /dev/zero |
      { time "${cli_pin[@]}" "$bulk" send 127.0.0.1 "$rport" "$ca" \
        >"$tmp/send.out" 2>"$tmp/send.err"; } 2>"$tmp/send.time" || true
  else
    "${cli_pin[@]}" head -c "$bytes" /dev/zero |
      { time "${cli_pin[@]}" openssl s_client -connect "127.0.0.1:$rport" \
        -servername localhost -CAfile "$ca" -verify_return_error -quiet -no_ign_eof \
        >/dev/null 2>"$tmp/send.err"; } 2>"$tmp/send.time" || true
  fi
  wait "$srv_pid" || true
  t1=$(date +%s%N)
  srv_pid=""
  got=-
  if [ $receiver = loom ]; then
    got=$(awk '{ print $1; exit }' "$tmp/recv.out")
  elif [ "$mode" = count ]; then
    got=$(stat -c %s "$tmp/bulk.out")
  fi
  if [ "$got" != - ] && [ "$got" != "$bytes" ]; then
    cat "$tmp/send.err" "$tmp/recv.err" >&2
    die "bulk $pair: $got bytes received of $bytes"
  fi
  awk -v b="$bytes" -v ns=$((t1 - t0)) -v got="$got" \
    -v s="$(tail -n 1 "$tmp/send.time")" -v r="$(tail -n 1 "$tmp/recv.time")" 'BEGIN {
      split(s, sc, " "); split(r, rc, " ")
      printf "%.1f %.3f %.3f %s\n", b / 1048576 / (ns / 1e9), sc[1] + sc[2], rc[1] + rc[2], got
    }'
}

# ---- correctness --------------------------------------------------------------
# Each server answers curl (verifying against the test CA), and tells a
# client that offers every protocol, suite and group (OpenSSL's defaults,
# not the benchmark's file) to use TLS 1.3, the suite and X25519; with
# tickets it sends some, without none. The bulk pairs move every byte.
say "== checks"
for s in $http_servers; do
  for tickets in 1 0; do
    start_server "$s" "$tickets"
    body=$(curl -sS --cacert "$ca" "https://localhost:$port/") || die "https-$s: curl failed"
    [ "$body" = "Hello, World!" ] || die "https-$s: curl got '$body'"
    # A request, and -ign_eof: s_client stays until the server closes, so
    # it sees the tickets sent after the handshake.
    info=$(printf 'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' |
      env -u OPENSSL_CONF openssl s_client -connect "127.0.0.1:$port" \
        -servername localhost -CAfile "$ca" -ign_eof 2>&1 || true)
    proto=$(echo "$info" | sed -n 's/^New, \(TLSv[0-9.]*\), Cipher is \(.*\)/\1 \2/p' | head -n 1)
    group=$(echo "$info" | sed -n 's/^Server Temp Key: \([^,]*\).*/\1/p' | head -n 1)
    verify=$(echo "$info" | sed -n 's/^ *Verify return code: \([0-9]*\).*/\1/p' | head -n 1)
    nt=$(echo "$info" | grep -c 'Post-Handshake New Session Ticket' || true)
    say "   https-$s (tickets $tickets): '$body'; $proto, $group, verify $verify, $nt tickets"
    if [ "$proto" != "TLSv1.3 $suite" ] || [ "$group" != X25519 ] || [ "$verify" != 0 ]; then
      die "https-$s: negotiated '$proto' '$group', verify '$verify'"
    fi
    if [ "$tickets" = 0 ] && [ "$nt" != 0 ]; then die "https-$s: sent tickets"; fi
    if [ "$tickets" = 1 ] && [ "$nt" = 0 ]; then die "https-$s: sent no tickets"; fi
    echo "$info" | grep -q '^Hello, World!' || die "https-$s: no answer through s_client"
    stop_server
  done
done
case " $cases " in *" bulk "*)
  for p in $bulk_pairs; do
    out=$(bulk_one "$p" 1048576 count)
    say "   bulk $p: 1 MiB received whole ($out)"
  done ;;
esac
[ -n "$loom" ] || say "   loom TLS not built: https-loom and the loom bulk pairs skipped"

# ---- the rounds ---------------------------------------------------------------------
results=$tmp/results
: >"$results"
bulk_bytes=$((bulk_mib * 1048576))
for case in $cases; do
  servers=$http_servers
  [ "$case" = bulk ] && servers=$bulk_pairs
  for r in $(seq "$rounds"); do
    # shellcheck disable=SC2086 # a list of words
    for s in $(rotate "$r" $servers); do
      if [ "$case" = bulk ]; then
        out=$(bulk_one "$s" "$bulk_bytes")
      else
        out=$(run_one "$case" "$s")
      fi
      [ -n "$out" ] && echo "$case $r $s $out" >>"$results"
      say "   $case round $r: $s $out"
    done
  done
done

# ---- the tables ------------------------------------------------------------------------
# results: case round server figure cpu1 cpu2|rss
echo
echo "## TLS: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, server CPU $scpu, client CPU $ccpu, $rounds rounds, ${secs}s per wrk run, TLS 1.3 $suite X25519, $keytype key"
if [ -z "$loom" ]; then echo; echo "loom TLS not built: the peers only."; fi
summarise() { # title cases servers ref peer unit
  echo
  echo "### $1"
  echo
  awk "$AWK_MEDIAN"'
    { fig[$1, $3, $2] = $4; c1[$1, $3, $2] = $5; c2[$1, $3, $2] = $6
      if ($2 > nr) nr = $2 }
    END {
      nc = split(cases, cs, " "); ns = split(servers, sv, " ")
      printf "| case |"
      for (i = 1; i <= ns; i++) printf " %s |", sv[i]
      printf " %s/%s |\n|---|", ref, peer
      for (i = 0; i <= ns; i++) printf "--:|"
      printf "\n"
      for (j = 1; j <= nc; j++) {
        c = cs[j]; line = "| " c " |"
        for (i = 1; i <= ns; i++) {
          s = sv[i]; k = 0; lo = ""; hi = ""
          for (r = 1; r <= nr; r++) if ((c, s, r) in fig) {
            v = fig[c, s, r]; a[++k] = v; x[k] = c1[c, s, r]; y[k] = c2[c, s, r]
            if (lo == "" || v < lo) lo = v
            if (hi == "" || v > hi) hi = v }
          if (!k) { line = line " - |"; continue }
          m = median(a, k); mx = median(x, k); my = median(y, k)
          if (unit == "MiB/s")
            line = line sprintf(" %.0f [%.0f-%.0f]; CPU %.2f s + %.2f s |", m, lo, hi, mx, my)
          else if (cg)
            line = line sprintf(" %.0f [%.0f-%.0f]; %.0f Ir; %.1f MiB |", m, lo, hi, mx, my / 1024)
          else
            line = line sprintf(" %.0f [%.0f-%.0f]; %.1f us; %.1f MiB |", m, lo, hi, mx, my / 1024)
        }
        k = 0
        for (r = 1; r <= nr; r++)
          if (((c, ref, r) in fig) && ((c, peer, r) in fig) && fig[c, peer, r] > 0)
            # Under callgrind: the peer'"'"'s instructions over loom'"'"'s.
            q[++k] = cg ? c1[c, peer, r] / c1[c, ref, r] : fig[c, ref, r] / fig[c, peer, r]
        if (k && cg) line = line sprintf(" %.2fx (instructions) |", median(q, k))
        else if (k) { qm = median(q, k)
          line = line sprintf(" %.2fx (%s) |", qm, qm >= 0.9 ? "target >= 0.9x met" : "target >= 0.9x NOT MET") }
        else line = line " - |"
        print line
      }
    }' cases="$2" servers="$3" ref="$4" peer="$5" unit="$6" cg="$cg" "$results"
}
http_cases=$(echo " $cases " | sed 's/ bulk / /')
if [ -n "$(echo "$http_cases" | tr -d ' ')" ]; then
  what="server CPU per request"
  [ -z "$cg" ] || what="server instructions per request (callgrind; requests/s meaningless)"
  summarise "HTTPS Hello, World! under wrk (requests/s median [min-max]; $what; server peak RSS)" \
    "$http_cases" "$http_servers" loom nginx req/s
fi
case " $cases " in *" bulk "*)
  summarise "bulk: $bulk_mib MiB over one connection (MiB/s median [min-max]; sender CPU + receiver CPU)" \
    bulk "$bulk_pairs" loom openssl MiB/s ;;
esac
echo
echo "ka50/ka1000: wrk -t1 -c50/-c1000, keep-alive. hs: wrk -t1 -c50 -H 'Connection: close' (resumed handshakes: wrk reuses its session tickets); hsfull: the same, the servers sending no tickets (full handshakes)."
echo "bulk: head -c N /dev/zero | SENDER, SENDER -> RECEIVER over TLS; loom = bench-tls-bulk both ends, openssl = s_client -> s_server, loom-send = bench-tls-bulk -> s_server, loom-recv = s_client -> bench-tls-bulk."
