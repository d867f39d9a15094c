//! `http::forwarded::parse` on any header value: never panics, and what it
//! returns is safe to print in a URL or a log line (the characters each
//! part may hold).
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir::http::forwarded::{parse, valid_host};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let f = parse(s);
    assert!(matches!(f.proto, None | Some("http") | Some("https")));
    if let Some(h) = f.host {
        assert!(valid_host(h));
    }
    if let Some(c) = f.client {
        assert!(!c.is_empty() && c.len() <= 64, "{c:?}");
        assert!(c.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-:".contains(&b)), "{c:?}");
    }
});
