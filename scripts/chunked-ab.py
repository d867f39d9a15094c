#!/usr/bin/env python3
"""Chunked uploads through two weir binaries, interleaved: weir's CPU per GiB.

  CHUNK=4096 ROUNDS=9 python3 scripts/chunked-ab.py OLD_WEIR NEW_WEIR [...]

Each round starts each binary on 127.0.0.1, sends 512 MiB as chunks of
CHUNK bytes from a raw socket (the framing made once, in memory) to one
raw-socket receiver that reads and discards, and reads weir's utime+stime
from /proc before and after. Prints the median throughput and the median
and every round's weir CPU s/GiB per binary. Only the weir processes it
started are stopped; every socket has a 60 s timeout.
"""
import socket, subprocess, time, os, statistics, sys, threading
socket.setdefaulttimeout(60)
def ticks(pid):
    f=open(f"/proc/{pid}/stat").read().rsplit(")",1)[1].split()
    return int(f[11])+int(f[12])
CH=int(os.environ["CHUNK"]); TOTAL=512<<20
payload=os.urandom(CH)
block=(b"%x\r\n" % CH + payload + b"\r\n") * ((64<<20)//CH)
reps=TOTAL//(64<<20)
def recv(port):
    s=socket.create_connection(("127.0.0.1",port)); s.sendall(b"GET /ab HTTP/1.1\r\nHost: x\r\n\r\n")
    buf=bytearray(1<<20); n=0
    while True:
        k=s.recv_into(buf)
        if not k: break
        n+=k
    recv.n=n
res={}
bins=sys.argv[1:]
for r in range(int(os.environ.get("ROUNDS","5"))):
    for b in bins:
        port=19500+r*10+bins.index(b)
        w=subprocess.Popen([b,"--listen",f"127.0.0.1:{port}"],stderr=subprocess.DEVNULL,env=dict(os.environ,RUST_LOG="warn"))
        time.sleep(0.3)
        th=threading.Thread(target=recv,args=(port,)); th.start(); time.sleep(0.1)
        t0=ticks(w.pid); st=time.time()
        s=socket.create_connection(("127.0.0.1",port))
        s.sendall(b"PUT /ab HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        for i in range(reps): s.sendall(block)
        s.sendall(b"0\r\n\r\n")
        while s.recv(65536): pass
        th.join(); el=time.time()-st; t1=ticks(w.pid)
        w.terminate(); w.wait()
        res.setdefault(b,[]).append(((TOTAL/2**30)/el,(t1-t0)/100/(TOTAL/2**30)))
for b,v in res.items():
    print(f"chunk {CH}", b, "GiB/s", round(statistics.median(x[0] for x in v),2), "CPU s/GiB", round(statistics.median(x[1] for x in v),3), [round(x[1],2) for x in v])
