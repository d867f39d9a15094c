#!/usr/bin/env python3
"""weir at the whole fd limit: a bounded, loopback-only run.

  scripts/fdlimit.py --weir target/release/weir [--conns 19900] [--stream-share 0.1]
                     [--stream-bytes 1M] [--probes 200] [--timeout 240]

Starts its own weir on 127.0.0.1 (--max-connections 20000, no per-IP cap)
and holds --conns connections to it from client sockets bound to
127.0.0.2-127.0.0.51 (so no source address runs short of ports):
  - 90 % parked: half senders (a PUT head with Content-Length 1 MiB and
    4 KiB of its body right behind it), half receivers, on paths that never
    pair;
  - 10 % streaming: sender/receiver pairs each moving --stream-bytes.
While the streams run, a separate process opens --probes new pipes one
after another (receiver first, then a sender with a 1-byte body) and
times each from the sender's connect to the receiver's first response byte.
Printed: weir's RSS idle, with everything connected, at the end of the
streams, and 1 s and 5 s after every client has gone; time to first byte
p50/p99 for the probes. Everything runs under --timeout; only processes it
started are stopped.
"""

import argparse
import os
import resource
import selectors
import socket
import statistics
import subprocess
import sys
import time

SOURCES = ["127.0.0.%d" % i for i in range(2, 52)]


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def parse_size(s):
    m = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(s[-1].upper())
    return int(float(s[:-1]) * m) if m else int(s)


def connect_nb(port, i):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((SOURCES[i % len(SOURCES)], 0))
    s.setblocking(False)
    s.connect_ex(("127.0.0.1", port))
    return s


