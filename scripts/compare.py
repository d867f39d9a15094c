#!/usr/bin/env python3
"""The measuring half of scripts/compare.sh (which builds, installs socat and
the Node piping-server, and calls this). Loopback only.

Paths: raw loopback (one TCP hop), a socat relay, weir (splice with the
pipe growing within --splice-budget, splice with the budget at 0 so the
pipe stays at 64 KiB, the ring with --no-splice, chunked), and the Node
piping-server. Client kinds: lean (scripts/lean.py: sendfile sender,
recv_into receiver, no checking), curl, weir-bench (checks every byte).
Every case runs --runs times, round-robin over all cases, so load from
elsewhere falls on every case alike. For each run: throughput, the relay
process's CPU seconds per GiB (utime+stime, children included, from
/proc/PID/stat) and the whole machine's busy CPU seconds per GiB (every
/proc/stat field but idle and iowait, softirq included) over the transfer.
Printed: medians with [min-max]; ratios are medians of per-round ratios.
"""

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HZ = os.sysconf("SC_CLK_TCK")
GIB = float(1 << 30)
HERE = os.path.dirname(os.path.abspath(__file__))


def parse_size(s):
    m = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(s[-1].upper())
    return int(float(s[:-1]) * m) if m else int(s)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, proc, what):
    for _ in range(400):
        if proc.poll() is not None:
            sys.exit("compare: %s exited at start" % what)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit("compare: %s does not listen on %d" % (what, port))


def proc_cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime stime cutime cstime are fields 14-17 (index 11-14 after the name).
    return sum(int(x) for x in fields[11:15]) / HZ


def machine_busy():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal (guest is in user)
    return (sum(v[:8]) - v[3] - v[4]) / HZ


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Servers:
    def __init__(self, args, tmp):
        self.procs = []
        self.tmp = tmp
        self.log = open(os.path.join(tmp, "servers.log"), "ab")
        self.raw_port = free_port()
        self.weir = {}
        for name, extra in [("weir", []), ("weir64k", ["--splice-budget", "0"]),
                            ("ring", ["--no-splice"])]:
            port = free_port()
            p = self.start([os.path.join(args.bin, "weir"), "--listen", "127.0.0.1:%d" % port,
                            "--max-upload-bytes", "0", "--max-connections", "25000",
                            "--max-parked-per-ip", "0"] + extra, {"RUST_LOG": "warn"})
            wait_port(port, p, name)
            self.weir[name] = (port, p.pid)
        port = free_port()
        p = self.start(["socat", "-b", "65536",
                        "TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr,fork,backlog=1024" % port,
                        "TCP:127.0.0.1:%d" % self.raw_port], {})
        time.sleep(0.2)
        self.socat = (port, p.pid)
        self.piping = None
        if args.piping:
            port = free_port()
            p = self.start(["node", args.piping, "--host", "127.0.0.1", "--http-port", str(port)], {})
            wait_port(port, p, "piping-server")
            self.piping = (port, p.pid)

    def start(self, cmd, env):
        p = subprocess.Popen(cmd, stdout=self.log, stderr=self.log,
                             env=dict(os.environ, **env))
        self.procs.append(p)
        return p

    def stop(self):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def http_target(srv, path):
    port, pid = srv.piping if path.startswith("piping") else srv.weir[
        {"weir": "weir", "weir64k": "weir64k", "ring": "ring", "chunked": "weir"}[path]]
    return "http://127.0.0.1:%d/" % port, pid


def chunked_path(path):
    return path in ("chunked", "piping-chunked")


def relay_of(srv, path):
    if path == "raw":
        return None
    if path == "socat":
        return srv.socat[1]
    return http_target(srv, path)[1]


def spawn(cmd, **kw):
    return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def expect_ready(p, what):
    line = p.stdout.readline()
    if line.strip() != "ready":
        p.kill()
        sys.exit("compare: %s did not start: %s %s" % (what, line, p.stderr.read()))


