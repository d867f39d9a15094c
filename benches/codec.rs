//! Body framing throughput: the chunked decoder (a sender's
//! `Transfer-Encoding: chunked` body), the chunk encoder (a receiver's
//! response), and the multipart scanner (a `curl -F` upload).
//!
//! Every figure is payload bytes per second over a 1 MiB body, fed in 64 KiB
//! slices as a socket read would hand them over.
//!
//! The decoder never reads payload bytes: it steps through the framing and
//! returns each chunk's data as a range. With 16 KiB chunks its figure is
//! therefore the framing cost alone, far above memory bandwidth; copying the
//! payload is the ring's work (`benches/ring.rs`). Small chunks show the
//! byte-at-a-time framing path, which is what a chatty sender costs.

use criterion::{criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::time::Duration;
use weir::http::chunked::{ChunkEncoder, ChunkedDecoder};
use weir::http::multipart::MultipartScanner;

const BODY: usize = 1 << 20;
/// What one socket read hands the decoder.
const READ: usize = 64 << 10;

/// Payload bytes that are not all alike, so no branch predictor or memcmp
/// shortcut flatters a codec.
fn payload(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// `payload` framed as chunks whose sizes cycle through `sizes`.
fn chunked(payload: &[u8], sizes: &[usize]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() * 2);
    let mut rest = payload;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes[i % sizes.len()].min(rest.len());
        out.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        out.extend_from_slice(&rest[..n]);
        out.extend_from_slice(b"\r\n");
        rest = &rest[n..];
        i += 1;
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// Decode `encoded` in `READ`-sized slices; returns the payload byte count.
fn decode_all(encoded: &[u8]) -> usize {
    let mut dec = ChunkedDecoder::new();
    let mut payload = 0;
    for mut slice in encoded.chunks(READ) {
        while !slice.is_empty() {
            let d = dec.decode(slice).expect("bench body is valid");
            payload += black_box(&slice[d.data.clone()]).len();
            slice = &slice[d.consumed..];
            if d.done {
                return payload;
            }
        }
    }
    payload
}

fn chunked_decode(c: &mut Criterion) {
    let body = payload(BODY);
    let mut g = c.benchmark_group("chunked_decode");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Bytes(BODY as u64));
    // What curl sends for a pipe from stdin: 16 KiB chunks.
    let big = chunked(&body, &[16 << 10]);
    assert_eq!(decode_all(&big), BODY);
    g.bench_function("16KiB_chunks", |b| b.iter(|| decode_all(&big)));
    // A chatty sender (one write per line or keystroke): framing dominates.
    let small = chunked(&body, &[1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(decode_all(&small), BODY);
    g.bench_function("1to8B_chunks", |b| b.iter(|| decode_all(&small)));
    g.finish();
}

fn chunk_encode(c: &mut Criterion) {
    let body = payload(BODY);
    let mut out = Vec::with_capacity(BODY + 4096);
    let mut g = c.benchmark_group("chunk_encode");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Bytes(BODY as u64));
    // As the pump calls it: two slices of a ring (the second after a wrap).
    g.bench_function("ring_slices_into_vec", |b| {
        b.iter(|| {
            out.clear();
            let mut enc = ChunkEncoder::new();
            for part in body.chunks(READ) {
                let (a, bb) = part.split_at(part.len() / 3);
                let mut done = 0;
                while done < part.len() {
                    let (a, bb) = if done < a.len() {
                        (&a[done..], bb)
                    } else {
                        (&bb[done - a.len()..], &[][..])
                    };
                    done += enc.write_to(&mut out, a, bb).expect("Vec accepts all");
                }
            }
            enc.finish_to(&mut out).expect("Vec accepts all");
            black_box(out.len())
        });
    });
    g.finish();
}

const BOUNDARY: &str = "------------------------d74496d66958873e";

/// A `curl -F name=x -F file=@f` body with a 1 MiB file part.
fn multipart_body(file: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(file.len() + 512);
    b.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nx\r\n\
             --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; \
             filename=\"data.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    b.extend_from_slice(file);
    b.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    b
}

fn scan_all(body: &[u8]) -> usize {
    let mut scanner = MultipartScanner::new(BOUNDARY);
    let mut got = 0;
    let mut sink = |s: &[u8]| got += black_box(s).len();
    for slice in body.chunks(READ) {
        if scanner.feed(slice, &mut sink).expect("bench body is valid") {
            break;
        }
    }
    got
}

fn multipart(c: &mut Criterion) {
    // Sprinkle CR LF and dashes into the file so that the scanner meets
    // partial delimiter matches, as it does in real binary files.
    let mut file = payload(BODY);
    for i in (0..BODY).step_by(997) {
        file[i] = b'\r';
        if i + 3 < BODY {
            file[i + 1] = b'\n';
            file[i + 2] = b'-';
            file[i + 3] = b'-';
        }
    }
    let body = multipart_body(&file);
    assert_eq!(scan_all(&body), BODY);
    let mut g = c.benchmark_group("multipart_scan");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Bytes(BODY as u64));
    g.bench_function("1MiB_file_part", |b| b.iter(|| scan_all(&body)));
    g.finish();
}

/// Every bench in this file, configured from the command line.
fn benches() {
    let mut c = Criterion::default().configure_from_args();
    chunked_decode(&mut c);
    chunk_encode(&mut c);
    multipart(&mut c);
}

criterion_main!(benches);
