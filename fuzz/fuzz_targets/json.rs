//! `json::parse` on any bytes: never panics; whatever it accepts is written
//! back as JSON that parses to the same value (duplicate keys aside, which
//! writing collapses, so the comparison is of the written forms).
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir::json::{parse, Limits};

fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_depth: 16 };
    let Ok(v) = parse(data, limits) else { return };
    let once = v.to_json();
    let again = parse(once.as_bytes(), limits).expect("written JSON parses");
    assert_eq!(again.to_json(), once);
});
