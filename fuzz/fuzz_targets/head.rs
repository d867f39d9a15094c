//! `parse_head` on any bytes: never panics; an accepted head's length lies
//! inside the input, and the head alone parses the same; a proper prefix of
//! it is never accepted; its raw bytes parse again the same. The routing helpers and the query decoder run on
//! whatever comes out.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir::http::{parse_head, Limits};

// Smaller than the defaults (16 KiB / 4 KiB) so the 414 and 431 paths are
// reachable within libFuzzer's default 4096-byte inputs.
const LIMITS: Limits = Limits {
    max_head: 2048,
    max_target: 512,
};

fuzz_target!(|data: &[u8]| {
    let Ok(Some((head, n))) = parse_head(data, LIMITS) else {
        return;
    };
    assert!(
        n > 0 && n <= data.len(),
        "head length {n} of {}",
        data.len()
    );
    // Body bytes after the head must not change how the head reads.
    let (again, m) = parse_head(&data[..n], LIMITS)
        .expect("head alone refused")
        .expect("head alone incomplete");
    assert_eq!(m, n);
    assert_eq!(format!("{again:?}"), format!("{head:?}"));
    assert_eq!(again.raw, head.raw);
    // A head kept while its body is read parses again, the same.
    let kept = weir::http::request::parse_again(head.raw).expect("kept head refused");
    assert_eq!(format!("{kept:?}"), format!("{head:?}"));
    // Split reads: a shorter read never completes the head.
    for cut in [n - 1, n / 2] {
        assert!(
            !matches!(parse_head(&data[..cut], LIMITS), Ok(Some(_))),
            "prefix of {cut} bytes accepted"
        );
    }
    let _ = weir::reactor::route::is_reserved(&head.path);
    for kv in head.query.as_deref().unwrap_or("").split('&') {
        let _ = weir::http::percent_decode(kv);
    }
    let _ = head.query_param("n");
    let _ = head.has_body();
    let _ = head.header_str("accept");
    let _ = head.headers("x-piping").count();
    let _ = head.host();
});
