use super::*;
use crate::encoding::base64_encode;

fn rules(extra: &str) -> Rules {
    let text = format!(
        "# test rules\n\
         user alice {}\n\
         token ci {}\n\
         token ci {}   # a second, rotated token\n\
         user bob {}\n\
         {extra}",
        hash_secret(b"alice-pw"),
        hash_secret(b"ci-token-1"),
        hash_secret(b"ci-token-2"),
        hash_secret(b"bob:pw"),
    );
    Rules::parse(&text).unwrap_or_else(|e| panic!("{e}"))
}

fn basic(user: &str, pw: &str) -> Vec<u8> {
    format!("Basic {}", base64_encode(format!("{user}:{pw}").as_bytes())).into_bytes()
}

fn ask<'a>(
    r: &Rules,
    path: &'a str,
    action: Actions,
    auth: Option<&'a [u8]>,
    query: Option<&'a str>,
) -> Decision {
    r.check(&Request {
        resource: path,
        link_path: path,
        action,
        authorization: auth,
        query,
        now: 1_000,
    })
}

fn allowed(d: &Decision) -> bool {
    matches!(d, Decision::Allow { .. })
}

#[test]
fn each_who_allows_and_refuses_as_written() {
    let r = rules(
        "allow alice send,receive /team/\n\
         allow ci send /team/\n\
         allow anyone receive /public/\n\
         allow * send /public/\n\
         allow bob receive /team\n",
    );
    let a = basic("alice", "alice-pw");
    let b = basic("bob", "bob:pw");
    let ci = b"Bearer ci-token-2".to_vec();
    let (s, rcv) = (Actions::SEND, Actions::RECEIVE);
    assert!(allowed(&ask(&r, "/team/x", s, Some(&a), None)));
    assert!(allowed(&ask(&r, "/team/x", rcv, Some(&a), None)));
    assert!(allowed(&ask(&r, "/team/x", Actions::BOTH, Some(&a), None)));
    assert!(allowed(&ask(&r, "/team/x", s, Some(&ci), None)));
    assert!(allowed(&ask(
        &r,
        "/team/x",
        s,
        Some(b"bearer ci-token-1"),
        None
    )));
    assert!(matches!(
        ask(&r, "/team/x", rcv, Some(&ci), None),
        Decision::Forbidden(_)
    ));
    assert!(matches!(
        ask(&r, "/team/x", Actions::BOTH, Some(&ci), None),
        Decision::Forbidden(_)
    ));
    // `/team/` is longer than `/team`, so bob's line does not reach /team/x…
    assert!(matches!(
        ask(&r, "/team/x", rcv, Some(&b), None),
        Decision::Forbidden(_)
    ));
    // …but covers /team itself.
    assert!(allowed(&ask(&r, "/team", rcv, Some(&b), None)));
    assert!(!allowed(&ask(&r, "/teamx", rcv, Some(&b), None)));
    // anyone: no credentials, and with them.
    assert!(allowed(&ask(&r, "/public/f", rcv, None, None)));
    assert!(allowed(&ask(&r, "/public/f", rcv, Some(&b), None)));
    // `*`: any known identity, never anonymous.
    assert!(allowed(&ask(&r, "/public/f", s, Some(&b), None)));
    assert_eq!(
        ask(&r, "/public/f", s, None, None),
        Decision::Unauthenticated(MSG_MISSING)
    );
    // Default deny.
    assert_eq!(
        ask(&r, "/other", rcv, None, None),
        Decision::Unauthenticated(MSG_MISSING)
    );
    assert!(matches!(
        ask(&r, "/other", rcv, Some(&a), None),
        Decision::Forbidden(_)
    ));
}

#[test]
fn wrong_credentials_are_401_even_where_anyone_may() {
    let r = rules("allow anyone send,receive /\n");
    for bad in [
        basic("alice", "wrong"),
        basic("nobody", "alice-pw"),
        basic("bob", "pw"), // bob's password holds a colon: "bob:pw"
        b"Bearer ci-token-3".to_vec(),
        b"Bearer".to_vec(),
        b"Basic !!!".to_vec(),
        b"Basic YWxpY2U=".to_vec(), // "alice", no colon
        b"Digest x".to_vec(),
        vec![0xff, 0xfe],
    ] {
        assert_eq!(
            ask(&r, "/x", Actions::SEND, Some(&bad), None),
            Decision::Unauthenticated(MSG_WRONG),
            "{}",
            String::from_utf8_lossy(&bad)
        );
    }
    assert!(allowed(&ask(
        &r,
        "/x",
        Actions::SEND,
        Some(&basic("bob", "bob:pw")),
        None
    )));
}

#[test]
fn longest_prefix_decides_alone() {
    let r = rules(
        "allow * send,receive /\n\
         allow anyone receive /pub/\n\
         deny /admin\n",
    );
    let a = basic("alice", "alice-pw");
    assert!(allowed(&ask(&r, "/x", Actions::SEND, Some(&a), None)));
    // /pub/ replaces / entirely: alice may not send there.
    assert!(matches!(
        ask(&r, "/pub/x", Actions::SEND, Some(&a), None),
        Decision::Forbidden(_)
    ));
    assert!(allowed(&ask(&r, "/pub/x", Actions::RECEIVE, None, None)));
    assert!(matches!(
        ask(&r, "/admin/x", Actions::RECEIVE, Some(&a), None),
        Decision::Forbidden(_)
    ));
    assert!(allowed(&ask(
        &r,
        "/adminx",
        Actions::RECEIVE,
        Some(&a),
        None
    )));
}