def finish(ps, timeout):
    deadline = time.monotonic() + timeout
    for p in ps:
        try:
            p.wait(timeout=max(1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for q in ps:
                q.kill()
            raise RuntimeError("timed out")
    bad = [p for p in ps if p.returncode != 0]
    if bad:
        raise RuntimeError("client failed: %s %s" % (bad[0].args, bad[0].stderr.read()[-500:]))


class Run:
    """One measured transfer: call begin() just before bytes may move,
    end() as the last client exits."""

    def __init__(self, relay_pid):
        self.relay_pid = relay_pid

    def begin(self):
        # The machine's busy share just before (other jobs on a shared
        # machine): near 1.0, machine CPU per GiB is only cores / throughput.
        b0, t0 = machine_busy(), time.monotonic()
        time.sleep(0.3)
        self.before = (machine_busy() - b0) / (time.monotonic() - t0) / os.cpu_count()
        self.r0 = proc_cpu(self.relay_pid) if self.relay_pid else None
        self.m0 = machine_busy()
        self.t0 = time.monotonic()

    def end(self, nbytes, wall=None):
        t1 = time.monotonic()
        m1 = machine_busy()
        wall = wall or (t1 - self.t0)
        # socat's forked children are counted once reaped.
        time.sleep(0.15)
        r1 = proc_cpu(self.relay_pid) if self.relay_pid else None
        gib = nbytes / GIB
        return {"gib_s": gib / wall,
                "relay": (r1 - self.r0) / gib if self.relay_pid else None,
                "machine": (m1 - self.m0) / gib,
                "before": self.before}


def run_lean(a, srv, path, pipes, files):
    py = [sys.executable, os.path.join(HERE, "lean.py")]
    f = files[pipes]
    size = os.path.getsize(f) * pipes
    if path in ("raw", "socat"):
        recv = spawn(py + ["recv", "--listen", "127.0.0.1:%d" % srv.raw_port, "--pipes", str(pipes)])
        expect_ready(recv, "lean receiver")
        dst = srv.raw_port if path == "raw" else srv.socat[0]
        send = spawn(py + ["send", "--connect", "127.0.0.1:%d" % dst, "--file", f,
                           "--pipes", str(pipes)])
    else:
        base, _ = http_target(srv, path)
        url = base + "lean-%d-%s-%d-" % (os.getpid(), path, a.seq)
        recv = spawn(py + ["recv", "--url", url, "--pipes", str(pipes)])
        expect_ready(recv, "lean receiver")
        send = spawn(py + ["send", "--url", url, "--file", f, "--pipes", str(pipes)]
                     + (["--chunked"] if chunked_path(path) else []))
    expect_ready(send, "lean sender")
    run = Run(relay_of(srv, path))
    run.begin()
    send.stdin.write("go\n")
    send.stdin.flush()
    finish([send, recv], a.timeout)
    return run.end(size)


def run_curl(a, srv, path, pipes, files):
    f = files[pipes]
    size = os.path.getsize(f) * pipes
    base, _ = http_target(srv, path)
    url = base + "curl-%d-%s-%d-" % (os.getpid(), path, a.seq)
    urls = [url + (str(i) if pipes > 1 else "") for i in range(pipes)]
    recvs = [spawn(["curl", "-sS", "-o", "/dev/null", u]) for u in urls]
    # A receiver that has connected and sent its GET just waits: give them
    # time to get there (outside the measured window).
    time.sleep(0.3 + 0.01 * pipes)
    run = Run(relay_of(srv, path))
    run.begin()
    extra = ["-H", "Transfer-Encoding: chunked"] if chunked_path(path) else []
    sends = [spawn(["curl", "-sS", "-o", "/dev/null", "-T", f] + extra + [u]) for u in urls]
    finish(sends + recvs, a.timeout)
    return run.end(size)


def bench_cmd(a, srv, path, name, extra):
    """weir-bench's command line for `path`: raw loopback, through socat,
    or through a relay on pipe names starting with `name`."""
    cmd = [os.path.join(a.bin, "weir-bench"), "--quiet", "--timeout", str(a.timeout), *extra]
    if path == "raw":
        cmd += ["--raw", "--raw-listen", "127.0.0.1:%d" % srv.raw_port]
    elif path == "socat":
        cmd += ["--raw", "--raw-listen", "127.0.0.1:%d" % srv.raw_port,
                "--raw-connect", "127.0.0.1:%d" % srv.socat[0]]
    else:
        cmd += ["--url", http_target(srv, path)[0] + "%s-%d-%d-" % (name, os.getpid(), a.seq)]
    return cmd


def run_bench(a, srv, path, pipes, files):
    per = os.path.getsize(files[pipes])
    cmd = bench_cmd(a, srv, path, "bench", ["--size", str(per), "--pipes", str(pipes)])
    if chunked_path(path):
        cmd.append("--chunked")
    run = Run(relay_of(srv, path))
    run.begin()
    p = spawn(cmd)
    finish([p], a.timeout)
    out = dict(l.split(None, 1) for l in p.stdout.read().splitlines()
               if l and not l.startswith("#"))
    # weir-bench times the transfer itself (from its first connection).
    return run.end(per * pipes, float(out["wall_s"]))


def run_latency(a, srv, path):
    cmd = bench_cmd(a, srv, path, "lat", ["--size", "0", "--latency"])
    p = spawn(cmd)
    finish([p], a.timeout)
    out = dict(l.split(None, 1) for l in p.stdout.read().splitlines()
               if l and not l.startswith("#"))
    return {"p50": float(out["latency_p50_us"]), "p99": float(out["latency_p99_us"])}


LABEL = {
    "raw": "raw loopback, one hop",
    "socat": "socat relay",
    "weir": "weir Content-Length (splice, pipe grows)",
    "weir64k": "weir Content-Length (splice, 64 KiB pipe)",
    "ring": "weir Content-Length (--no-splice, ring)",
    "chunked": "weir chunked (ring)",
    "piping": "piping-server (Node) Content-Length",
    "piping-chunked": "piping-server (Node) chunked",
}
KIND = {"lean": "lean clients (sendfile / recv_into)", "curl": "curl",
        "bench": "weir-bench (checks every byte)"}


def fmt_range(xs, prec=2):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "-"
    return "%.*f [%.*f-%.*f]" % (prec, statistics.median(xs), prec, min(xs), prec, max(xs))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--size", default="1G")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--pipes", type=int, default=64)
    ap.add_argument("--piping", help="path of the Node piping-server's bin script")
    ap.add_argument("--kinds", default="lean,curl,bench")
    ap.add_argument("--timeout", type=int, default=300)
    a = ap.parse_args()
    a.seq = 0
    kinds = a.kinds.split(",")
    size = parse_size(a.size)
    tmp = tempfile.mkdtemp(prefix="weir-compare-")
    files = {}
    block = os.urandom(1 << 20)
    for n in (1, a.pipes):
        path = os.path.join(tmp, "body-%d" % n)
        with open(path, "wb") as f:
            left = size // n
            while left > 0:
                f.write(block[:min(left, len(block))])
                left -= min(left, len(block))
        files[n] = path
    srv = Servers(a, tmp)
    piping = ["piping", "piping-chunked"] if srv.piping else []
    cases = []
    if "lean" in kinds:
        cases += [("lean", p, 1) for p in
                  ["raw", "socat", "weir", "weir64k", "ring", "chunked"] + piping]
        cases += [("lean", p, a.pipes) for p in
                  ["socat", "weir", "weir64k"] + piping[:1]]
    if "curl" in kinds:
        cases += [("curl", p, 1) for p in ["weir", "weir64k", "ring", "chunked"] + piping]
    if "bench" in kinds:
        cases += [("bench", p, 1) for p in ["raw", "socat", "weir", "ring", "chunked"] + piping[:1]]
        cases += [("bench", p, a.pipes) for p in ["socat", "weir"]]
    # piping-server has no answer to weir-bench's 1-byte-chunk latency probe.
    lat_cases = ["raw", "socat", "weir"] if "bench" in kinds else []
    results = {c: [] for c in cases}
    lat = {p: [] for p in lat_cases}
    load = [loadavg()]
    runner = {"lean": run_lean, "curl": run_curl, "bench": run_bench}
    try:
        for r in range(a.runs):
            print("== round %d of %d (load %s)" % (r + 1, a.runs, loadavg()), file=sys.stderr)
            for c in cases:
                a.seq += 1
                try:
                    results[c].append(runner[c[0]](a, srv, c[1], c[2], files))
                except RuntimeError as e:
                    print("compare: %s failed: %s" % (c, e), file=sys.stderr)
                    results[c].append(None)
            for p in lat_cases:
                a.seq += 1
                try:
                    lat[p].append(run_latency(a, srv, p))
                except (RuntimeError, KeyError) as e:
                    print("compare: latency %s failed: %s" % (p, e), file=sys.stderr)
            load.append(loadavg())
    finally:
        srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    print("weir compare: %s, %d cores, %s, %d rounds, interleaved" % (
        time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()), os.cpu_count(),
        os.uname().release, a.runs))
    print("load average (1/5/15 min) at the start and after each round: " + "; ".join(load))
    print("machine CPU: all busy time in /proc/stat over the transfer. 'busy before': the share of"
          " all cores busy in the 0.3 s before it (other jobs); near 1.00 the machine is saturated and"
          " machine CPU per GiB is only cores / throughput")
    print("size %s per run (%d pipes: %s each); median [min-max]; 'vs socat' is the median"
          " of per-round ratios to the socat case of the same client kind and pipe count"
          % (a.size, a.pipes, size // a.pipes))
    for kind in kinds:
        rows = [c for c in cases if c[0] == kind]
        if not rows:
            continue
        print()
        print("## %s" % KIND[kind])
        print("%-46s %-20s %-9s %-20s %-20s %-20s" % ("path", "GiB/s", "vs socat", "relay CPU s/GiB",
                                                      "machine CPU s/GiB", "busy before"))
        for c in rows:
            rs = results[c]
            ok = [x for x in rs if x]
            base = results.get((kind, "socat", c[2]))
            ratio = "-"
            if base and c[1] != "socat":
                rr = [x["gib_s"] / b["gib_s"] for x, b in zip(rs, base) if x and b]
                ratio = "%.2fx" % statistics.median(rr) if rr else "-"
            label = LABEL[c[1]] + (", %d pipes" % c[2] if c[2] > 1 else "")
            if len(ok) < len(rs):
                label += " (%d failed)" % (len(rs) - len(ok))
            print("%-46s %-20s %-9s %-20s %-20s %-20s" % (
                label, fmt_range([x["gib_s"] for x in ok]), ratio,
                fmt_range([x["relay"] for x in ok]), fmt_range([x["machine"] for x in ok]),
                fmt_range([x["before"] for x in ok])))
    if lat_cases:
        print()
        print("## one byte across (weir-bench --latency, 1,000 rounds), microseconds")
        for p in lat_cases:
            print("%-46s p50 %-22s p99 %s" % (LABEL[p].split(" Content")[0],
                                             fmt_range([x["p50"] for x in lat[p]], 1),
                                             fmt_range([x["p99"] for x in lat[p]], 1)))


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    main()
