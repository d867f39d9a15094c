//! The multipart scanner gives the same payload, part info and outcome
//! whether the body arrives whole, in pieces whose sizes the input chooses,
//! or a byte at a time, in both of its modes (first file part, first part
//! of any kind); and the attachment header it leads to is always a clean
//! header value.
//!
//! Input: a Content-Type line ending in `\n` (the boundary comes from it),
//! three bytes of piece sizes (cycled; 0 feeds an empty slice; the low bit
//! of the first picks the mode), the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir::http::multipart::{
    boundary_from_content_type, content_disposition_attachment, MultipartError, MultipartScanner,
    PartInfo,
};

#[derive(Debug, PartialEq)]
struct Outcome {
    last: Result<bool, MultipartError>,
    finish: Result<(), MultipartError>,
    payload: Vec<u8>,
    file: Option<PartInfo>,
}

fn scan(boundary: &str, any_part: bool, pieces: &[&[u8]]) -> Outcome {
    let mut sc = if any_part {
        MultipartScanner::first_part(boundary)
    } else {
        MultipartScanner::new(boundary)
    };
    let mut payload = Vec::new();
    let mut last = Ok(false);
    for piece in pieces {
        if last.is_err() {
            break;
        }
        let was_done = last == Ok(true);
        let before = payload.len();
        last = sc.feed(piece, &mut |s| payload.extend_from_slice(s));
        let emitted = payload.len() - before;
        assert!(emitted <= piece.len() + MultipartScanner::MAX_HELD);
        if was_done {
            assert_eq!(last, Ok(true), "done is final");
            assert_eq!(emitted, 0, "emitted after done");
        }
        if !payload.is_empty() {
            assert!(sc.file_part().is_some(), "payload before part info");
        }
    }
    if let Err(e) = &last {
        assert_eq!(
            sc.feed(b"\r\n", &mut |_| {}).as_ref(),
            Err(e),
            "errors stick"
        );
    }
    Outcome {
        finish: sc.finish(),
        last,
        payload,
        file: sc.file_part().cloned(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(nl) = data.iter().position(|&b| b == b'\n') else {
        return;
    };
    let (ct, rest) = (String::from_utf8_lossy(&data[..nl]), &data[nl + 1..]);
    let Some((sizes, body)) = rest.split_first_chunk::<3>() else {
        return;
    };
    if body.is_empty() {
        // Never fed, so nothing to compare.
        return;
    }
    // Without a valid boundary, the raw line exercises the refusal path.
    let boundary = boundary_from_content_type(&ct).unwrap_or_else(|| ct.to_string());

    let any_part = sizes[0] & 1 == 1;
    let whole = scan(&boundary, any_part, &[body]);
    let mut sizes = sizes.map(|s| usize::from(s % 64));
    if sizes == [0; 3] {
        // Three zero sizes would never move on.
        sizes = [1; 3];
    }
    let mut pieces = Vec::new();
    let mut rest = body;
    let mut k = 0;
    while !rest.is_empty() {
        let (p, r) = rest.split_at(sizes[k % 3].min(rest.len()));
        pieces.push(p);
        rest = r;
        k += 1;
    }
    assert_eq!(scan(&boundary, any_part, &pieces), whole, "pieces {sizes:?}");
    let bytes: Vec<&[u8]> = body.chunks(1).collect();
    assert_eq!(scan(&boundary, any_part, &bytes), whole, "byte at a time");

    if let Some(name) = whole.file.and_then(|f| f.filename) {
        let cd = content_disposition_attachment(&name);
        assert!(
            cd.bytes().all(|b| (0x20..0x7f).contains(&b)),
            "unsafe header value {cd:?}"
        );
    }
});
