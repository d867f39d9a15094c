//! The chunked decoder gives the same payload, end and error whether a body
//! arrives whole, split at a point the input chooses, or a byte at a time,
//! or when the caller moves each chunk's payload itself (`data_owed`,
//! `skip_data`, as the relay's pump does into its ring); and the encoder's
//! output, written through a socket that takes what the
//! input says, decodes back to the payload.
//!
//! Input: two bytes of split point, then the body (also the payload).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::{self, IoSlice, Write};
use weir::http::chunked::{ChunkEncoder, ChunkedDecoder, ChunkedError};

/// Payload, done, bytes consumed; or the error.
type Outcome = Result<(Vec<u8>, bool, usize), ChunkedError>;

fn decode(parts: &[&[u8]]) -> Outcome {
    let mut dec = ChunkedDecoder::new();
    let (mut out, mut total) = (Vec::new(), 0);
    for part in parts {
        let mut pos = 0;
        while pos < part.len() {
            let d = dec.decode(&part[pos..])?;
            assert!(d.consumed <= part.len() - pos);
            assert!(d.data.start <= d.data.end && d.data.end <= d.consumed);
            out.extend_from_slice(&part[pos..][d.data]);
            pos += d.consumed;
            total += d.consumed;
            assert_eq!(d.done, dec.is_done());
            if d.done {
                assert_eq!(dec.decode(b"x").map(|d| d.consumed), Ok(0));
                return Ok((out, true, total));
            }
            assert!(d.consumed > 0, "stalled before the end");
        }
    }
    Ok((out, false, total))
}

/// The relay's way: while a chunk owes payload, take up to `step` bytes of
/// it without the decoder (`skip_data`); read framing `step` bytes at a
/// time through `decode`.
fn decode_skipping(body: &[u8], step: usize) -> Outcome {
    let mut dec = ChunkedDecoder::new();
    let (mut out, mut pos) = (Vec::new(), 0);
    while pos < body.len() {
        let owed = dec.data_owed();
        if owed > 0 {
            let n = (owed.min(step as u64) as usize).min(body.len() - pos);
            out.extend_from_slice(&body[pos..pos + n]);
            dec.skip_data(n as u64);
            assert_eq!(dec.data_owed(), owed - n as u64);
            pos += n;
            continue;
        }
        let end = (pos + step).min(body.len());
        let d = dec.decode(&body[pos..end])?;
        out.extend_from_slice(&body[pos..][d.data]);
        pos += d.consumed;
        if d.done {
            return Ok((out, true, pos));
        }
        assert!(d.consumed > 0, "stalled before the end");
    }
    Ok((out, false, pos))
}

/// Takes as many bytes per write as the next script byte says; 0 blocks
/// (never twice in a row, so every script makes progress).
struct Socket<'a> {
    script: &'a [u8],
    at: usize,
    blocked: bool,
    out: Vec<u8>,
}

impl Write for Socket<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let step = self.script.get(self.at % self.script.len().max(1));
        self.at += 1;
        let mut budget = usize::from(step.map_or(7, |b| b % 23));
        if budget == 0 && !self.blocked {
            self.blocked = true;
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.blocked = false;
        budget = budget.max(1);
        let mut n = 0;
        for b in bufs {
            let k = b.len().min(budget);
            self.out.extend_from_slice(&b[..k]);
            budget -= k;
            n += k;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn encode(payload: &[u8], script: &[u8]) -> Vec<u8> {
    let mut w = Socket {
        script,
        at: 0,
        blocked: false,
        out: Vec::new(),
    };
    let mut enc = ChunkEncoder::new();
    let (mut pos, mut calls) = (0, 0usize);
    while pos < payload.len() || enc.has_pending() {
        calls += 1;
        assert!(calls < 100_000, "encoder makes no progress");
        // What the ring holds: some of the unsent bytes, in two slices.
        let step = usize::from(
            script
                .get(calls % script.len().max(1))
                .copied()
                .unwrap_or(0),
        );
        let avail = (payload.len() - pos).min(step * 3 + 1);
        let cut = step % (avail + 1);
        let (a, b) = payload[pos..pos + avail].split_at(cut);
        match enc.write_to(&mut w, a, b) {
            Ok(n) => {
                assert!(n <= avail);
                pos += n;
            }
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::WouldBlock),
        }
    }
    loop {
        calls += 1;
        assert!(calls < 200_000, "finish makes no progress");
        match enc.finish_to(&mut w) {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::WouldBlock),
        }
    }
    assert!(!enc.has_pending());
    w.out
}

fuzz_target!(|data: &[u8]| {
    let Some((split, body)) = data.split_first_chunk::<2>() else {
        return;
    };
    let cut = usize::from(u16::from_le_bytes(*split)) % (body.len() + 1);
    let whole = decode(&[body]);
    let (x, y) = body.split_at(cut);
    assert_eq!(decode(&[x, y]), whole, "split at {cut}");
    let bytes: Vec<&[u8]> = body.chunks(1).collect();
    assert_eq!(decode(&bytes), whole, "byte at a time");
    let step = cut % 17 + 1;
    assert_eq!(decode_skipping(body, step), whole, "payload moved by the caller, step {step}");

    let framed = encode(body, data);
    assert_eq!(decode(&[&framed]), Ok((body.to_vec(), true, framed.len())));
});
