#!/usr/bin/env bash
# How long reads stall when the path carrying them fails: `mpathfs target`
# (its own process) and `mpathfs mount` of both its ports (numa policy, so
# all I/O is on the first path, keep_alive_tmo 5 s); fio runs a job with a
# completion-latency log; after 3 s the first port fails for 3 s:
#   stall      our target's fault/stall (TCP open, nothing answered)
#   drop       iptables DROP of the port's loopback traffic (silent)
#   rst        iptables REJECT --reject-with tcp-reset
# and the longest gap between two completions (and the longest I/O) is
# printed per fault and job: randread (4 KiB, QD8), rw7030 (one job, 70%
# reads), mix (a read job QD6 next to a write job QD2: gap between reads).
# A write in flight on the failed path waits for the write fence (or the
# path's return) while the I/O after it goes on on the other path. fio
# itself waits for every I/O in flight whenever it grows its latency log
# (io_u_quiesce on TD_F_REGROW_LOGS), which would turn that held write
# into a gap of the whole job: the log is allocated for the whole run
# up front (--log_entries), so no regrow happens within it.
# Usage: etc/silentpath.sh [FAULTS [JOBS]]   (root, fuse3, fio, iptables)
#   FAULTS default "stall drop rst"; JOBS default "randread rw7030 mix"
set -euo pipefail
cd "$(dirname "$0")/.."
faults=${1:-stall drop rst}
jobs=${2:-randread rw7030 mix}
out=${SP_OUT:-/tmp/mpathfs-silentpath}
mkdir -p "$out"
bin=${SP_BIN:-$out/mpathfs}
[ -n "${SP_BIN:-}" ] || go build -o "$bin" ./cmd/mpathfs
. etc/lib.sh
read -r p1 p2 < <(two_free_ports)
nqn=nqn.2026-11.io.mpathfs:silentpath
target_json "$p1" "$p2" "$nqn" "mpathfs silentpath" mpathfs-sp-1 256M 6b740000-0000-4000-8000-0000000000b1 >"$out/nvmet.json"
mnt=$(mktemp -d) ctl=$(mktemp -d)
"$bin" target -c "$out/nvmet.json" --control "$ctl" >"$out/target.log" 2>&1 &
tpid=$!
mpid=
tag="mpathfs-silentpath-$$"
ipt() { iptables -w "$@" -m comment --comment "$tag"; }
unfault() {
	echo 0 >"$ctl/ports/1/fault/stall" 2>/dev/null || true
	while ipt -D INPUT -i lo -p tcp --dport "$p1" -j DROP 2>/dev/null; do :; done
	while ipt -D INPUT -i lo -p tcp --sport "$p1" -j DROP 2>/dev/null; do :; done
	while ipt -D INPUT -i lo -p tcp --dport "$p1" -j REJECT --reject-with tcp-reset 2>/dev/null; do :; done
}
cleanup() {
	unfault
	[ -n "$mpid" ] && kill -INT "$mpid" 2>/dev/null && wait "$mpid" 2>/dev/null
	kill -INT "$tpid" 2>/dev/null && wait "$tpid" 2>/dev/null
	rmdir "$mnt" "$ctl" 2>/dev/null || true
}
trap cleanup EXIT
for i in $(seq 100); do [ -e "$ctl/ports/1/fault/stall" ] && break; sleep 0.1; done
"$bin" mount --connect traddr=127.0.0.1,trsvcid=$p1,nqn=$nqn,keep_alive_tmo=5,reconnect_delay=1 \
	--connect traddr=127.0.0.1,trsvcid=$p2,nqn=$nqn,keep_alive_tmo=5,reconnect_delay=1 "$mnt" >"$out/mount.log" 2>&1 &
mpid=$!
for i in $(seq 100); do [ -e "$mnt/nvme0n1" ] && break; sleep 0.1; done
[ -e "$mnt/nvme0n1" ] || { echo "mount failed"; tail "$out/mount.log"; exit 1; }
fio --name=fill --filename="$mnt/nvme0n1" --rw=write --bs=1M --size=256M --direct=1 --ioengine=libaio --iodepth=8 >/dev/null

printf "%-7s %-9s %10s %12s %8s\n" fault job max_gap_ms max_lat_ms ios
for f in $faults; do
	for j in $jobs; do
		case $j in
		randread) rw="--rw=randread" ;;
		rw7030) rw="--rw=randrw --rwmixread=70" ;;
		randwrite) rw="--rw=randwrite" ;;
		# reads and writes from two jobs (6 + 2 deep): the read job's gap,
		# not coupled to fio's slots held by writes waiting for the fence
		mix) rw="--rw=randread --iodepth=6 --name=w --rw=randwrite --iodepth=2" ;;
		esac
		# Let a path failed by the previous case come back first.
		for i in $(seq 100); do [ "$(cat "$mnt/sys/class/nvme/nvme0/state")" = live ] && break; sleep 0.2; done
		sleep 2
		rm -f "$out/lat_clat".*.log
		# shellcheck disable=SC2086
		fio --filename="$mnt/nvme0n1" --ioengine=libaio --direct=1 --bs=4k --iodepth=8 --size=256M \
			--io_size=1T --norandommap --time_based --runtime=10 --write_lat_log="$out/lat" --log_avg_msec=0 --log_entries=1048576 \
			--randrepeat=0 --output-format=json --name=sp $rw >"$out/fio-$f-$j.json" &
		fpid=$!
		sleep 3
		case $f in
		stall) echo 1 >"$ctl/ports/1/fault/stall" ;;
		drop) ipt -I INPUT -i lo -p tcp --dport "$p1" -j DROP; ipt -I INPUT -i lo -p tcp --sport "$p1" -j DROP ;;
		rst) ipt -I INPUT -i lo -p tcp --dport "$p1" -j REJECT --reject-with tcp-reset ;;
		esac
		sleep 3
		unfault
		wait $fpid
		python3 - "$f" "$j" "$out" <<'EOF'
import glob, json, sys
f, j, out = sys.argv[1:]
at, lat = [], 0
for name in glob.glob(out + "/lat_clat.*.log"):
    for line in open(name):
        fs = line.split(",")
        if j == "mix" and fs[2].strip() != "0":
            continue  # mix: the gap between read completions
        at.append(int(fs[0])); lat = max(lat, int(fs[1]))
at.sort()
gap = max(b - a for a, b in zip(at, at[1:]))
r = json.load(open(f"{out}/fio-{f}-{j}.json"))["jobs"][0]
err = max(x["error"] for x in json.load(open(f"{out}/fio-{f}-{j}.json"))["jobs"])
print(f"{f:7s} {j:9s} {gap:10d} {lat/1e6:12.1f} {len(at):8d}" + (f"  fio error {err}" if err else ""))
EOF
	done
done
