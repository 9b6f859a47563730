#!/usr/bin/env bash
# Memory benchmark: peak RSS of `mpathfs mount` under a mixed-size fio load
# (random request sizes 4 KiB..1 MiB, random reads and writes, QD32, O_DIRECT)
# against `mpathfs target` in a separate process, then the RSS after the load
# stops and the daemon has been idle for a while.
#
# Usage: etc/memory.sh [RUNTIME_SECONDS [IDLE_SECONDS]]   (root, fuse3, fio)
#   MEM_BIN=path      use this mpathfs binary instead of building one
#   MEM_BS=4k-1m      fio --bsrange; MEM_RW=randrw; MEM_QD=32; MEM_JOBS=1
#   MEM_OPTS="-o .."  extra mount arguments
# Prints one summary line:
#   memory: bs=4k-1m rw=randrw qd=32 jobs=1 peak_rss=…MB idle_rss=…MB after …s (…MB/s)
set -euo pipefail
cd "$(dirname "$0")/.."
rt=${1:-30}
idle=${2:-10}
bs=${MEM_BS:-4k-1m} rw=${MEM_RW:-randrw} qd=${MEM_QD:-32} jobs=${MEM_JOBS:-1}
out=${MEM_OUT:-/tmp/mpathfs-memory}
mkdir -p "$out"
for t in fio fusermount3 python3; do command -v $t >/dev/null || { echo "need $t"; exit 1; }; done
bin=${MEM_BIN:-}
if [ -z "$bin" ]; then
	bin=$out/mpathfs
	go build -o "$bin" ./cmd/mpathfs
fi

# Two free loopback ports for the target's two paths.
. etc/lib.sh
read -r p1 p2 < <(two_free_ports)
nqn=nqn.2026-11.io.mpathfs:memory
target_json "$p1" "$p2" "$nqn" "mpathfs memory" mpathfs-mem-1 1G 6b740000-0000-4000-8000-0000000000a1 >"$out/nvmet.json"
mnt=$(mktemp -d)
"$bin" target -c "$out/nvmet.json" >"$out/target.log" 2>&1 &
tpid=$!
mpid=
cleanup() {
	[ -n "$mpid" ] && kill -INT "$mpid" 2>/dev/null && wait "$mpid" 2>/dev/null
	kill -INT "$tpid" 2>/dev/null && wait "$tpid" 2>/dev/null
	rmdir "$mnt" 2>/dev/null || true
}
trap cleanup EXIT
for i in $(seq 100); do grep -q "addr=127.0.0.1:$p2" "$out/target.log" && break; sleep 0.1; done
# shellcheck disable=SC2086
"$bin" mount --connect traddr=127.0.0.1,trsvcid=$p1,nqn=$nqn --connect traddr=127.0.0.1,trsvcid=$p2,nqn=$nqn \
	${MEM_OPTS:-} "$mnt" >"$out/mount.log" 2>&1 &
mpid=$!
for i in $(seq 100); do [ -e "$mnt/nvme0n1" ] && break; sleep 0.1; done
[ -e "$mnt/nvme0n1" ] || { echo "mount failed:"; tail "$out/mount.log"; exit 1; }

rss() { awk '/^VmRSS/ {print int($2/1024)}' "/proc/$mpid/status"; }
start_rss=$(rss)
# Sample RSS every 100 ms during the load; VmHWM gives the true peak.
fio --name=mem --filename="$mnt/nvme0n1" --ioengine=libaio --direct=1 --rw="$rw" --bsrange="$bs" \
	--iodepth="$qd" --numjobs="$jobs" --group_reporting --size=1G --time_based --runtime="$rt" \
	--randrepeat=0 --output-format=json >"$out/fio.json" &
fpid=$!
samples=$out/rss.txt
: >"$samples"
while kill -0 $fpid 2>/dev/null; do rss >>"$samples"; sleep 0.1; done
wait $fpid
peak=$(awk '/^VmHWM/ {print int($2/1024)}' "/proc/$mpid/status")
end_rss=$(rss)
sleep "$idle"
idle_rss=$(rss)
mbs=$(python3 -c "import json;j=json.load(open('$out/fio.json'))['jobs'][0];print(round((j['read']['bw_bytes']+j['write']['bw_bytes'])/1e6))")
echo "memory: bs=$bs rw=$rw qd=$qd jobs=$jobs start_rss=${start_rss}MB peak_rss=${peak}MB end_rss=${end_rss}MB idle_rss=${idle_rss}MB after ${idle}s (${mbs}MB/s)"