def probe_main(port, n, deadline):
    """Child process: n new pipes, one after another; prints TTFB in us."""
    times = []
    for i in range(n):
        if time.monotonic() > deadline:
            break
        path = "/probe-%d-%d" % (os.getpid(), i)
        r = socket.create_connection(("127.0.0.1", port), timeout=30,
                                     source_address=(SOURCES[i % len(SOURCES)], 0))
        r.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
        time.sleep(0.005)  # the receiver parks first
        t0 = time.monotonic()
        s = socket.create_connection(("127.0.0.1", port), timeout=30,
                                     source_address=(SOURCES[(i + 7) % len(SOURCES)], 0))
        s.sendall(b"PUT %s HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx" % path.encode())
        r.recv(1)
        times.append((time.monotonic() - t0) * 1e6)
        r.close()
        s.close()
        time.sleep(0.02)
    for t in times:
        print("%.1f" % t, flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weir")
    ap.add_argument("--conns", type=int, default=19900)
    ap.add_argument("--stream-share", type=float, default=0.1)
    ap.add_argument("--stream-bytes", default="1M")
    ap.add_argument("--probes", type=int, default=200)
    ap.add_argument("--timeout", type=int, default=240)
    ap.add_argument("--probe-port", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    deadline = time.monotonic() + a.timeout
    if a.probe_port:
        return probe_main(a.probe_port, a.probes, deadline)
    if not a.weir:
        sys.exit("fdlimit.py: --weir BIN is needed")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = a.conns + 64
    if hard < need:
        sys.exit("fdlimit.py: the hard fd limit is %d; --conns %d needs %d" % (hard, a.conns, need))
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    weir = subprocess.Popen(
        [a.weir, "--listen", "127.0.0.1:%d" % port, "--max-connections", str(min(hard - 50, 20000)),
         "--max-parked-per-ip", "0", "--max-upload-bytes", "0", "--head-timeout", "600"],
        env=dict(os.environ, RUST_LOG="warn"), stderr=subprocess.DEVNULL)
    procs = [weir]
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        time.sleep(0.3)
        idle = rss_kib(weir.pid)
        run(a, port, weir, idle, deadline, procs)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()


def run(a, port, weir, idle, deadline, procs):
    size = parse_size(a.stream_bytes)
    streaming = int(a.conns * a.stream_share) // 2 * 2
    parked = a.conns - streaming
    bodyview = memoryview(b"\x5a" * size)
    sel = selectors.DefaultSelector()
    socks = []
    t_start = time.monotonic()

    def connect_batch(kind_list):
        for i, (kind, data) in enumerate(kind_list):
            c = connect_nb(port, len(socks))
            socks.append(c)
            sel.register(c, selectors.EVENT_WRITE, [kind, data, 0, 0])
            if len(socks) % 500 == 0:
                pump(0.05)

    def pump(for_s):
        end = time.monotonic() + for_s
        while time.monotonic() < end:
            if time.monotonic() > deadline:
                raise SystemExit("fdlimit.py: timed out")
            for key, ev in sel.select(timeout=0.01):
                step(key, ev)

    done = {"streams": 0, "pipes": 0}

    def step(key, ev):
        c = key.fileobj
        st = key.data  # kind, bytes to send, sent, received
        kind = st[0]
        if ev & selectors.EVENT_WRITE:
            head = st[1]
            total = len(head) + (size if kind == "send" else 0)
            if st[2] < len(head):
                chunk = head[st[2]:]
            else:
                off = st[2] - len(head)
                chunk = bodyview[off:off + 262144]
            try:
                n = c.send(chunk)
            except BlockingIOError:
                n = 0
            except OSError:
                sel.unregister(c)
                c.close()
                done["streams"] += 1
                return
            st[2] += n
            if st[2] >= total:
                if kind in ("park-s", "park-r"):
                    sel.unregister(c)  # parked: nothing more to do
                    return
                sel.modify(c, selectors.EVENT_READ, st)
            return
        if ev & selectors.EVENT_READ:
            try:
                data = c.recv(262144)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                sel.unregister(c)
                c.close()
                done["streams"] += 1
                if kind == "recv":
                    done["pipes"] += 1
                return
            st[3] += len(data)

    plan = []
    for i in range(parked):
        if i % 2 == 0:
            head = b"PUT /park-%d HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n" % i
            plan.append(("park-s", head + b"\x5a" * 4096))
        else:
            plan.append(("park-r", b"GET /parkr-%d HTTP/1.1\r\nHost: x\r\n\r\n" % i))
    connect_batch(plan)
    pump(1.0)
    parked_rss = rss_kib(weir.pid)
    print("parked %d connections (%d senders with 4 KiB of body each, %d receivers) in %.1f s"
          % (parked, (parked + 1) // 2, parked // 2, time.monotonic() - t_start))

    probe = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--probe-port", str(port),
                              "--probes", str(a.probes), "--timeout", str(int(deadline - time.monotonic()))],
                             stdout=subprocess.PIPE, text=True)
    procs.append(probe)
    t_stream = time.monotonic()
    launched = [0]

    def launch(pairs):
        splan = []
        for _ in range(pairs):
            path = b"/stream-%d" % launched[0]
            launched[0] += 1
            splan.append(("recv", b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path))
            splan.append(("send", b"PUT %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (path, size)))
        connect_batch(splan)

    # Keep `streaming` connections streaming (a finished pipe is replaced by
    # a new one) for as long as the probes run, then let the last finish.
    launch(streaming // 2)
    total_conns = parked + streaming
    peak = rss_kib(weir.pid)
    while True:
        pump(0.1)
        peak = max(peak, rss_kib(weir.pid))
        if probe.poll() is None:
            launch(streaming // 2 - (launched[0] - done["pipes"]))
        elif done["streams"] >= 2 * launched[0]:
            break
    t_streams = time.monotonic() - t_stream
    full_rss = rss_kib(weir.pid)
    out, _ = probe.communicate(timeout=max(1, deadline - time.monotonic()))
    ttfb = sorted(float(x) for x in out.split())
    for c in socks:
        c.close()
    time.sleep(1.0)
    after1 = rss_kib(weir.pid)
    time.sleep(4.0)
    after5 = rss_kib(weir.pid)

    def pct(p):
        return ttfb[min(len(ttfb) - 1, int(len(ttfb) * p / 100))] if ttfb else float("nan")

    print("connections held at once: %d (+ probes), from %d source addresses"
          % (total_conns, len(SOURCES)))
    print("streams: %d pipes x %s (%d at a time) done in %.1f s while %d stayed parked"
          % (launched[0], a.stream_bytes, streaming // 2, t_streams, parked))
    print("new-pipe time to first byte (%d probes): p50 %.0f us, p99 %.0f us, max %.0f us"
          % (len(ttfb), pct(50), pct(99), ttfb[-1] if ttfb else float("nan")))
    print("weir RSS KiB: idle %d, parked %d, peak while streaming %d, after streams %d,"
          " 1 s after all left %d, 5 s after %d" % (idle, parked_rss, peak, full_rss, after1, after5))
    print("load average %s" % " ".join(open("/proc/loadavg").read().split()[:3]))


if __name__ == "__main__":
    main()
