#!/bin/sh
# Fails if a private name (the loom__ prefix) appears in a public header:
# include/ is the API users compile against, and internal types, fields and
# functions there would become part of it. Run as a ctest test and in .ci/run.
# usage: check-internal.sh [SOURCE_DIR]
set -eu
src=${1:-$(cd "$(dirname "$0")/.." && pwd)}
if grep -rn 'loom__' "$src/include"; then
  echo "check-internal: 'loom__' (private) names appear in include/ (above)" >&2
  exit 1
fi
echo "check-internal: include/ holds no loom__ name"
