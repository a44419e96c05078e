#!/bin/sh
# Regenerates abi/loom.symbols, and abi/loom-tls.symbols and
# abi/loom-http.symbols when the build has those libraries, from the shared
# libraries of a build directory (a default build: a sanitizer build exports
# the same loom symbols, but the lists are kept from a plain one). Commit the
# result together with the change that added or removed a symbol; the soname
# policy is in CMakeLists.txt.
# usage: update-abi.sh BUILD_DIR
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:?usage: update-abi.sh BUILD_DIR}
found=0
for name in loom loom-tls loom-http; do
  lib=$(find "$build" -maxdepth 1 -name "lib$name.so.*" -type f | head -n 1)
  [ -n "$lib" ] || continue
  found=1
  out=$here/../abi/$name.symbols
  {
    echo "# Symbols exported by lib$name.so, one a line, sorted (tools/abi-symbols.sh)."
    if [ "$name" = loom ]; then
      echo "# The loom__ names are the internals the optional libraries call"
      echo "# (src/core/module-api.h): exported, but not API."
    fi
    echo "# Checked by the abi test; regenerate with tools/update-abi.sh BUILD_DIR."
    sh "$here/abi-symbols.sh" "$lib"
  } >"$out"
  echo "update-abi: $(grep -vc '^#' "$out") symbols written to abi/$name.symbols"
done
if [ $found -eq 0 ]; then
  echo "update-abi: no libloom.so.* in $build (build it first)" >&2
  exit 1
fi
