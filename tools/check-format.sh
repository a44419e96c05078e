#!/bin/sh
# Checks that the C files of src/ include/ tests/ examples/ bench/ are
# formatted as .clang-format says (clang-format from Debian's clang-format
# package). Prints each file that is not, with the number of lines that
# would change, and fails. With --fix, formats them in place instead.
# usage: check-format.sh [--fix] [SOURCE_DIR]
# Environment: CLANG_FORMAT, the clang-format to use (default clang-format).
set -eu
fix=0
if [ "${1:-}" = "--fix" ]; then fix=1; shift; fi
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cf=${CLANG_FORMAT:-clang-format}
if ! command -v "$cf" >/dev/null 2>&1; then
  echo "check-format: $cf not found (apt-get install clang-format)" >&2
  exit 2
fi
cd "$root"
files=$(find src include tests examples bench -type f \( -name '*.c' -o -name '*.h' \) |
        LC_ALL=C sort)
if [ "$fix" = 1 ]; then
  # shellcheck disable=SC2086
  "$cf" -i --style=file $files
  echo "check-format: formatted $(echo "$files" | wc -l) files"
  exit 0
fi
bad=0 lines=0
for f in $files; do
  n=$("$cf" --style=file "$f" | diff -U0 "$f" - | grep -c '^[-+][^-+]' || true)
  if [ "$n" -gt 0 ]; then
    echo "$f: $n lines differ from clang-format's"
    bad=$((bad + 1)) lines=$((lines + n))
  fi
done
total=$(echo "$files" | wc -l)
if [ "$bad" -gt 0 ]; then
  echo "check-format: $bad of $total files not formatted ($lines lines);" \
       "see one with: $cf --style=file FILE | diff FILE -;" \
       "fix all with: tools/check-format.sh --fix" >&2
  exit 1
fi
echo "check-format: $total files formatted"
