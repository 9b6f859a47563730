#!/usr/bin/env bash
# Reproduces the performance figures of the closing notes, all in one run
# on this machine:
#   1. the loopback TCP ceiling (iperf3, single stream);
#   2. host <-> our target without FUSE (go test -bench ./nvme/host);
#   3. path selection and submit overhead (go test -bench ./mpath);
#   4. fio on a demo namespace file next to the same jobs on a RAM file in a
#      minimal go-fuse filesystem (the FUSE ceiling), as ratios.
# Usage: etc/bench.sh [RUNTIME_SECONDS]   (root, fuse3, fio, iperf3)
set -euo pipefail
cd "$(dirname "$0")/.."
rt=${1:-10}
out=${BENCH_OUT:-/tmp/mpathfs-bench}
mkdir -p "$out"
for t in fio iperf3 fusermount3; do command -v $t >/dev/null || { echo "need $t (apt-get install -y ${t/fusermount3/fuse3})"; exit 1; }; done
go build -o "$out/mpathfs" ./cmd/mpathfs

echo "== 1. loopback TCP ceiling (iperf3 -P1)"
iperf3 -s -1 -p 5299 >/dev/null 2>&1 &
sleep 0.5
iperf3 -c 127.0.0.1 -p 5299 -t "$rt" -J > "$out/iperf3.json"
ceil=$(python3 -c "import json;d=json.load(open('$out/iperf3.json'));print(round(d['end']['sum_received']['bits_per_second']/8/1e6))")
echo "loopback TCP: ${ceil} MB/s"

echo "== 2. host <-> our target, no FUSE"
go test -run XXX -bench . -benchmem -benchtime "${rt}s" ./nvme/host | tee "$out/host-bench.txt" | grep -E "^Benchmark"

echo "== 3. mpath selection / submit overhead"
go test -run XXX -bench . -benchmem ./mpath | tee "$out/mpath-bench.txt" | grep -E "^Benchmark"

echo "== 4. fio: demo namespace vs go-fuse RAM file"
mnt=$(mktemp -d) ram=$(mktemp -d)
"$out/mpathfs" demo --ports 0,0 --size 1G "$mnt" >"$out/demo.log" 2>&1 &
demo=$!
"$out/mpathfs" ramfs --size 1G "$ram" >"$out/ramfs.log" 2>&1 &
rampid=$!
trap 'kill -INT $demo $rampid 2>/dev/null; wait; rmdir "$mnt" "$ram" 2>/dev/null || true' EXIT
for i in $(seq 100); do [ -e "$mnt/nvme0n1" ] && [ -e "$ram/ram" ] && break; sleep 0.1; done
job() { # name rw bs iodepth file
	fio --name="$1" --filename="$5" --ioengine=libaio --direct=1 --rw="$2" --bs="$3" --iodepth="$4" \
		--size=1G --time_based --runtime="$rt" --output-format=json --randrepeat=0 |
		python3 -c "import json,sys;j=json.load(sys.stdin)['jobs'][0];k='read' if j['read']['io_bytes'] else 'write';print(round(j[k]['iops']), round(j[k]['bw_bytes']/1e6))"
}
printf "%-22s %14s %14s %8s\n" job "mpathfs IOPS/MB/s" "ramfs IOPS/MB/s" ratio
for spec in "seqread read 1M 8" "seqwrite write 1M 8" "randread randread 4k 32" "randwrite randwrite 4k 32"; do
	set -- $spec
	read -r mi mb < <(job "$1" "$2" "$3" "$4" "$mnt/nvme0n1")
	read -r ri rb < <(job "$1" "$2" "$3" "$4" "$ram/ram")
	ratio=$(python3 -c "print(f'{$mi/$ri:.2f}')")
	printf "%-22s %8s/%-5s %8s/%-5s %8s\n" "$1 bs=$3 qd=$4" "$mi" "$mb" "$ri" "$rb" "$ratio"
done
echo "(1M reads through mpathfs vs loopback TCP: see the seqread MB/s above against ${ceil} MB/s)"
