"""Close handshakes with a real WebSocket client library (websocket-client,
Debian's python3-websocket), run by tests/it/ws.rs against a relay:

    /usr/bin/python3 tests/clients/ws_close.py ws://127.0.0.1:PORT

Each scenario checks what the library sees (codes, reasons, messages) and
the TCP connection under it: when weir starts a close, it must keep TCP
open until the client's close (no EOF within a quiet window), then end it
with a clean EOF, never a reset. Prints one line per scenario; exits 0
only if all held.
"""

import select
import socket
import struct
import sys
import uuid

import websocket
from websocket import ABNF

BASE = sys.argv[1].rstrip("/")
QUIET = 0.2
DEADLINE = 10


def connect(path):
    return websocket.create_connection(BASE + path, timeout=DEADLINE)


def close_of(frame):
    assert frame.opcode == ABNF.OPCODE_CLOSE, "expected a close frame, got opcode %d" % frame.opcode
    code = struct.unpack("!H", frame.data[:2])[0]
    return code, frame.data[2:].decode("utf-8")


def stays_open(ws):
    """weir waits for our close: nothing arrives, TCP stays open."""
    ready, _, _ = select.select([ws.sock], [], [], QUIET)
    if ready:
        peek = ws.sock.recv(1, socket.MSG_PEEK)
        raise AssertionError("weir ended TCP before our close" if peek == b"" else "unexpected bytes %r" % peek)


def clean_end(ws):
    """After both closes: EOF, not a reset, nothing more."""
    ws.sock.settimeout(DEADLINE)
    try:
        rest = ws.sock.recv(4096)
    except ConnectionResetError as e:
        raise AssertionError("reset instead of a clean end: %s" % e)
    assert rest == b"", "bytes after the close: %r" % rest
    ws.sock.close()


def answer_close(ws, want):
    frame = ws.recv_frame()
    got = close_of(frame)
    assert got == want, "close %r, want %r" % (got, want)
    stays_open(ws)
    ws.send_close(status=got[0], reason=got[1].encode("utf-8"))
    clean_end(ws)


def close_service():
    ws = connect("/sockjs/close/websocket")
    answer_close(ws, (3000, "Go away!"))


def broken_framing():
    ws = connect("/sockjs/echo/000/%s/websocket" % uuid.uuid4())
    assert ws.recv() == "o"
    ws.send("[not json")
    answer_close(ws, (3000, "Broken framing."))


def pipe_close_passed_on():
    path = "/pyroom-%s" % uuid.uuid4()
    a = connect(path)
    b = connect(path)
    b.send("hello")
    assert a.recv() == "hello"
    # The library's own close: it sends its close and waits for the echo.
    a.close(status=4001, reason=b"bye")
    answer_close(b, (4001, "bye"))


def client_starts_the_close():
    ws = connect("/sockjs/echo/websocket")
    ws.send("x")
    assert ws.recv() == "x"
    ws.send_close(status=1000, reason=b"done")
    assert close_of(ws.recv_frame()) == (1000, "done")
    clean_end(ws)


def reuse_session_id():
    # The SockJS protocol's test_reuseSessionId.
    url = "/sockjs/echo/000/%s/websocket" % uuid.uuid4()
    one = connect(url)
    assert one.recv() == "o"
    two = connect(url)
    assert two.recv() == "o"
    one.send('["a"]')
    assert one.recv() == 'a["a"]'
    two.send('["b"]')
    assert two.recv() == 'a["b"]'
    one.close()
    two.close()
    again = connect(url)
    assert again.recv() == "o"
    again.send('["a"]')
    assert again.recv() == 'a["a"]'
    again.close()


failed = 0
for test in [close_service, broken_framing, pipe_close_passed_on, client_starts_the_close, reuse_session_id]:
    try:
        test()
        print("ok %s" % test.__name__)
    except Exception as e:  # report every scenario, then fail
        failed += 1
        print("FAILED %s: %s: %s" % (test.__name__, type(e).__name__, e))
sys.stdout.flush()
sys.exit(1 if failed else 0)
