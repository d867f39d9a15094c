//! The QR encoder behind `/qr?t=`: any bytes encode, or are refused as too
//! long, never a panic; a symbol has the size of its version (1 to 10),
//! its three finder corners, and an SVG; the raw query value (percent
//! escapes, `+`) is decoded or refused, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir::page::{qr::Qr, qr::MAX_VERSION, qr_for_query};

fuzz_target!(|data: &[u8]| {
    match Qr::encode(data) {
        Ok(q) => {
            assert!(data.len() <= 213);
            assert!((1..=MAX_VERSION).contains(&q.version));
            assert_eq!(q.size, 17 + 4 * q.version);
            let n = q.size - 1;
            assert!(q.dark(0, 0) && q.dark(n, 0) && q.dark(0, n) && !q.dark(7, 7));
            assert!(q.svg().starts_with("<svg "));
        }
        Err(_) => assert!(data.len() > 213),
    }
    let _ = qr_for_query(&String::from_utf8_lossy(data));
});
