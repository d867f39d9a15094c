//! The WebSocket frame parser and message checks on any bytes, fed whole and
//! split at a point the input chooses: never panics, both feeds reach the
//! same outcome (error or not), and give the same payload bytes; after an
//! error one payload is a prefix of the other (a piece is refused whole,
//! so where the split falls decides how much valid text came first).
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir::websocket::codec::{FrameParser, MessageState, Parsed, Role};

/// Feed `pieces` in order; returns (payload bytes seen, failed).
fn run(pieces: &[&[u8]]) -> (Vec<u8>, bool) {
    let mut parser = FrameParser::new(Role::Server, 1 << 16);
    let mut msgs = MessageState::new(1 << 16);
    let mut payload = Vec::new();
    for piece in pieces {
        let mut buf = piece.to_vec();
        let mut pos = 0;
        loop {
            let (used, item) = match parser.parse(&mut buf[pos..]) {
                Ok(x) => x,
                Err(_) => return (payload, true),
            };
            let at = pos;
            pos += used;
            match item {
                Parsed::NeedMore => break,
                Parsed::Header {
                    fin, opcode, len, ..
                } => {
                    if msgs.on_header(fin, opcode, len).is_err() {
                        return (payload, true);
                    }
                }
                Parsed::Payload { start, n, last } => {
                    let bytes = &buf[at + start..at + start + n];
                    if msgs.on_payload(bytes).is_err() {
                        return (payload, true);
                    }
                    payload.extend_from_slice(bytes);
                    if last && msgs.on_frame_end().is_err() {
                        return (payload, true);
                    }
                }
            }
        }
    }
    (payload, false)
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let cut = usize::from(cut).min(rest.len());
    let (wp, wf) = run(&[rest]);
    let (sp, sf) = run(&[&rest[..cut], &rest[cut..]]);
    assert_eq!(wf, sf, "outcome differs");
    if wf {
        let n = wp.len().min(sp.len());
        assert_eq!(wp[..n], sp[..n], "payload before the error differs");
    } else {
        assert_eq!(wp, sp);
    }
});
