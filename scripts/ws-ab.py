#!/usr/bin/env python3
"""WebSocket pipes through weir binaries, interleaved, with weir-bench.

  cargo build --release
  python3 scripts/ws-ab.py [--rounds 5] [--bench target/release/weir-bench] WEIR [WEIR ...]

Each round starts each binary on 127.0.0.1 (a fresh process per case) and
runs, with weir-bench (which checks every byte it receives):
  ws-1      one WebSocket pipe, 1 GiB in 64 KiB binary frames (--ws);
  ws-64     64 WebSocket pipes of 16 MiB at once;
  http-ring one HTTP pipe of 1 GiB through weir's ring (--no-splice), the
            baseline the WebSocket path is held against in the same run.
It prints, per binary and case, the medians and [min-max] of throughput,
weir's CPU seconds per GiB (weir-bench --relay-pid) and weir's peak RSS
(VmHWM). Only the weir processes it started are stopped.
"""
import argparse
import os
import socket
import statistics
import subprocess
import sys
import time

CASES = [
    ("ws-1", [], ["--ws", "--size", "1G"]),
    ("ws-64", [], ["--ws", "--pipes", "64", "--size", "16M"]),
    ("http-ring", ["--no-splice"], ["--size", "1G"]),
]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_listening(port, proc):
    deadline = time.time() + 10
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"ws-ab: weir exited at start ({proc.returncode})")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit("ws-ab: weir did not listen within 10 s")


def one(weir, bench, weir_args, bench_args):
    port = free_port()
    w = subprocess.Popen(
        [weir, "--listen", f"127.0.0.1:{port}", *weir_args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ, RUST_LOG="warn"),
    )
    try:
        wait_listening(port, w)
        out = subprocess.run(
            [bench, "--url", f"http://127.0.0.1:{port}/", "--relay-pid", str(w.pid),
             "--quiet", "--timeout", "120", *bench_args],
            capture_output=True, text=True, timeout=180,
        )
        if out.returncode != 0:
            sys.exit(f"ws-ab: weir-bench failed: {out.stderr.strip()}")
        got = dict(l.split()[:2] for l in out.stdout.splitlines() if l and not l.startswith("#"))
        with open(f"/proc/{w.pid}/status") as f:
            hwm = next(int(l.split()[1]) for l in f if l.startswith("VmHWM"))
        return float(got["gib_per_s"]), float(got["relay_cpu_s_per_gib"]), hwm / 1024
    finally:
        w.terminate()
        w.wait()


def fmt(xs, nd):
    return f"{statistics.median(xs):.{nd}f} [{min(xs):.{nd}f}-{max(xs):.{nd}f}]"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--bench", default="target/release/weir-bench")
    ap.add_argument("weir", nargs="+")
    a = ap.parse_args()
    res = {}
    with open("/proc/loadavg") as f:
        print("# load average at the start:", f.read().split()[0])
    for r in range(a.rounds):
        for weir in a.weir:
            for name, wa, ba in CASES:
                res.setdefault((weir, name), []).append(one(weir, a.bench, wa, ba))
        print(f"# round {r + 1} of {a.rounds} done", file=sys.stderr)
    with open("/proc/loadavg") as f:
        print("# load average at the end:", f.read().split()[0])
    print("| weir | case | GiB/s | weir CPU s/GiB | weir peak RSS MiB |")
    print("| --- | --- | --- | --- | --- |")
    for (weir, name), v in res.items():
        print(f"| {weir} | {name} | {fmt([x[0] for x in v], 2)} | "
              f"{fmt([x[1] for x in v], 2)} | {fmt([x[2] for x in v], 1)} |")


if __name__ == "__main__":
    main()
