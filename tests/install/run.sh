#!/bin/sh
# Installs the build tree into a temporary prefix, then builds and runs a
# consumer program against it: find_package(loom) with the shared and the
# static library, then pkg-config (plain and --static); and the same for a
# consumer of the optional libraries (libloom-tls, libloom-http) the build
# has. The prefix is moved before the pkg-config builds, to prove the .pc
# files are relocatable. Building loom from source inside another project
# (add_subdirectory) is subproject.sh's job.
# usage: run.sh BUILD_DIR SOURCE_DIR WORK_DIR
# Environment: LOOM_CONSUMER_FLAGS, compiler/linker flags for the consumer
# (sanitizer builds); LOOM_RUN, a command that runs each consumer (valgrind).
set -eu
build=$1 src=$2 work=$3
fl=${LOOM_CONSUMER_FLAGS:-}
run=${LOOM_RUN:-}
rm -rf "$work"
mkdir -p "$work"
cmake --install "$build" --prefix "$work/prefix" >/dev/null

cmake -S "$src" -B "$work/cmake" -DCMAKE_PREFIX_PATH="$work/prefix" \
  -DCMAKE_C_FLAGS="$fl" -DCMAKE_EXE_LINKER_FLAGS="$fl" >/dev/null
cmake --build "$work/cmake" >/dev/null
LD_LIBRARY_PATH="$work/prefix/lib" $run "$work/cmake/consumer-shared"
$run "$work/cmake/consumer-static"
# The soname carries the minor version while loom is 0.x (the ABI policy in
# CMakeLists.txt); the static consumer needs no libloom at run time.
readelf -d "$work/cmake/consumer-shared" | grep -q 'NEEDED.*libloom\.so\.0\.[0-9]' || {
  echo "install: consumer-shared does not need libloom.so.0.<minor>" >&2; exit 1; }
if readelf -d "$work/cmake/consumer-static" | grep -q 'NEEDED.*libloom'; then
  echo "install: consumer-static needs a shared libloom" >&2; exit 1
fi
# A program that uses neither TLS nor the HTTP client loads neither OpenSSL
# nor libcurl: they are libloom-tls's and libloom-http's, not libloom's.
lib=$(find "$work/prefix" -name 'libloom.so.*.*.*' -type f | head -n 1)
[ -n "$lib" ] || { echo "install: no libloom.so.*.*.* installed" >&2; exit 1; }
if readelf -d "$lib" "$work/cmake/consumer-shared" | grep -E 'NEEDED.*(libssl|libcrypto|libcurl)'; then
  echo "install: libloom or a consumer of it alone needs OpenSSL or libcurl" >&2; exit 1
fi
# The optional libraries the package has, shared and static.
mods=""
for m in tls http; do
  if [ -n "$(find "$work/prefix" -name "libloom-$m.so.*.*.*")" ]; then mods="$mods $m"; fi
done
if [ -n "$mods" ]; then
  LD_LIBRARY_PATH="$work/prefix/lib" $run "$work/cmake/consumer-modules-shared"
  $run "$work/cmake/consumer-modules-static"
  # Each binds libloom's internals at the exact version it was built with
  # (cmake/loom-private.map.in): another libloom fails to load it.
  ver=$(basename "$lib" | sed 's/^libloom\.so\.//')
  for m in $mods; do
    readelf -d "$work/cmake/consumer-modules-shared" |
      grep -q "NEEDED.*libloom-$m\.so\.0\.[0-9]" || {
      echo "install: consumer-modules-shared does not need libloom-$m.so.0.<minor>" >&2
      exit 1; }
    readelf -V "$(find "$work/prefix" -name "libloom-$m.so.*.*.*" -type f)" |
      grep -q "Name: LOOM_PRIVATE_$ver" || {
      echo "install: libloom-$m does not need LOOM_PRIVATE_$ver of libloom" >&2
      exit 1; }
  done
fi

mv "$work/prefix" "$work/moved"
pcdir=$(dirname "$(find "$work/moved" -name loom.pc)")
cc=${CC:-cc}
flags=$(PKG_CONFIG_PATH="$pcdir" pkg-config --cflags --libs loom)
# shellcheck disable=SC2086
$cc $fl -o "$work/consumer-pc" "$src/consumer.c" $flags
libdir=$(PKG_CONFIG_PATH="$pcdir" pkg-config --variable=libdir loom)
LD_LIBRARY_PATH="$libdir" $run "$work/consumer-pc"
flags=$(PKG_CONFIG_PATH="$pcdir" pkg-config --static --cflags --libs loom |
        sed 's/-lloom\b/-l:libloom.a/')
# shellcheck disable=SC2086
$cc $fl -o "$work/consumer-pc-static" "$src/consumer.c" $flags
$run "$work/consumer-pc-static"
if [ -n "$mods" ]; then
  pcs="" defs=""
  for m in $mods; do
    pcs="$pcs loom-$m"
    defs="$defs -DLOOM_CONSUMER_$(echo "$m" | tr a-z A-Z)"
  done
  # shellcheck disable=SC2086
  flags=$(PKG_CONFIG_PATH="$pcdir" pkg-config --cflags --libs $pcs)
  # shellcheck disable=SC2086
  $cc $fl $defs -o "$work/consumer-modules-pc" "$src/consumer-modules.c" $flags
  LD_LIBRARY_PATH="$libdir" $run "$work/consumer-modules-pc"
  # shellcheck disable=SC2086
  flags=$(PKG_CONFIG_PATH="$pcdir" pkg-config --static --cflags --libs $pcs |
          sed 's/-lloom\(-[a-z]*\)\{0,1\}\b/-l:libloom\1.a/g')
  # shellcheck disable=SC2086
  $cc $fl $defs -o "$work/consumer-modules-pc-static" "$src/consumer-modules.c" $flags
  $run "$work/consumer-modules-pc-static"
fi
echo "install: ok"
