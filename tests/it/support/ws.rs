//! WebSocket clients over raw sockets: RFC 6455 (upgrade, masked frames
//! out, unmasked frames in, close handshakes), and hixie-76 (draft 76,
//! SockJS's legacy transport), written with weir's own frame codec.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::net::{assert_no_response, connect, read_until, read_until_closed};
use super::DEADLINE;

/// Open a WebSocket to `path`; panics unless the answer is `101`.
pub fn ws_connect(addr: SocketAddr, path: &str) -> TcpStream {
    let (s, status) = ws_try_connect(addr, path);
    assert_eq!(status, 101, "upgrade refused");
    s
}

/// Try a WebSocket upgrade; returns the socket and the status.
pub fn ws_try_connect(addr: SocketAddr, path: &str) -> (TcpStream, u16) {
    let mut s = connect(addr);
    let key = "dGhlIHNhbXBsZSBub25jZQ==";
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let head = String::from_utf8(read_until(&mut s, b"\r\n\r\n")).unwrap();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    if status == 101 {
        // Header names in any case: HAProxy passes them on in lower
        // case, Caddy as `Sec-Websocket-Accept`.
        let accept = head.split("\r\n").find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("sec-websocket-accept")
                .then(|| v.trim())
        });
        assert_eq!(accept, Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
    }
    (s, status)
}

/// Send one masked frame.
pub fn ws_send(
    s: &mut TcpStream,
    fin: bool,
    opcode: weir::websocket::codec::OpCode,
    payload: &[u8],
) {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut out = Vec::with_capacity(payload.len() + 14);
    weir::websocket::codec::write_header(&mut out, fin, opcode, payload.len() as u64, Some(mask));
    let start = out.len();
    out.extend_from_slice(payload);
    weir::websocket::codec::apply_mask(&mut out[start..], mask, 0);
    s.write_all(&out).unwrap();
}

/// A received frame.
#[derive(Debug, PartialEq)]
pub struct WsFrame {
    pub fin: bool,
    pub opcode: weir::websocket::codec::OpCode,
    pub payload: Vec<u8>,
}

/// Read one frame (server frames are unmasked); `None` at end of stream.
pub fn ws_recv(s: &mut TcpStream) -> Option<WsFrame> {
    ws_recv_from(s)
}

/// [`ws_recv`] from any reader (a `BufReader` for many small frames).
pub fn ws_recv_from(s: &mut impl Read) -> Option<WsFrame> {
    let mut h = [0u8; 2];
    if let Err(e) = s.read_exact(&mut h) {
        assert!(
            matches!(
                e.kind(),
                io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset
            ),
            "read error: {e}"
        );
        return None;
    }
    assert_eq!(h[1] & 0x80, 0, "server frames are not masked");
    let mut len = u64::from(h[1] & 0x7f);
    if len == 126 {
        let mut b = [0u8; 2];
        s.read_exact(&mut b).unwrap();
        len = u64::from(u16::from_be_bytes(b));
    } else if len == 127 {
        let mut b = [0u8; 8];
        s.read_exact(&mut b).unwrap();
        len = u64::from_be_bytes(b);
    }
    let mut payload = vec![0u8; len as usize];
    s.read_exact(&mut payload).unwrap();
    Some(WsFrame {
        fin: h[0] & 0x80 != 0,
        opcode: weir::websocket::codec::OpCode::from_u8(h[0] & 0x0f).expect("opcode"),
        payload,
    })
}

/// A close frame's code and reason.
pub fn ws_close_of(f: &WsFrame) -> (u16, String) {
    assert_eq!(f.opcode, weir::websocket::codec::OpCode::Close, "{f:?}");
    let code = u16::from_be_bytes([f.payload[0], f.payload[1]]);
    (code, String::from_utf8(f.payload[2..].to_vec()).unwrap())
}

/// The client's half of a close handshake that weir started (its close
/// frame was just read): weir must keep TCP open for the client's close
/// (no EOF within a quiet window), and once it has it, end TCP cleanly: an
/// EOF with nothing after the close frame, not a reset.
pub fn ws_answer_close(s: &mut TcpStream, payload: &[u8]) {
    assert_no_response(s, Duration::from_millis(200));
    ws_send(s, true, weir::websocket::codec::OpCode::Close, payload);
    ws_expect_clean_end(s);
}

/// After the close frames: the connection ends with a clean EOF (no
/// reset), and nothing more arrives.
pub fn ws_expect_clean_end(s: &mut TcpStream) {
    let (rest, err) = read_until_closed(s, DEADLINE);
    assert!(err.is_none(), "reset instead of a clean close: {err:?}");
    assert!(rest.is_empty(), "bytes after the close frame: {rest:x?}");
}

/// Open a hixie-76 WebSocket (`Sec-WebSocket-Key1`/`Key2`, the draft's
/// example keys) to `path`; returns the socket after the `101` head, with
/// the head. `key3_with_head` sends the 8 key3 bytes with the head, as a
/// browser does; otherwise the caller sends them (as behind a proxy that
/// waits for the server's head).
pub fn hixie_connect(addr: SocketAddr, path: &str, key3_with_head: bool) -> (TcpStream, String) {
    let mut s = connect(addr);
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\nOrigin: http://{addr}\r\nSec-WebSocket-Key1: 4 @1  46546xW%0l 1 5\r\nSec-WebSocket-Key2: 12998 5 Y3 1  .P00\r\n\r\n"
    )
    .into_bytes();
    if key3_with_head {
        req.extend_from_slice(HIXIE_KEY3);
    }
    s.write_all(&req).unwrap();
    let head = String::from_utf8(read_until(&mut s, b"\r\n\r\n")).unwrap();
    (s, head)
}

/// The key3 the hixie helpers send, and the answer it must get with the
/// draft's example keys (the SockJS protocol tests' HAProxy case).
pub const HIXIE_KEY3: &[u8; 8] = b"aaaaaaaa";

pub const HIXIE_ANSWER: &[u8; 16] = b"\xca4\x00\xd8\xa5\x08G\x97,\xd5qZ\xba\xbfC{";

/// Read one hixie-76 frame: `Some(text)` for a text frame, `None` for the
/// close frame.
pub fn hixie_recv(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut b = [0u8; 1];
    s.read_exact(&mut b).expect("hixie frame type");
    match b[0] {
        0x00 => {
            let mut text = read_until(s, b"\xff");
            text.pop();
            Some(text)
        }
        0xff => {
            s.read_exact(&mut b).expect("hixie close length");
            assert_eq!(b[0], 0x00, "close frame");
            None
        }
        t => panic!("unexpected hixie frame type {t:#x}"),
    }
}

/// Send one hixie-76 text frame.
pub fn hixie_send(s: &mut TcpStream, text: &[u8]) {
    let mut f = vec![0x00];
    f.extend_from_slice(text);
    f.push(0xff);
    s.write_all(&f).unwrap();
}
