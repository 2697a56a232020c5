#!/usr/bin/env bash
# The `build` workload of issue 18 (item 5) for the shared on-access benchmark:
# a parallel C build (`make -j2`) in the harness's test mount of a few hundred
# small generated C files, which archives them into libraries, links several
# programs and test programs, and runs each program it links once (`make
# check`): every object, archive and program is a fresh file on the watched
# filesystem, and every program's first exec is the exec of a never-seen binary.
#
#   sudo ./bench.sh --agents baseline,fan-allow,vigil --agent-file .../tests/bench/vigil.sh \
#        --workload-cmd "build=$V/tests/bench/workloads/build.sh"
#
# The sources are generated once (cached in $BUILD_CACHE, keyed by this
# script's parameters), outside the timed part; each run copies them into a
# fresh directory of $MNT (untimed) and times `make -j$JOBS check` alone. The
# last output line is the JSON row the harness records:
#   {"workload":"build","n":<C files>,"errors":<0|1>,"total_s":<seconds>}
# Shape (defaults: BUILD_GROUPS=8, BUILD_MODULES=30, BUILD_TESTS=5): per group a
# library of 30 modules plus the function calling them all, one program (main +
# the library) and 5 test programs: 8 x (30 + 1 + 1 + 5) = 296 C files, 8
# archives, 48 programs linked and run once each.
# Run by hand: MNT=/some/scratch tests/bench/workloads/build.sh
set -euo pipefail

: "${MNT:?MNT (the test mount) is not set: run under bench.sh or set MNT}"
CACHE=${BUILD_CACHE:-/var/tmp/vigil-bench-build}
GROUPS_N=${BUILD_GROUPS:-8}
MODULES=${BUILD_MODULES:-30}
TESTS=${BUILD_TESTS:-5}
JOBS=${BUILD_JOBS:-2}
command -v make >/dev/null 2>&1 && command -v cc >/dev/null 2>&1 && command -v ar >/dev/null 2>&1 \
    || { echo "build.sh: make, cc and ar are needed (apt-get install build-essential)" >&2; exit 1; }

generate() { # DIR
    local d=$1 g m t
    for g in $(seq 0 $((GROUPS_N - 1))); do
        mkdir -p "$d/g$g"
        {
            echo "#ifndef G${g}_H"
            echo "#define G${g}_H"
            for m in $(seq 0 $((MODULES - 1))); do
                echo "unsigned long g${g}_m${m}(unsigned long x);"
            done
            echo "unsigned long g${g}_all(unsigned long x);"
            echo "#endif"
        } > "$d/g$g/g$g.h"
        for m in $(seq 0 $((MODULES - 1))); do
            # Some real work per module (a table, a loop, a string) so the
            # objects are not all alike.
            cat > "$d/g$g/m$m.c" <<C
#include <stdio.h>
#include <string.h>
#include "g$g.h"
static const unsigned long table_${m}[16] = {
    $((g * 131 + m)), $((m * 17 + 3)), $((g + 7)), $((m * m + 1)), 5, 8, 13, 21,
    34, 55, 89, 144, $((g * m + 11)), 377, 610, 987 };
unsigned long g${g}_m${m}(unsigned long x) {
    char buf[64];
    unsigned long h = x ^ 0x9e3779b97f4a7c15UL;
    for (int i = 0; i < 16; i++)
        h = (h * 31u + table_${m}[i]) ^ (h >> 7);
    snprintf(buf, sizeof buf, "g$g/m$m:%lu", h & 0xffffu);
    return h + strlen(buf);
}
C
        done
        {
            echo "#include \"g$g.h\""
            echo "unsigned long g${g}_all(unsigned long x) {"
            for m in $(seq 0 $((MODULES - 1))); do
                echo "    x = g${g}_m${m}(x);"
            done
            echo "    return x;"
            echo "}"
        } > "$d/g$g/all.c"
        cat > "$d/g$g/main.c" <<C
#include <stdio.h>
#include "g$g.h"
int main(void) { printf("g$g %lu\\n", g${g}_all($g)); return 0; }
C
        for t in $(seq 0 $((TESTS - 1))); do
            cat > "$d/g$g/t$t.c" <<C
#include "g$g.h"
int main(void) {
    /* a function of the library is deterministic: two calls agree */
    unsigned long a = g${g}_m$((t % MODULES))($t), b = g${g}_m$((t % MODULES))($t);
    return a == b && g${g}_all($t) == g${g}_all($t) ? 0 : 1;
}
C
        done
    done
    # The Makefile: objects per group, one archive per group, the programs;
    # `check` runs every program once.
    {
        echo 'CC ?= cc'
        echo 'CFLAGS ?= -O1'
        echo 'PROGS :='
        echo 'TESTS :='
        for g in $(seq 0 $((GROUPS_N - 1))); do
            echo "G${g}_OBJS := $(for m in $(seq 0 $((MODULES - 1))); do printf 'g%s/m%s.o ' "$g" "$m"; done)g$g/all.o"
            echo "g$g/libg$g.a: \$(G${g}_OBJS)"
            printf '\t$(AR) rcs $@ $^\n'
            echo "g$g/prog: g$g/main.o g$g/libg$g.a"
            printf '\t$(CC) $(CFLAGS) -o $@ $^\n'
            echo "PROGS += g$g/prog"
            for t in $(seq 0 $((TESTS - 1))); do
                echo "g$g/t$t: g$g/t$t.o g$g/libg$g.a"
                printf '\t$(CC) $(CFLAGS) -o $@ $^\n'
                echo "TESTS += g$g/t$t"
            done
            echo "\$(G${g}_OBJS) g$g/main.o $(for t in $(seq 0 $((TESTS - 1))); do printf 'g%s/t%s.o ' "$g" "$t"; done): g$g/g$g.h"
        done
        echo '%.o: %.c'
        printf '\t$(CC) $(CFLAGS) -c -o $@ $<\n'
        echo 'all: $(PROGS) $(TESTS)'
        echo 'check: all'
        printf '\t@set -e; for p in $(PROGS) $(TESTS); do ./$$p > /dev/null; done\n'
        echo '.PHONY: all check'
        echo '.DEFAULT_GOAL := all'
    } > "$d/Makefile"
}

key=$(printf 'v1 %s %s %s' "$GROUPS_N" "$MODULES" "$TESTS" | sha256sum | cut -c1-16)
SRC=$CACHE/$key
if [ ! -f "$SRC/Makefile" ]; then
    rm -rf "$SRC.tmp"
    mkdir -p "$SRC.tmp"
    generate "$SRC.tmp"
    rm -rf "$SRC"
    mv "$SRC.tmp" "$SRC"
fi
files=$(find "$SRC" -name '*.c' | wc -l)

# A fresh copy in the test mount (untimed); the pause lets a listener that scans
# files as they are written finish before the timer starts.
DIR=$(mktemp -d "$MNT/build.XXXXXX")
cp -r "$SRC/." "$DIR/"
sleep 1

errors=0
t0=$(date +%s%N)
make -s -C "$DIR" -j"$JOBS" check > "$DIR/build.out" 2>&1 || errors=1
t1=$(date +%s%N)
if [ "$errors" = 0 ]; then rm -rf "$DIR"; else tail -20 "$DIR/build.out" >&2; fi
printf '{"workload":"build","n":%s,"errors":%s,"total_s":%s}\n' \
    "$files" "$errors" "$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", (b - a) / 1e9}')"
