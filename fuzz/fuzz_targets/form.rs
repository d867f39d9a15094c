//! `form::parse` (qs-style bracket nesting) on any bytes: never panics, and
//! what it accepts is a value whose JSON form parses back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir::form::{parse, Limits};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_params: 64,
        max_depth: 5,
        max_array_index: 20,
    };
    let Ok(v) = parse(data, limits) else { return };
    let text = v.to_json();
    weir::json::parse(text.as_bytes(), weir::json::Limits { max_depth: 64 })
        .expect("a parsed form is valid JSON");
});
