#!/usr/bin/env bash
# Chaos run: `mpathfs target` (its own process) and `mpathfs mount` of both
# its ports under fio crc32c verify load, with a seeded schedule of
# overlapping faults (drop, stall, listen off, ANA flips, fail_next path
# statuses, iptables RST and silent DROP, both paths down); prints one
# summary line and exits non-zero on any verify error, EIO or other failure.
#
# Usage: etc/chaos.sh [-duration 30m] [-gap 2s] [-seed N] [-kinds drop,stall,...] [-dir DIR]
#   (root, fuse3, fio; iptables for the rst/blackhole kinds)
# The long run of the closing notes: etc/chaos.sh -duration 30m -gap 1.2s
set -euo pipefail
cd "$(dirname "$0")/.."
out=${CHAOS_OUT:-/tmp/mpathfs-chaos}
mkdir -p "$out"
go build -o "$out/mpathfs" ./cmd/mpathfs
go build -o "$out/chaosrun" ./internal/chaos/chaosrun
exec "$out/chaosrun" -bin "$out/mpathfs" -dir "$out/run" "$@"
