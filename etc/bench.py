#!/usr/bin/env python3
"""Driver of etc/bench.sh (see there): sets the systems up, runs the fio jobs
alternating between them and prints the summary tables."""

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

NQN = "nqn.2026-12.io.mpathfs:bench"
TICK = os.sysconf("SC_CLK_TCK")

# name: (fio arguments, I/O count in full mode, what the table shows)
JOBS = [
    ("4k randread QD32", "--rw=randread --bs=4k --ioengine=libaio --iodepth=32", 80000, "iops"),
    ("4k randwrite QD32", "--rw=randwrite --bs=4k --ioengine=libaio --iodepth=32", 80000, "iops"),
    ("4k randread QD1 lat", "--rw=randread --bs=4k --ioengine=psync --iodepth=1", 16000, "lat"),
    ("1M write psync QD1", "--rw=write --bs=1M --ioengine=psync --iodepth=1", 2048, "bw"),
    ("1M write libaio QD8", "--rw=write --bs=1M --ioengine=libaio --iodepth=8", 3072, "bw"),
    ("1M read QD1", "--rw=read --bs=1M --ioengine=psync --iodepth=1", 2048, "bw"),
    ("1M read QD8", "--rw=read --bs=1M --ioengine=libaio --iodepth=8", 3072, "bw"),
]
# jobs also run on the one-path mount (2 paths vs 1 path)
PATH_JOBS = {"4k randread QD32", "4k randwrite QD32", "1M write libaio QD8"}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return int(rest[11]) + int(rest[12])  # utime, stime


def wait_for(pred, what, proc=None, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"bench: {what}: process exited ({proc.returncode}), see its log")
        time.sleep(0.05)
    raise SystemExit(f"bench: timed out waiting for {what}")


def listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
        return True
    except OSError:
        return False


