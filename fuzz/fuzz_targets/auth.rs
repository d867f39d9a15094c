//! The rules file parser, the `Authorization` header and the signed-link
//! query on any bytes: never panic; a file that parses is checked with any
//! header and query without panicking, and the same request twice gets the
//! same decision; a genuine link for the path always lets its action
//! through unless the header is wrong; standard base64 that decodes
//! encodes back to bytes that decode the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir::encoding::{base64_decode, base64_encode};
use weir::auth::{link, Actions, Decision, Request, Rules};

const KEY: [u8; 32] = [9; 32];

fuzz_target!(|data: &[u8]| {
    // rules text NUL Authorization value NUL query
    let mut parts = data.splitn(3, |&b| b == 0);
    let text = parts.next().unwrap_or(b"");
    let auth = parts.next();
    let query = parts.next().and_then(|q| std::str::from_utf8(q).ok());
    if let Ok(s) = std::str::from_utf8(data) {
        if let Some(bytes) = base64_decode(s) {
            assert_eq!(base64_decode(&base64_encode(&bytes)), Some(bytes));
        }
    }
    let Ok(text) = std::str::from_utf8(text) else { return };
    let Ok(mut rules) = Rules::parse(text) else { return };
    rules.set_link_key(KEY.to_vec());
    let ask = |query: Option<&str>| {
        rules.check(&Request {
            resource: "/a/b",
            link_path: "/a/b",
            action: Actions::RECEIVE,
            authorization: auth,
            query,
            now: 1_000,
        })
    };
    let d = ask(query);
    assert_eq!(d, ask(query));
    let genuine = link::sign(&KEY, "/a/b", 2_000, Actions::RECEIVE);
    let got = ask(Some(&genuine));
    let wrong_header = got == Decision::Unauthenticated(weir::auth::MSG_WRONG);
    assert!(wrong_header || matches!(got, Decision::Allow { .. }), "{got:?}");
});
