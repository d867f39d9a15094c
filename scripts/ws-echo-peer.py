# The far end of a WebSocket pipe for scripts/autobahn.sh --pipe: it keeps
# one peer on a pipe path, echoes every message it is passed, answers the
# close it is passed, and connects again for the next pair. With it,
# Autobahn|Testsuite's fuzzing client, on the same path, tests weir's pipe
# (framing, fragmentation, UTF-8 checks, pings, the close passed on)
# through a real client library on the other side (Debian's
# python3-websocket, websocket-client).
#
#   /usr/bin/python3 scripts/ws-echo-peer.py ws://127.0.0.1:PORT/PATH
#
# Runs until killed; one line on stderr per pair that did not end with a
# close (the fuzzing client breaks some on purpose).
import sys
import time

import websocket
from websocket import ABNF


def serve(url):
    ws = websocket.WebSocket(skip_utf8_validation=True)
    try:
        ws.connect(url)
    except websocket.WebSocketBadStatusException:
        # 409: the previous pair on the path is still closing.
        time.sleep(0.01)
        return
    except OSError:
        time.sleep(0.05)
        return
    ws.settimeout(None)
    try:
        while True:
            op, frame = ws.recv_data_frame(True)
            if op == ABNF.OPCODE_CLOSE:
                # recv_data_frame has answered it; wait for weir to end TCP.
                ws.settimeout(2)
                try:
                    while ws.recv_frame():
                        pass
                except Exception:
                    pass
                return
            if op in (ABNF.OPCODE_TEXT, ABNF.OPCODE_BINARY):
                ws.send(frame.data, op)
    except Exception as e:
        print("ws-echo-peer: pair ended without a close: %r" % (e,), file=sys.stderr)
    finally:
        ws.shutdown()


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: ws-echo-peer.py ws://HOST:PORT/PATH")
    while True:
        serve(sys.argv[1])


if __name__ == "__main__":
    main()
