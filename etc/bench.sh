#!/usr/bin/env bash
# What a user gets from mpathfs, against the nearest peer and the ceiling,
# all in one run on this machine:
#   mpathfs  `mpathfs target` (its own process, RAM namespace) and
#            `mpathfs mount` of both its ports (iopolicy round-robin);
#   nbdfuse  nbdfuse over `nbdkit memory` on loopback TCP (the peer: a network
#            block protocol as a FUSE file);
#   ramfs    `mpathfs ramfs` (a go-fuse RAM file: the FUSE ceiling);
#   mpathfs-1p  a second mount of one port only (for 2 paths vs 1 path);
#   B        optionally a second mpathfs build (target + mount), for A/B work.
# Every file is prefilled (fio writes its own pseudo-random buffers; no
# /dev/urandom). Each job moves a fixed amount of I/O; the jobs are run on
# every system in turn (the order rotates every repetition), REPS times,
# and the figures are the medians and min..max of the paired ratios.
# CPU per I/O is utime+stime from /proc/PID/stat of the initiator (the FUSE
# server) and of the target process over the job, divided by its I/Os.
#
# Usage: etc/bench.sh [--quick] [--reps N] [--jobs REGEX] [--b BINARY]
#                     [--a-env 'K=V ...'] [--b-env 'K=V ...']
#                     [--a-mount-opts O] [--b-mount-opts O] [--no-ramfs] [--no-nbd]
#                     [--no-paths] [--a-inline BYTES] [--b-inline BYTES]
#   --quick   a quarter of the I/O per job, 3 repetitions (~1-2 minutes)
#   --b BIN   also measure BIN (another mpathfs build) as system "B";
#             the table then gets mpathfs/B ratios
#   --a-env/--b-env  environment of A's/B's target and mount (e.g. GOMAXPROCS=2)
# Output: the tables on stdout; raw per-run figures in $BENCH_OUT/runs.json.
# Needs root, fuse3, fio, nbdkit, nbdfuse, python3, go.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${BENCH_OUT:-/tmp/mpathfs-bench}
mkdir -p "$out"
for t in fio nbdkit nbdfuse fusermount3 python3; do
	command -v $t >/dev/null || { echo "need $t" >&2; exit 1; }
done
go build -o "$out/mpathfs" ./cmd/mpathfs
exec python3 etc/bench.py --bin "$out/mpathfs" --out "$out" "$@"
