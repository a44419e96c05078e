#!/bin/sh
# Regenerates abi/loom.symbols from the shared library of a build directory
# (a default build: a sanitizer build exports the same loom symbols, but the
# list is kept from a plain one). Commit the result together with the change
# that added or removed a symbol; the soname policy is in CMakeLists.txt.
# usage: update-abi.sh BUILD_DIR
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:?usage: update-abi.sh BUILD_DIR}
lib=$(find "$build" -maxdepth 1 -name 'libloom.so.*' -type f | head -n 1)
if [ -z "$lib" ]; then
  echo "update-abi: no libloom.so.* in $build (build it first)" >&2
  exit 1
fi
out=$here/../abi/loom.symbols
{
  echo "# Symbols exported by libloom.so, one a line, sorted (tools/abi-symbols.sh)."
  echo "# Checked by the abi test; regenerate with tools/update-abi.sh BUILD_DIR."
  sh "$here/abi-symbols.sh" "$lib"
} >"$out"
echo "update-abi: $(grep -vc '^#' "$out") symbols written to abi/loom.symbols"
