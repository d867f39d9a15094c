//! The hixie-76 frame decoder on any bytes, fed whole, split at a point the
//! input chooses, and a byte at a time: never panics, and every feed gives
//! the same messages, the same close and the same error. A text piece is
//! always inside the input and never empty. The key numbers of the
//! handshake never panic either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir::websocket::hixie::{key_number, Decoder, Item};

/// Feed `pieces`, each appended to what the last call left unconsumed (as
/// a connection's buffer is); returns (messages, closed, error).
fn run(pieces: &[&[u8]]) -> (Vec<Vec<u8>>, bool, bool) {
    let mut d = Decoder::new(1 << 12);
    let mut msgs = Vec::new();
    let mut msg: Option<Vec<u8>> = None;
    let mut closed = false;
    let mut buf: Vec<u8> = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        let mut pos = 0;
        loop {
            let Ok((used, item)) = d.parse(&buf[pos..]) else {
                return (msgs, closed, true);
            };
            assert!(used <= buf.len() - pos, "consumed past the input");
            match item {
                Item::NeedMore => {
                    assert_eq!(used, buf.len() - pos, "NeedMore left input");
                    pos += used;
                    break;
                }
                Item::TextStart => {
                    assert!(msg.is_none(), "text inside text");
                    msg = Some(Vec::new());
                }
                Item::Text { start, n } => {
                    assert!(n > 0 && start + n == used, "piece not at the end");
                    let m = msg.as_mut().expect("text outside a message");
                    m.extend_from_slice(&buf[pos + start..pos + start + n]);
                }
                Item::TextEnd => msgs.push(msg.take().expect("end outside a message")),
                Item::Close => closed = true,
            }
            pos += used;
        }
        buf.drain(..pos);
    }
    (msgs, closed, false)
}

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = key_number(s);
    }
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let cut = usize::from(cut).min(rest.len());
    let whole = run(&[rest]);
    assert_eq!(whole, run(&[&rest[..cut], &rest[cut..]]), "split at {cut}");
    let bytes: Vec<&[u8]> = rest.chunks(1).collect();
    assert_eq!(whole, run(&bytes), "a byte at a time");
});
