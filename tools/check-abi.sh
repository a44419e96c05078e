#!/bin/sh
# Checks that a shared library exports exactly the symbols of the committed
# list (abi/loom.symbols), so adding or removing a public symbol is a
# deliberate change, reviewed with the list's diff. On a mismatch it prints
# the difference (+ exported but not listed, - listed but not exported) and
# how to regenerate the list. Run as the `abi` ctest test and in .ci/run.
# usage: check-abi.sh LIBRARY [SYMBOL_LIST]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
lib=$1
list=${2:-$here/../abi/loom.symbols}
tmp=$(mktemp)
trap 'rm -f "$tmp" "$tmp.diff"' EXIT
sh "$here/abi-symbols.sh" "$lib" >"$tmp"
# The committed list may carry '#' comment lines.
if grep -v '^#' "$list" | diff -u - "$tmp" >"$tmp.diff"; then
  rm -f "$tmp.diff"
  echo "abi: $(wc -l <"$tmp") exported symbols match $(basename "$list")"
  exit 0
fi
echo "abi: the exported symbols of $lib differ from $list:" >&2
sed -n '3,$p' "$tmp.diff" | grep '^[+-]' >&2 || true
rm -f "$tmp.diff"
echo "abi: if the change is intended, regenerate the list with" >&2
echo "  tools/update-abi.sh BUILD_DIR   (a default, non-sanitizer build)" >&2
echo "and commit it with the change; see the soname policy in CMakeLists.txt." >&2
exit 1
