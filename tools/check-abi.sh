#!/bin/sh
# Checks that each shared library exports exactly the symbols of its
# committed list (abi/loom.symbols for libloom, abi/loom-tls.symbols and
# abi/loom-http.symbols for the optional libraries), so adding or removing
# a symbol is a deliberate change, reviewed with the list's diff. On a
# mismatch it prints the difference (+ exported but not listed, - listed but
# not exported) and how to regenerate the lists. Run as the `abi` ctest test
# and in .ci/run.
# usage: check-abi.sh LIBRARY [SYMBOL_LIST] [LIBRARY SYMBOL_LIST]...
set -eu
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp)
trap 'rm -f "$tmp" "$tmp.diff"' EXIT
status=0
while [ $# -gt 0 ]; do
  lib=$1
  list=${2:-$here/../abi/loom.symbols}
  shift
  [ $# -gt 0 ] && shift
  sh "$here/abi-symbols.sh" "$lib" >"$tmp"
  # The committed list may carry '#' comment lines.
  if grep -v '^#' "$list" | diff -u - "$tmp" >"$tmp.diff"; then
    echo "abi: $(wc -l <"$tmp") exported symbols of $(basename "$lib") match $(basename "$list")"
    continue
  fi
  echo "abi: the exported symbols of $lib differ from $list:" >&2
  sed -n '3,$p' "$tmp.diff" | grep '^[+-]' >&2 || true
  status=1
done
if [ $status -ne 0 ]; then
  echo "abi: if the change is intended, regenerate the lists with" >&2
  echo "  tools/update-abi.sh BUILD_DIR   (a default, non-sanitizer build)" >&2
  echo "and commit them with the change; see the soname policy in CMakeLists.txt." >&2
fi
exit $status
