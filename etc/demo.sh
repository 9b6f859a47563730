#!/usr/bin/env bash
# README's first command: set up what is missing on a fresh Debian machine
# (fuse3), build mpathfs and run the embedded demo — our NVMe/TCP target on
# loopback with two paths, connected over real TCP and mounted at
# MOUNTPOINT (default /tmp/mpathfs). Ctrl-C unmounts and shuts down.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
mnt=${1:-/tmp/mpathfs}
shift || true
if ! command -v fusermount3 >/dev/null; then
	if [ "$(id -u)" = 0 ]; then
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fuse3 >/dev/null
	else
		echo "fuse3 is missing: run as root or apt-get install fuse3" >&2
		exit 1
	fi
fi
mkdir -p "$mnt"
go build -o /tmp/mpathfs-bin ./cmd/mpathfs
exec /tmp/mpathfs-bin demo "$@" "$mnt"
