#!/bin/sh
# check-example.sh [--status N] EXPECTED -- COMMAND [ARG...]
#
# Runs COMMAND (which may start with a wrapper such as valgrind) and checks
# its standard output against EXPECTED, a file holding one extended regular
# expression per output line: the output must have exactly as many lines,
# and line i must match regex i in full (the regex is anchored at both ends).
# Lines of EXPECTED that start with '#' are comments (write a literal leading
# '#' as '[#]'). Standard error is not checked but passed through, so a
# wrapper's reports (valgrind writes to stderr) show in the test log; the
# wrapper's exit code catches its errors. COMMAND must exit with status N
# (default 0).
#
# POSIX sh; needs only grep -E, sed and mktemp.
set -u

status=0
if [ "${1-}" = "--status" ]; then
  status=${2-}
  shift 2 || exit 2
fi
if [ $# -lt 3 ] || [ "$2" != "--" ]; then
  echo "usage: $0 [--status N] EXPECTED -- COMMAND [ARG...]" >&2
  exit 2
fi
expected=$1
shift 2
if [ ! -r "$expected" ]; then
  echo "check-example: cannot read $expected" >&2
  exit 2
fi

tmp=$(mktemp "${TMPDIR:-/tmp}/check-example.XXXXXX") || exit 2
regexes=$(mktemp "${TMPDIR:-/tmp}/check-example.XXXXXX") || { rm -f "$tmp"; exit 2; }
trap 'rm -f "$tmp" "$regexes"' EXIT
trap 'exit 130' INT TERM

"$@" >"$tmp"
rc=$?

# The regexes without the comments.
grep -v '^#' "$expected" >"$regexes"

fail=0
if [ "$rc" -ne "$status" ]; then
  echo "check-example: '$*' exited with status $rc, expected $status" >&2
  fail=1
fi

nout=$(wc -l <"$tmp" | tr -d ' ')
nexp=$(wc -l <"$regexes" | tr -d ' ')
# A last line without a newline is still a line.
if [ -s "$tmp" ] && [ "$(tail -c 1 "$tmp" | od -An -c | tr -d ' ')" != '\n' ]; then
  nout=$((nout + 1))
fi

# Compare line by line; report every mismatch, diff-style.
i=1
max=$nout
[ "$nexp" -gt "$max" ] && max=$nexp
while [ "$i" -le "$max" ]; do
  want=$(sed -n "${i}p" "$regexes")
  got=$(sed -n "${i}p" "$tmp")
  if [ "$i" -gt "$nexp" ]; then
    printf 'line %d: unexpected output\n  + %s\n' "$i" "$got" >&2
    fail=1
  elif [ "$i" -gt "$nout" ]; then
    printf 'line %d: missing output\n  - /%s/\n' "$i" "$want" >&2
    fail=1
  elif ! printf '%s\n' "$got" | grep -Eq -- "^($want)\$"; then
    printf 'line %d: mismatch\n  - /%s/\n  + %s\n' "$i" "$want" "$got" >&2
    fail=1
  fi
  i=$((i + 1))
done

if [ "$fail" -ne 0 ]; then
  echo "check-example: output of '$*' (stdout):" >&2
  sed 's/^/  | /' "$tmp" >&2
  echo "check-example: FAILED ($expected)" >&2
  exit 1
fi
echo "check-example: $nout line(s) as expected ($expected)"
exit 0