class Bench:
    def __init__(self, a):
        self.a = a
        self.procs = []
        self.mounts = []
        self.tmp = tempfile.mkdtemp(prefix="mpathfs-bench-")
        self.systems = {}  # name -> (file, initiator pid, target pid or None)

    def spawn(self, args, log, env=None):
        e = dict(os.environ)
        e.update(env or {})
        p = subprocess.Popen(args, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=e,
                             start_new_session=True)
        self.procs.append(p)
        return p

    def mountpoint(self, name):
        d = os.path.join(self.tmp, name)
        os.mkdir(d)
        self.mounts.append(d)
        return d

    def mpathfs(self, tag, binary, env, mopts, inline):
        ports = [free_port(), free_port()]
        cfg = {
            "hosts": [],
            "ports": [{
                "addr": {"adrfam": "ipv4", "traddr": "127.0.0.1", "treq": "not specified",
                         "trsvcid": str(p), "trtype": "tcp"},
                "ana_groups": [{"ana": {"state": "optimized"}, "grpid": 1}],
                "param": {"inline_data_size": str(inline)} if inline else {}, "portid": i + 1, "referrals": [], "subsystems": [NQN],
            } for i, p in enumerate(ports)],
            "subsystems": [{
                "allowed_hosts": [], "nqn": NQN,
                "attr": {"allow_any_host": "1", "model": "mpathfs bench", "serial": "bench" + tag, "version": "1.3"},
                "namespaces": [{"ana_grpid": 1, "enable": 1, "nsid": 1,
                                "device": {"path": f"ram:{self.a.size}M",
                                           "uuid": "6b740000-0000-4000-8000-00000000b001",
                                           "nguid": "6b740000-0000-4000-8000-00000000b001"}}],
            }],
        }
        cpath = os.path.join(self.a.out, f"target-{tag}.json")
        with open(cpath, "w") as f:
            json.dump(cfg, f)
        t = self.spawn([binary, "target", "-c", cpath], os.path.join(self.a.out, f"target-{tag}.log"), env)
        for p in ports:
            wait_for(lambda: listening(p), f"target {tag} port {p}", t)
        names = [tag] + ([tag + "-1p"] if self.a.paths else [])
        for name in names:
            toml = os.path.join(self.a.out, f"mount-{name}.toml")
            with open(toml, "w") as f:
                f.write('[multipath]\niopolicy = "round-robin"\n')
                f.write('[log]\nlevel = "warn"\n')
                for p in (ports if not name.endswith("-1p") else ports[:1]):
                    f.write(f'[[controller]]\ntraddr = "127.0.0.1"\ntrsvcid = "{p}"\nnqn = "{NQN}"\n')
            m = self.mountpoint(name)
            args = [binary, "mount", "-c", toml] + (["-o", mopts] if mopts else []) + [m]
            i = self.spawn(args, os.path.join(self.a.out, f"mount-{name}.log"), env)
            fn = os.path.join(m, "nvme0n1")
            wait_for(lambda: os.path.exists(fn) and os.path.getsize(fn) > 0, f"{name} namespace file", i)
            self.systems[name] = (fn, i.pid, t.pid)

    def nbd(self):
        port = free_port()
        k = self.spawn(["nbdkit", "-f", "-i", "127.0.0.1", "-p", str(port), "memory", f"{self.a.size}M"],
                       os.path.join(self.a.out, "nbdkit.log"))
        wait_for(lambda: listening(port), "nbdkit", k)
        m = self.mountpoint("nbdfuse")
        f = self.spawn(["nbdfuse", m + "/disk", f"nbd://127.0.0.1:{port}"], os.path.join(self.a.out, "nbdfuse.log"))
        fn = os.path.join(m, "disk")
        wait_for(lambda: os.path.exists(fn), "nbdfuse file", f)
        self.systems["nbdfuse"] = (fn, f.pid, k.pid)

    def ramfs(self):
        m = self.mountpoint("ramfs")
        r = self.spawn([self.a.bin, "ramfs", "--size", f"{self.a.size}M", m], os.path.join(self.a.out, "ramfs.log"))
        fn = os.path.join(m, "ram")
        wait_for(lambda: os.path.exists(fn), "ramfs file", r)
        self.systems["ramfs"] = (fn, r.pid, None)

    def setup(self):
        env_a = dict(kv.split("=", 1) for kv in self.a.a_env.split())
        self.mpathfs("mpathfs", self.a.bin, env_a, self.a.a_mount_opts, self.a.a_inline)
        if self.a.b:
            env_b = dict(kv.split("=", 1) for kv in self.a.b_env.split())
            self.mpathfs("B", self.a.b, env_b, self.a.b_mount_opts, self.a.b_inline)
        if not self.a.no_nbd:
            self.nbd()
        if not self.a.no_ramfs:
            self.ramfs()
        for name, (fn, _, _) in self.systems.items():
            if name.endswith("-1p"):
                continue  # same namespace as its two-path mount
            self.fio(fn, "--rw=write --bs=1M --ioengine=libaio --iodepth=8", self.a.size, "prefill")

    def fio(self, fn, args, count, name):
        bs = 1 << 20 if "--bs=1M" in args else 4096
        cmd = ["fio", "--name=" + re.sub(r"\W+", "_", name), "--filename=" + fn, "--direct=1",
               "--size=%dM" % self.a.size, "--io_size=%d" % (count * bs), "--randrepeat=0",
               "--norandommap", "--output-format=json"] + args.split()
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"bench: fio failed on {fn}: {r.stderr.strip()}")
        j = json.loads(r.stdout[r.stdout.index("{"):])["jobs"][0]
        d = j["read"] if j["read"]["io_bytes"] else j["write"]
        return {"iops": d["iops"], "bw": d["bw_bytes"] / 1e6, "lat": d["clat_ns"]["mean"] / 1e3
                if "clat_ns" in d else d["lat_ns"]["mean"] / 1e3, "ios": d["total_ios"]}

    def run(self):
        results = {}  # (job, system) -> list of dicts
        order = list(self.systems)
        for rep in range(self.a.reps):
            for job, args, count, _ in JOBS:
                if self.a.jobs and not re.search(self.a.jobs, job):
                    continue
                n = count // 4 if self.a.quick else count
                k = rep % len(order)
                for name in order[k:] + order[:k]:
                    if name.endswith("-1p") and job not in PATH_JOBS:
                        continue
                    fn, ipid, tpid = self.systems[name]
                    i0, t0 = cpu_ticks(ipid), (cpu_ticks(tpid) if tpid else 0)
                    r = self.fio(fn, args, n, job)
                    i1, t1 = cpu_ticks(ipid), (cpu_ticks(tpid) if tpid else 0)
                    r["icpu"] = (i1 - i0) * 1e6 / TICK / r["ios"]
                    r["tcpu"] = (t1 - t0) * 1e6 / TICK / r["ios"] if tpid else None
                    results.setdefault((job, name), []).append(r)
            print(f"repetition {rep + 1}/{self.a.reps} done", file=sys.stderr)
        return results

    def stop(self):
        for m in self.mounts:
            subprocess.run(["fusermount3", "-u", "-z", m], capture_output=True)
        for p in reversed(self.procs):
            try:
                os.killpg(p.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        for m in self.mounts:
            try:
                os.rmdir(m)
            except OSError:
                pass
        try:
            os.rmdir(self.tmp)
        except OSError:
            pass


def med(xs):
    return statistics.median(xs)


def fmt_ratio(xs):
    """median [min-max], and the interquartile range once there are enough pairs
    for it to mean more than the extremes on this noisy machine"""
    if not xs:
        return "-"
    s = f"{med(xs):.2f} [{min(xs):.2f}-{max(xs):.2f}]"
    if len(xs) >= 8:
        q = statistics.quantiles(xs, n=4)
        s += f" IQR {q[0]:.2f}-{q[2]:.2f}"
    return s


def report(a, systems, results):
    jobs = [j for j in JOBS if (j[0], "mpathfs") in results]
    unit = {"iops": "IOPS", "bw": "MB/s", "lat": "µs mean"}

    def ratios(job, kind, num, den):
        xs, ys = results.get((job, num)), results.get((job, den))
        if not xs or not ys:
            return []
        if kind == "lat":  # speed ratio: den latency / num latency (> 1: num faster)
            return [y["lat"] / x["lat"] for x, y in zip(xs, ys)]
        return [x[kind] / y[kind] for x, y in zip(xs, ys)]

    cols = [("mpathfs", "nbdfuse"), ("ramfs", "nbdfuse")]
    if a.b:
        cols.insert(1, ("mpathfs", "B"))
    cols = [c for c in cols if c[0] in systems and c[1] in systems]
    print(f"\n## Summary: medians of {a.reps} paired ratios [min-max] (IQR from 8 on), >1 = first is faster "
          f"(QD1 latency: nbdfuse's latency / the other's)\n")
    print("| job | unit | " + " | ".join(n for n in systems if not n.endswith("-1p")) + " | "
          + " | ".join(f"{x}/{y}" for x, y in cols) + " |")
    print("|---" * (2 + len([n for n in systems if not n.endswith("-1p")]) + len(cols)) + "|")
    for job, _, _, kind in jobs:
        vals = []
        for n in systems:
            if n.endswith("-1p"):
                continue
            rs = results.get((job, n))
            vals.append(f"{med([r[kind] for r in rs]):.0f}" if rs else "-")
        print(f"| {job} | {unit[kind]} | " + " | ".join(vals) + " | "
              + " | ".join(fmt_ratio(ratios(job, kind, x, y)) for x, y in cols) + " |")

    print("\n## CPU-µs per I/O (utime+stime / I/Os; median [min-max]); per MiB for the 1M jobs\n")
    names = [n for n in systems if not n.endswith("-1p")]
    hdr = []
    for n in names:
        hdr.append(f"{n} init")
        if systems[n][2]:
            hdr.append(f"{n} target" if n != "nbdfuse" else "nbdkit")
    # On loopback the receiving side's TCP work (and the ACKs it sends back)
    # runs in whichever process holds a socket when a segment arrives, so CPU
    # moves between initiator and target with their timing: a target that
    # sleeps until a payload is whole (SO_RCVLOWAT) leaves its share to the
    # sender. The sum of both processes is the figure that cannot move.
    print("| job | " + " | ".join(hdr) + " | mpathfs/nbdfuse init | mpathfs/nbdfuse init+target |")
    print("|---" * (3 + len(hdr)) + "|")
    for job, _, _, _ in jobs:
        row = []
        for n in names:
            rs = results.get((job, n))
            if not rs:
                row += ["-"] * (2 if systems[n][2] else 1)
                continue
            xs = [r["icpu"] for r in rs]
            row.append(f"{med(xs):.1f} [{min(xs):.0f}-{max(xs):.0f}]")
            if systems[n][2]:
                ts = [r["tcpu"] for r in rs]
                row.append(f"{med(ts):.1f} [{min(ts):.0f}-{max(ts):.0f}]")
        ms, ns = results.get((job, "mpathfs")), results.get((job, "nbdfuse"))
        rr = fmt_ratio([m["icpu"] / n["icpu"] for m, n in zip(ms, ns) if n["icpu"]]) if ms and ns else "-"
        rs = fmt_ratio([(m["icpu"] + m["tcpu"]) / (n["icpu"] + n["tcpu"]) for m, n in zip(ms, ns)
                        if n["icpu"] + n["tcpu"]]) if ms and ns else "-"
        print(f"| {job} | " + " | ".join(row) + f" | {rr} | {rs} |")

    pj = [j for j in jobs if (j[0], "mpathfs-1p") in results]
    if pj:
        print("\n## 2 paths (round-robin) / 1 path, same target: median [min-max] (IQR from 8 on) of paired ratios\n")
        print("| job | 2 paths | 1 path | 2p/1p |")
        print("|---|---|---|---|")
        for job, _, _, kind in pj:
            two, one = results[(job, "mpathfs")], results[(job, "mpathfs-1p")]
            print(f"| {job} | {med([r[kind] for r in two]):.0f} | {med([r[kind] for r in one]):.0f} | "
                  f"{fmt_ratio(ratios(job, kind, 'mpathfs', 'mpathfs-1p'))} |")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--reps", type=int, default=None)
    p.add_argument("--jobs", default="")
    p.add_argument("--b", default="")
    p.add_argument("--a-env", default="")
    p.add_argument("--b-env", default="")
    p.add_argument("--a-mount-opts", default="")
    p.add_argument("--b-mount-opts", default="")
    p.add_argument("--a-inline", type=int, default=0, help="A's target inline_data_size (0: its default)")
    p.add_argument("--b-inline", type=int, default=0)
    p.add_argument("--no-ramfs", action="store_true")
    p.add_argument("--no-nbd", action="store_true")
    p.add_argument("--no-paths", dest="paths", action="store_false")
    p.add_argument("--size", type=int, default=1024, help="MiB per device")
    a = p.parse_args()
    if a.reps is None:
        a.reps = 3 if a.quick else 5
    if a.quick:
        a.size = min(a.size, 512)
    b = Bench(a)
    try:
        b.setup()
        res = b.run()
    finally:
        b.stop()
    with open(os.path.join(a.out, "runs.json"), "w") as f:
        json.dump([{"job": k[0], "system": k[1], "runs": v} for k, v in res.items()], f, indent=1)
    report(a, b.systems, res)


if __name__ == "__main__":
    main()
