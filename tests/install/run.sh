#!/bin/sh
# Installs the build tree into a temporary prefix, then builds and runs a
# consumer program against it three ways: find_package(loom) with the shared
# and the static library, and pkg-config. The prefix is then moved, to prove
# loom.pc is relocatable.
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
echo "install: ok"