#[test]
fn prefixes() {
    assert!(prefix_covers("/", "/anything"));
    assert!(prefix_covers("/a", "/a"));
    assert!(prefix_covers("/a", "/a/b"));
    assert!(!prefix_covers("/a", "/ab"));
    assert!(prefix_covers("/a/", "/a/b"));
    assert!(!prefix_covers("/a/", "/a"));
    assert!(prefix_covers("/s/", "/s/"));
}

#[test]
fn bad_files_name_the_line() {
    let h = hash_secret(b"x");
    for (text, line, needle) in [
        ("user alice sha256:00\n", 1, "sha256:<64 hex"),
        (&format!("user a {h}\nuser a {h}\n") as &str, 2, "twice"),
        ("\n\nallow bob send /x\n", 3, "neither a user nor a token"),
        ("allow anyone sned /x\n", 1, "not send"),
        ("allow anyone send x\n", 1, "not a path prefix"),
        ("allow anyone send /x y\n", 1, "wrong number of words"),
        ("permit anyone send /x\n", 1, "unknown rule"),
        (&format!("user anyone {h}\n"), 1, "not a name"),
        (
            "allow anyone send /x\ndeny /x\n",
            2,
            "both denied and allowed",
        ),
        ("signed-links a\nsigned-links b\n", 2, "twice"),
    ] {
        let e = Rules::parse(text).unwrap_err();
        assert_eq!(e.line, line, "{text}: {e}");
        assert!(e.to_string().contains(needle), "{text}: {e}");
    }
    let big = "#".repeat(MAX_RULES_BYTES + 1);
    assert_eq!(Rules::parse(&big).unwrap_err().line, 0);
    // Upper-case hex digits and CRLF lines are fine.
    let upper = hash_secret(b"x")
        .to_ascii_uppercase()
        .replace("SHA256", "sha256");
    Rules::parse(&format!("user a {upper}\r\nallow a send /\r\n")).unwrap();
}

#[test]
fn debug_hides_digests() {
    let r = rules("");
    let shown = format!("{r:?}");
    assert!(!shown.contains(&hash_secret(b"alice-pw")[7..]), "{shown}");
    assert!(shown.contains("users: 2"), "{shown}");
}

#[test]
fn signed_links() {
    let key = vec![7u8; 32];
    let mut r = rules("allow alice send /\n");
    let q = link::sign(&key, "/file", 2_000, Actions::RECEIVE);
    // No key configured: a link is refused, not ignored.
    assert!(matches!(
        ask(&r, "/file", Actions::RECEIVE, None, Some(&q)),
        Decision::Unauthenticated(_)
    ));
    r.set_link_key(key.clone());
    assert!(allowed(&ask(&r, "/file", Actions::RECEIVE, None, Some(&q))));
    // The pipe's own parameters may come before or after.
    let with_n = format!("n=2&{q}");
    assert!(allowed(&ask(
        &r,
        "/file",
        Actions::RECEIVE,
        None,
        Some(&with_n)
    )));
    // Not another action: 403 (the link is genuine).
    assert!(matches!(
        ask(&r, "/file", Actions::SEND, None, Some(&q)),
        Decision::Forbidden(_)
    ));
    // …unless the rules allow it to the one who also sent credentials.
    let a = basic("alice", "alice-pw");
    assert!(allowed(&ask(
        &r,
        "/file",
        Actions::SEND,
        Some(&a),
        Some(&q)
    )));
    // Not another path.
    assert_eq!(
        ask(&r, "/file2", Actions::RECEIVE, None, Some(&q)),
        Decision::Unauthenticated(link::LinkError::Invalid.message())
    );
    // Not after expiry (valid while now < exp).
    let at = |now| {
        r.check(&Request {
            resource: "/file",
            link_path: "/file",
            action: Actions::RECEIVE,
            authorization: None,
            query: Some(&q),
            now,
        })
    };
    assert!(allowed(&at(1_999)));
    assert_eq!(
        at(2_000),
        Decision::Unauthenticated(link::LinkError::Expired.message())
    );
    // Not with one byte changed anywhere in the query.
    for i in 0..q.len() {
        let mut b = q.clone().into_bytes();
        b[i] = if b[i] == b'A' { b'B' } else { b'A' };
        let Ok(changed) = String::from_utf8(b) else {
            continue;
        };
        let d = ask(&r, "/file", Actions::RECEIVE, None, Some(&changed));
        assert!(!allowed(&d), "{changed} was accepted");
    }
    // Not from another key.
    let other = link::sign(&[8u8; 32], "/file", 2_000, Actions::RECEIVE);
    assert!(!allowed(&ask(
        &r,
        "/file",
        Actions::RECEIVE,
        None,
        Some(&other)
    )));
    // Both allows a WebSocket.
    let both = link::sign(&key, "/ws", 2_000, Actions::BOTH);
    assert!(allowed(&ask(&r, "/ws", Actions::BOTH, None, Some(&both))));
}

#[test]
fn link_urls_keep_the_target_query() {
    let key = vec![1u8; 32];
    let u = link::url("https://r.example/", "/p?n=2", &key, 5, Actions::SEND);
    assert!(
        u.starts_with("https://r.example/p?n=2&exp=5&allow=s&sig="),
        "{u}"
    );
    let u = link::url("http://h", "/p", &key, 5, Actions::BOTH);
    assert!(u.starts_with("http://h/p?exp=5&allow=sr&sig="), "{u}");
    assert_eq!(u.len(), "http://h/p?exp=5&allow=sr&sig=".len() + 43);
}

#[test]
fn keys() {
    let k = link::new_key().unwrap();
    assert_eq!(link::parse_key(&k).unwrap().len(), 32);
    assert!(link::parse_key("abcd").is_err());
    assert!(link::parse_key(&"zz".repeat(32)).is_err());
}

#[test]
fn hashes() {
    // The SHA-256 of "abc" (FIPS 180-2).
    assert_eq!(
        hash_secret(b"abc"),
        "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}
