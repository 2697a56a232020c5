#!/usr/bin/env bash
# What a wake-up costs on this machine, on one CPU and across two: one byte
# ping-ponged between two threads over two pipes, the shape of an opener and
# a fanotify listener answering it. A listener's per-open cost in the shared
# harness is mostly this on some virtual machines (docs/performance.md, "Open
# cold on this VM"), so run it beside a benchmark before comparing machines.
#
#   tests/bench/wake-cost.sh [ROUND_TRIPS]
#
# Prints one JSON line per placement (both threads on CPU 0; on CPUs 0 and 1;
# free to move): round trip p50 and p90 in µs. Needs a C compiler; no root.
set -euo pipefail

N=${1:-20000}
[[ "$N" =~ ^[1-9][0-9]*$ ]] || { echo "wake-cost.sh: ROUND_TRIPS must be a positive integer, not '$N'" >&2; exit 2; }
cc=$(command -v cc || command -v gcc || true)
[ -n "$cc" ] || { echo "wake-cost.sh: no C compiler (apt-get install gcc)" >&2; exit 1; }
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT

cat > "$W/pingpong.c" <<'C'
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static int there[2], back[2], n, cpu_b;

static void pin(int cpu) {
    if (cpu < 0) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) { perror("sched_setaffinity"); exit(1); }
}

static void *echo(void *unused) {
    (void)unused;
    pin(cpu_b);
    char c;
    for (int i = 0; i < n; i++)
        if (read(there[0], &c, 1) != 1 || write(back[1], &c, 1) != 1) exit(1);
    return NULL;
}

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc != 5) return 2;
    n = atoi(argv[1]);
    int cpu_a = atoi(argv[2]);
    cpu_b = atoi(argv[3]);
    double *lat = malloc(sizeof *lat * n);
    if (!lat || pipe(there) || pipe(back)) return 1;
    pthread_t t;
    if (pthread_create(&t, NULL, echo, NULL)) return 1;
    pin(cpu_a);
    char c = 'x';
    for (int i = 0; i < n; i++) {
        double start = now_us();
        if (write(there[1], &c, 1) != 1 || read(back[0], &c, 1) != 1) return 1;
        lat[i] = now_us() - start;
    }
    pthread_join(t, NULL);
    qsort(lat, n, sizeof *lat, by_value);
    printf("{\"placement\": \"%s\", \"round_trips\": %d, \"p50_us\": %.1f, \"p90_us\": %.1f}\n",
           argv[4], n, lat[n / 2], lat[n * 9 / 10]);
    return 0;
}
C
"$cc" -O2 -pthread -o "$W/pingpong" "$W/pingpong.c"
"$W/pingpong" "$N" 0 0 one-cpu
if [ "$(nproc)" -ge 2 ]; then
    "$W/pingpong" "$N" 0 1 two-cpus
fi
"$W/pingpong" "$N" -1 -1 free
