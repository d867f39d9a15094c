#!/usr/bin/env python3
"""Lean load clients for scripts/compare.sh: they cost as little CPU as a
client can, so that a relay's figures are the relay's, not the clients'.

  lean.py send (--url URL | --connect HOST:PORT) --file F [--pipes N] [--chunked]
  lean.py recv (--url URL | --listen HOST:PORT) [--pipes N]

The sender moves FILE with os.sendfile (page cache to socket, no copy
through Python); with --url it PUTs to URL (URL + "<i>" for pipe i when
--pipes > 1) with Content-Length, or chunked (1 MiB chunks, each a
sendfile). The receiver reads with socket.recv_into into one reused buffer
and checks nothing; with --url it GETs, with --listen it accepts N raw TCP
connections. Both print "ready" once set up (the sender then waits for a
line on stdin before it connects, so start-up is not timed), and on exit
"bytes N" (what it moved, HTTP framing and heads included for the
receiver). Loopback only: hosts must be 127.0.0.0/8.
"""

import argparse
import os
import socket
import sys
import threading
from urllib.parse import urlsplit

CHUNK = 1 << 20


def loopback(host):
    if not host.startswith("127."):
        sys.exit("lean.py: loopback (127.0.0.0/8) only, not " + host)
    return host


def target(url, i, n):
    u = urlsplit(url)
    path = (u.path or "/") + (str(i) if n > 1 else "")
    return loopback(u.hostname), u.port or 80, path


def sendfile_all(sock, fd, offset, count):
    while count > 0:
        n = os.sendfile(sock.fileno(), fd, offset, count)
        if n == 0:
            raise OSError("sendfile moved nothing")
        offset += n
        count -= n


def send_one(args, i, size, out):
    fd = os.open(args.file, os.O_RDONLY)
    try:
        if args.url:
            host, port, path = target(args.url, i, args.pipes)
            s = socket.create_connection((host, port))
            framing = (b"Transfer-Encoding: chunked" if args.chunked
                       else b"Content-Length: %d" % size)
            s.sendall(b"PUT %s HTTP/1.1\r\nHost: %s:%d\r\n%s\r\n\r\n"
                      % (path.encode(), host.encode(), port, framing))
            if args.chunked:
                off = 0
                while off < size:
                    n = min(CHUNK, size - off)
                    s.sendall(b"%x\r\n" % n)
                    sendfile_all(s, fd, off, n)
                    s.sendall(b"\r\n")
                    off += n
                s.sendall(b"0\r\n\r\n")
            else:
                sendfile_all(s, fd, 0, size)
            # The relay's answer ends when it is done with us.
            buf = bytearray(4096)
            while s.recv_into(buf):
                pass
        else:
            host, port = args.connect.rsplit(":", 1)
            s = socket.create_connection((loopback(host), int(port)))
            sendfile_all(s, fd, 0, size)
            s.shutdown(socket.SHUT_WR)
            buf = bytearray(4096)
            while s.recv_into(buf):
                pass
        s.close()
        out[i] = size
    finally:
        os.close(fd)


def recv_sock(s, out, i):
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    got = 0
    while True:
        n = s.recv_into(view)
        if n == 0:
            break
        got += n
    s.close()
    out[i] = got


def recv_http(args, i, out, ready):
    host, port, path = target(args.url, i, args.pipes)
    s = socket.create_connection((host, port))
    s.sendall(b"GET %s HTTP/1.1\r\nHost: %s:%d\r\n\r\n"
              % (path.encode(), host.encode(), port))
    ready.release()
    recv_sock(s, out, i)


def run_all(fns):
    threads = [threading.Thread(target=f) for f in fns]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("mode", choices=["send", "recv"])
    ap.add_argument("--url")
    ap.add_argument("--connect")
    ap.add_argument("--listen")
    ap.add_argument("--file")
    ap.add_argument("--pipes", type=int, default=1)
    ap.add_argument("--chunked", action="store_true")
    args = ap.parse_args()
    out = [None] * args.pipes
    if args.mode == "send":
        if not args.file or not (args.url or args.connect):
            sys.exit("lean.py send needs --file and --url or --connect")
        size = os.stat(args.file).st_size
        print("ready", flush=True)
        sys.stdin.readline()
        run_all([lambda i=i: send_one(args, i, size, out) for i in range(args.pipes)])
    elif args.url:
        ready = threading.Semaphore(0)
        threads = [threading.Thread(target=recv_http, args=(args, i, out, ready))
                   for i in range(args.pipes)]
        for t in threads:
            t.start()
        for _ in threads:
            ready.acquire()
        print("ready", flush=True)
        for t in threads:
            t.join()
    elif args.listen:
        host, port = args.listen.rsplit(":", 1)
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((loopback(host), int(port)))
        ls.listen(1024)
        print("ready", flush=True)
        conns = [ls.accept()[0] for _ in range(args.pipes)]
        ls.close()
        run_all([lambda i=i, c=c: recv_sock(c, out, i) for i, c in enumerate(conns)])
    else:
        sys.exit("lean.py recv needs --url or --listen")
    if any(x is None for x in out):
        sys.exit("lean.py: %d of %d pipes failed" % (out.count(None), args.pipes))
    print("bytes %d" % sum(out), flush=True)


if __name__ == "__main__":
    main()
