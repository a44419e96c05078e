#!/bin/sh
# Builds loom from source inside another project (subproject/, through
# add_subdirectory) twice, with BUILD_SHARED_LIBS ON and OFF, and runs the
# consumer program each time. subproject/CMakeLists.txt checks at configure
# time that loom built only its library and left the parent alone; this
# script checks the result: no test or example program on disk, and a
# consumer linked to the shared library (by its 0.<minor> soname) or to none;
# and runs the consumer of the optional libraries when they were built.
# usage: subproject.sh LOOM_SOURCE_DIR WORK_DIR [FIBER_BACKEND]
set -eu
src=$1 work=$2 backend=${3:-asm}
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$work"
mkdir -p "$work"
for shared in ON OFF; do
  dir=$work/shared-$shared
  if [ "$shared" = ON ]; then type=SHARED_LIBRARY; else type=STATIC_LIBRARY; fi
  cmake -S "$here/subproject" -B "$dir" -DLOOM_SOURCE_DIR="$src" \
    -DLOOM_EXPECT_TYPE=$type -DBUILD_SHARED_LIBS=$shared \
    -DLOOM_FIBER_BACKEND="$backend" >"$dir.log" 2>&1 || {
    cat "$dir.log"; exit 1; }
  cmake --build "$dir" -j2 >>"$dir.log" 2>&1 || { cat "$dir.log"; exit 1; }
  built=$(find "$dir" -type f \( -name 'test-*' -o -name 'bench-*' \
          -o -name hello -o -name echo_server \) | head -n 5)
  if [ -n "$built" ]; then
    echo "subproject: built programs that are not the library:" >&2
    echo "$built" >&2
    exit 1
  fi
  needed=$(readelf -d "$dir/consumer" | grep 'NEEDED.*libloom' || true)
  if [ "$shared" = ON ]; then
    echo "$needed" | grep -q 'libloom\.so\.0\.[0-9]' || {
      echo "subproject: consumer does not need libloom.so.0.<minor>: $needed" >&2
      exit 1; }
  elif [ -n "$needed" ]; then
    echo "subproject: static consumer needs a shared libloom: $needed" >&2
    exit 1
  fi
  "$dir/consumer"
  if [ -x "$dir/consumer-modules" ]; then "$dir/consumer-modules"; fi
done
echo "subproject: ok"
