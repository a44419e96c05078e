#!/bin/sh
# Prints the dynamic symbols a shared library defines (exports), one name a
# line, sorted: the form of abi/loom.symbols. Symbol versions (@VER), and
# the version definitions themselves (absolute symbols), are dropped: only
# the internals the optional libraries call carry one
# (cmake/loom-private.map.in).
# usage: abi-symbols.sh LIBRARY
set -eu
lib=$1
nm=${NM:-nm}
"$nm" -D --defined-only "$lib" | awk 'NF >= 3 && $2 != "A" { sub(/@.*/, "", $3); print $3 }' |
  LC_ALL=C sort -u
