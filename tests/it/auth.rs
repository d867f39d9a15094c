//! Private relays (`--auth`) and protected metrics (`--metrics-listen`):
//! every rule kind allows and refuses as written, for every family; a
//! refused client never parks or reaches another party; signed links work
//! on their path until their expiry and not otherwise; `/metrics` moves off
//! the public listener; no secret reaches the log.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use weir::auth::{hash_secret, link, Actions, Rules};
use weir::encoding::base64_encode;
use weir::websocket::codec::OpCode;

use crate::support::curl::{curl, Curl};
use crate::support::fs::TempFile;
use crate::support::http::{assert_error, exchange, get, Response};
use crate::support::net::{assert_no_response, connect, read_until};
use crate::support::payload::pattern;
use crate::support::relay::{Binary, Relay};
use crate::support::sse::SseClient;
use crate::support::ws::{ws_recv, ws_send};
use crate::support::DEADLINE;

const ANN: &str = "ann-password-5d1c0e27a9";
const CI: &str = "ci-token-8b3f61a2c4d7e9";
const READER: &str = "reader-token-0f7a2b9c31";
const KEY: [u8; 32] = [0x5a; 32];
const WAITING: &str = "weir_pipes{state=\"waiting\"}";

fn rules_text() -> String {
    format!(
        "# who
user ann {}
token ci {}
token reader {}
# pipes
allow ci send /team/
allow ann,reader receive /team/
deny /team/locked
allow anyone receive /pub/
allow * send /pub/
# ephemeral sockets
allow ci send /s/
allow ann receive /s/
# swarms and topics
allow ann receive /signal
allow ci send /signal
allow anyone receive /events/
allow ci send /events/
# WebSocket and SockJS
allow ann send,receive /ws/
allow ci send /ws/
allow ann receive /sockjs/chat
allow ci send,receive /sockjs/chat
",
        hash_secret(ANN.as_bytes()),
        hash_secret(CI.as_bytes()),
        hash_secret(READER.as_bytes()),
    )
}

fn relay() -> Relay {
    let mut rules = Rules::parse(&rules_text()).unwrap();
    rules.set_link_key(KEY.to_vec());
    Relay::with(|c| {
        c.auth = Some(Arc::new(rules));
        c.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    })
}

fn ann() -> String {
    format!(
        "Authorization: Basic {}\r\n",
        base64_encode(format!("ann:{ANN}").as_bytes())
    )
}

fn bearer(t: &str) -> String {
    format!("Authorization: Bearer {t}\r\n")
}

/// One request on a fresh connection, read to close.
fn ask(addr: SocketAddr, method: &str, path: &str, headers: &str, body: &[u8]) -> Response {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{headers}");
    if matches!(method, "PUT" | "POST") {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut raw = req.into_bytes();
    raw.extend_from_slice(body);
    exchange(addr, &raw)
}

fn challenges(r: &Response) -> Vec<&str> {
    r.headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("www-authenticate"))
        .map(|(_, v)| v.as_str())
        .collect()
}

fn assert_401(r: &Response) {
    assert_error(r, 401);
    assert_eq!(
        challenges(r),
        [
            "Basic realm=\"weir\", charset=\"UTF-8\"",
            "Bearer realm=\"weir\""
        ]
    );
}

fn assert_403(r: &Response) {
    assert_error(r, 403);
    assert!(challenges(r).is_empty());
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// curl's `-H` wants the header without its line end.
fn h(header: &str) -> &str {
    header.trim_end()
}

#[test]
fn pipes_allow_and_refuse_each_rule_kind() {
    let r = relay();
    let data = pattern(100_000, 1);
    let file = TempFile::new("up.bin", &data);
    // Anonymous, a wrong token, a wrong password: 401 with both challenges.
    assert_401(&ask(r.addr, "PUT", "/team/a", "", b"abc"));
    assert_401(&ask(r.addr, "PUT", "/team/a", &bearer("nope"), b"abc"));
    let wrong = format!(
        "Authorization: Basic {}\r\n",
        base64_encode(b"ann:not-her-password")
    );
    assert_401(&ask(r.addr, "GET", "/team/a", &wrong, b""));
    // Known, not allowed that action: 403.
    assert_403(&ask(r.addr, "PUT", "/team/a", &ann(), b"abc"));
    assert_403(&ask(r.addr, "GET", "/team/a", &bearer(CI), b""));
    // `deny` carves a prefix out of a wider allow.
    assert_403(&ask(r.addr, "GET", "/team/locked/x", &ann(), b""));
    assert_401(&ask(r.addr, "GET", "/team/locked", "", b""));
    // Default deny outside every prefix.
    assert_403(&ask(r.addr, "GET", "/elsewhere", &ann(), b""));
    assert_401(&ask(r.addr, "GET", "/elsewhere", "", b""));

    // Bearer sends, Basic receives; then Bearer receives.
    let (user, reader) = (format!("ann:{ANN}"), bearer(READER));
    for receiver in [["-u", user.as_str()], ["-H", h(&reader)]] {
        let sender = Curl::spawn(&[
            "-sS",
            "-T",
            file.path_str(),
            "-H",
            h(&bearer(CI)),
            &r.url("/team/a"),
        ]);
        r.wait_metric(WAITING, 1.0);
        let mut args: Vec<&str> = vec!["-sS", "--fail"];
        args.extend(receiver);
        let url = r.url("/team/a");
        args.push(&url);
        let (st, out, err) = curl(&args);
        assert!(st.success(), "{err}");
        assert_eq!(out, data);
        let (st, _, err) = sender.finish();
        assert!(st.success(), "{err}");
    }

    // `anyone` receives /pub/, `*` (any user or token) sends there.
    assert_401(&ask(r.addr, "PUT", "/pub/f", "", b"abc"));
    let sender = Curl::spawn(&[
        "-sS",
        "-T",
        file.path_str(),
        "-u",
        &format!("ann:{ANN}"),
        &r.url("/pub/f"),
    ]);
    r.wait_metric(WAITING, 1.0);
    let (st, out, err) = curl(&["-sS", "--fail", &r.url("/pub/f")]);
    assert!(st.success(), "{err}");
    assert_eq!(out, data);
    assert!(sender.finish().0.success());
    let m = r.metrics();
    assert!(m["weir_auth_refused_total{status=\"401\"}"] >= 5.0);
    assert!(m["weir_auth_refused_total{status=\"403\"}"] >= 3.0);
    r.assert_idle();
}

#[test]
fn public_pages_stay_public() {
    let r = relay();
    for p in ["/", "/help", "/noscript", "/healthz", "/version"] {
        assert_eq!(get(r.addr, p).status, 200, "{p}");
    }
    let pre = ask(
        r.addr,
        "OPTIONS",
        "/team/a",
        "Origin: http://o\r\nAccess-Control-Request-Method: PUT\r\nAccess-Control-Request-Headers: authorization\r\n",
        b"",
    );
    assert_eq!(pre.status, 204);
    assert_eq!(
        pre.header("Access-Control-Allow-Headers"),
        Some("authorization")
    );
    assert_eq!(get(r.addr, "/sockjs/chat/info").status, 200);
    assert_eq!(get(r.addr, "/qr?t=hello").status, 200);
    // A pipe's status is for those who may send or receive on it.
    assert_401(&ask(r.addr, "GET", "/status/team/a", "", b""));
    assert_eq!(
        ask(r.addr, "GET", "/status/team/a", &ann(), b"").status,
        200
    );
    let ci = bearer(CI);
    assert_eq!(ask(r.addr, "GET", "/status/team/a", &ci, b"").status, 200);
    assert_403(&ask(r.addr, "GET", "/status/team/locked", &ci, b""));
    // …while the same relay guards its transfers.
    assert_401(&ask(r.addr, "GET", "/team/a", "", b""));
    assert_401(&ask(
        r.addr,
        "GET",
        "/sockjs/chat/000/a/eventsource",
        "",
        b"",
    ));
}

#[test]
fn a_refused_client_never_parks_or_reaches_another() {
    let r = relay();
    // Refused senders first: nothing waits, and the allowed receiver that
    // comes next waits alone and gets nothing.
    assert_401(&ask(r.addr, "PUT", "/team/b", "", b"hello"));
    assert_403(&ask(r.addr, "PUT", "/team/b", &ann(), b"hello"));
    assert_eq!(r.metric(WAITING), 0.0);
    let mut recv = connect(r.addr);
    write!(
        recv,
        "GET /team/b HTTP/1.1\r\nHost: t\r\n{}\r\n",
        bearer(READER)
    )
    .unwrap();
    r.wait_metric(WAITING, 1.0);
    assert_no_response(&mut recv, Duration::from_millis(300));
    drop(recv);
    r.wait_metric(WAITING, 0.0);

    // Refused receivers first: the allowed sender still waits for one.
    assert_401(&ask(r.addr, "GET", "/team/c", "", b""));
    assert_403(&ask(r.addr, "GET", "/team/c", &bearer(CI), b""));
    assert_eq!(r.metric(WAITING), 0.0);
    let file = TempFile::new("c.bin", b"secret bytes");
    let sender = Curl::spawn(&[
        "-sS",
        "-T",
        file.path_str(),
        "-N",
        "-H",
        "Expect: 100-continue",
        "-H",
        h(&bearer(CI)),
        &r.url("/team/c"),
    ]);
    assert_eq!(sender.next_line(), "[INFO] Waiting for 1 receiver(s)...");
    r.wait_metric(WAITING, 1.0);
    // The first allowed receiver is its one receiver and gets its bytes.
    let (st, out, err) = curl(&[
        "-sS",
        "--fail",
        "-u",
        &format!("ann:{ANN}"),
        &r.url("/team/c"),
    ]);
    assert!(st.success(), "{err}");
    assert_eq!(out, b"secret bytes");
    assert!(sender.finish().0.success());

    // A refused WebSocket peer: the allowed one still waits alone.
    let (_s, status) = ws_with(r.addr, "/ws/x", &bearer(CI));
    assert_eq!(status, 403);
    assert_eq!(r.metric("weir_ws_pipes{state=\"waiting\"}"), 0.0);
    let (mut a, status) = ws_with(r.addr, "/ws/x", &ann());
    assert_eq!(status, 101);
    r.wait_metric("weir_ws_pipes{state=\"waiting\"}", 1.0);
    assert_no_response(&mut a, Duration::from_millis(200));
    drop(a);
    r.assert_idle();
}

#[test]
fn ephemeral_sockets() {
    let r = relay();
    let data = pattern(50_000, 2);
    let file = TempFile::new("e.bin", &data);
    assert_401(&ask(r.addr, "POST", "/", "", b"abc"));
    assert_403(&ask(r.addr, "POST", "/", &ann(), b"abc"));
    assert_eq!(r.metric(WAITING), 0.0);
    // (`-T file URL/` would upload to /<file name>.)
    let at_file = format!("@{}", file.path_str());
    let sender = Curl::spawn(&[
        "-sS",
        "--data-binary",
        &at_file,
        "-N",
        "-H",
        "Content-Type: application/octet-stream",
        "-H",
        "Expect: 100-continue",
        "-H",
        h(&bearer(CI)),
        &r.url("/"),
    ]);
    assert!(sender
        .next_line()
        .starts_with("Ephemeral socket open with ID "));
    let url = sender.next_line();
    let path = &url[url.find("/s/").expect("a /s/ URL")..];
    // Refused receivers do not spend the ID.
    assert_401(&ask(r.addr, "GET", path, "", b""));
    assert_403(&ask(r.addr, "GET", path, &bearer(CI), b""));
    let (st, out, err) = curl(&["-sS", "--fail", "-u", &format!("ann:{ANN}"), &r.url(path)]);
    assert!(st.success(), "{err}");
    assert_eq!(out, data);
    assert!(sender.finish().0.success());
    r.assert_idle();
}

#[test]
fn swarms_and_topics() {
    let r = relay();
    let sse = "Accept: text/event-stream\r\n";
    // Swarms: creating and joining receive, posting sends.
    assert_eq!(SseClient::open_with(r.addr, "/signal", sse).status, 401);
    let mut init = SseClient::open_with(r.addr, "/signal", &format!("{sse}{}", ann()));
    assert_eq!(init.status, 200);
    let connect_ev = init.next_event().expect("connect");
    let v = weir::json::parse(
        connect_ev.data.as_bytes(),
        weir::json::Limits { max_depth: 4 },
    )
    .unwrap();
    let id = v.get("id").and_then(|x| x.as_str()).unwrap().to_string();
    let token = v.get("token").and_then(|x| x.as_str()).unwrap().to_string();
    let join = format!("/signal/{id}");
    assert_eq!(SseClient::open_with(r.addr, &join, sse).status, 401);
    let ci_join = SseClient::open_with(r.addr, &join, &format!("{sse}{}", bearer(CI)));
    assert_eq!(ci_join.status, 403);
    let body = format!("{{\"token\": \"{token}\", \"data\": \"hi\"}}");
    let json = "Content-Type: application/json\r\n";
    assert_401(&ask(r.addr, "POST", &join, json, body.as_bytes()));
    let as_ann = format!("{json}{}", ann());
    assert_403(&ask(r.addr, "POST", &join, &as_ann, body.as_bytes()));
    let as_ci = format!("{json}{}", bearer(CI));
    assert_eq!(
        ask(r.addr, "POST", &join, &as_ci, body.as_bytes()).status,
        200
    );
    let ev = init.next_event().expect("the signal");
    assert_eq!(ev.event.as_deref(), Some("signal"));
    assert_eq!(ev.data, "\"hi\"");

    // EventSource cannot send headers: a signed link opens a stream.
    let q = link::sign(&KEY, &join, unix_now() + 600, Actions::RECEIVE);
    let mut linked = SseClient::open_with(r.addr, &format!("{join}?{q}"), sse);
    assert_eq!(linked.status, 200);
    assert_eq!(
        linked.next_event().expect("connect").event.as_deref(),
        Some("connect")
    );

    // Topics: anyone subscribes, only ci publishes.
    let mut sub = SseClient::open(r.addr, "/events/news");
    assert_eq!(sub.status, 200);
    r.wait_metric("weir_topics", 1.0);
    assert_401(&ask(r.addr, "POST", "/events/news", "", b"x"));
    assert_403(&ask(r.addr, "POST", "/events/news", &bearer(READER), b"x"));
    let ok = ask(r.addr, "POST", "/events/news", &bearer(CI), b"extra");
    assert_eq!(ok.status, 200, "{}", ok.text());
    let ev = sub.next_event().expect("the event");
    assert_eq!(ev.data, "extra");
    assert_eq!(r.metric("weir_events_published_total"), 1.0);
}

/// A WebSocket upgrade with extra headers: the socket and the status.
fn ws_with(addr: SocketAddr, path: &str, headers: &str) -> (std::net::TcpStream, u16) {
    let mut s = connect(addr);
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{headers}\r\n"
    )
    .unwrap();
    let head = String::from_utf8(read_until(&mut s, b"\r\n\r\n")).unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (s, status)
}

#[test]
fn websocket_pipes_need_send_and_receive() {
    let r = relay();
    assert_eq!(ws_with(r.addr, "/ws/p", "").1, 401);
    assert_eq!(ws_with(r.addr, "/ws/p", &bearer(CI)).1, 403);
    // Signed links: `sr` opens a WebSocket, `r` alone does not.
    let exp = unix_now() + 600;
    let r_only = link::sign(&KEY, "/ws/p", exp, Actions::RECEIVE);
    assert_eq!(ws_with(r.addr, &format!("/ws/p?{r_only}"), "").1, 403);
    let (mut a, st) = ws_with(r.addr, "/ws/p", &ann());
    assert_eq!(st, 101);
    let both = link::sign(&KEY, "/ws/p", exp, Actions::BOTH);
    let (mut b, st) = ws_with(r.addr, &format!("/ws/p?{both}"), "");
    assert_eq!(st, 101);
    ws_send(&mut a, true, OpCode::Text, b"over the bridge");
    let f = ws_recv(&mut b).expect("a frame");
    assert_eq!(f.payload, b"over the bridge");
}

#[test]
fn sockjs_sending_and_receiving_transports() {
    let r = relay();
    let xhr = |session: &str, kind: &str, headers: &str, body: &[u8]| {
        ask(
            r.addr,
            "POST",
            &format!("/sockjs/chat/000/{session}/{kind}"),
            headers,
            body,
        )
    };
    assert_401(&xhr("a", "xhr", "", b""));
    // ann receives: her session opens.
    let open = xhr("a", "xhr", &ann(), b"");
    assert_eq!((open.status, open.text().as_str()), (200, "o\n"));
    // ...but may not send into the channel.
    assert_403(&xhr("a", "xhr_send", &ann(), b"[\"no\"]"));
    // ci may send and receive: it opens its own session and sends.
    assert_eq!(xhr("b", "xhr", &bearer(CI), b"").text(), "o\n");
    let sent = xhr("b", "xhr_send", &bearer(CI), b"[\"hi\"]");
    assert_eq!(sent.status, 204, "{}", sent.text());
    let got = xhr("a", "xhr", &ann(), b"");
    assert_eq!(got.text(), "a[\"hi\"]\n");
    // A signed link for the channel covers its transport URLs: this one
    // receives, and does not send.
    let q = link::sign(&KEY, "/sockjs/chat", unix_now() + 600, Actions::RECEIVE);
    let linked = |kind: &str, body: &[u8]| {
        ask(
            r.addr,
            "POST",
            &format!("/sockjs/chat/000/d/{kind}?{q}"),
            "",
            body,
        )
    };
    assert_eq!(linked("xhr", b"").text(), "o\n");
    assert_403(&linked("xhr_send", b"[\"no\"]"));
    // Raw and SockJS WebSockets need both.
    assert_eq!(ws_with(r.addr, "/sockjs/chat/websocket", &ann()).1, 403);
    assert_eq!(
        ws_with(r.addr, "/sockjs/chat/000/c/websocket", &ann()).1,
        403
    );
    assert_eq!(
        ws_with(r.addr, "/sockjs/chat/000/c/websocket", &bearer(CI)).1,
        101
    );
}

#[test]
fn signed_links_work_on_their_path_until_they_expire() {
    let r = relay();
    let data = pattern(30_000, 3);
    let file = TempFile::new("l.bin", &data);
    let exp = unix_now() + 2;
    let q = link::sign(&KEY, "/team/link", exp, Actions::RECEIVE);
    let sender = Curl::spawn(&[
        "-sS",
        "-T",
        file.path_str(),
        "-H",
        h(&bearer(CI)),
        &r.url("/team/link"),
    ]);
    r.wait_metric(WAITING, 1.0);
    // Not another path, not one changed byte, not another action.
    assert_401(&ask(r.addr, "GET", &format!("/team/other?{q}"), "", b""));
    let mut changed = q.clone().into_bytes();
    let last = changed.len() - 1;
    changed[last] = if changed[last] == b'A' { b'Q' } else { b'A' };
    let changed = String::from_utf8(changed).unwrap();
    assert_401(&ask(
        r.addr,
        "GET",
        &format!("/team/link?{changed}"),
        "",
        b"",
    ));
    let later = q.replace(&format!("exp={exp}"), &format!("exp={}", exp + 1));
    assert_401(&ask(r.addr, "GET", &format!("/team/link?{later}"), "", b""));
    let widened = q.replace("allow=r", "allow=sr");
    assert_401(&ask(
        r.addr,
        "GET",
        &format!("/team/link?{widened}"),
        "",
        b"",
    ));
    assert_403(&ask(r.addr, "PUT", &format!("/team/link?{q}"), "", b"x"));
    assert_eq!(r.metric(WAITING), 1.0);
    // The link itself works (and `n=1` beside it is the pipe's own).
    let (st, out, err) = curl(&["-sS", "--fail", &r.url(&format!("/team/link?n=1&{q}"))]);
    assert!(st.success(), "{err}");
    assert_eq!(out, data);
    assert!(sender.finish().0.success());

    // Until it expires: a HEAD (answered 405 once past the gate, so it
    // parks nothing) is let through until `exp`, then refused.
    let probe = format!("/team/link?{q}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let before = unix_now();
        let st = ask(r.addr, "HEAD", &probe, "", b"").status;
        if st == 401 {
            assert!(unix_now() >= exp, "refused before its expiry");
            break;
        }
        assert_eq!(st, 405);
        assert!(before < exp, "still accepted after its expiry");
        assert!(Instant::now() < deadline, "never expired");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_401(&ask(r.addr, "GET", &probe, "", b""));
    r.assert_idle();
}

#[test]
fn weir_sign_makes_links_that_keep_the_pipe_query() {
    let r = relay();
    let key = TempFile::new("link.key", weir::auth::hex::encode(&KEY).as_bytes());
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["sign", "--key-file", key.path_str(), "--expires", "1h"])
        .args(["--base", &r.url(""), "/team/two?n=2"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let url = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(url.starts_with(&r.url("/team/two?n=2&exp=")), "{url}");
    // Without its signature the same URL is refused.
    let unsigned = &url[..url.find("&sig=").unwrap()];
    let path = &unsigned[r.url("").len()..];
    assert_401(&ask(r.addr, "GET", path, "", b""));
    let data: String = (0..2000).map(|i| format!("line {i}\n")).collect();
    let file = TempFile::new("two.txt", data.as_bytes());
    let receivers: Vec<Curl> = (0..2)
        .map(|_| Curl::spawn(&["-sS", "--fail", &url]))
        .collect();
    r.wait_metric(WAITING, 1.0);
    let (st, _, err) = curl(&[
        "-sS",
        "-T",
        file.path_str(),
        "-H",
        h(&bearer(CI)),
        &r.url("/team/two?n=2"),
    ]);
    assert!(st.success(), "{err}");
    for rc in receivers {
        let (st, lines, err) = rc.finish();
        assert!(st.success(), "{err}");
        assert_eq!(lines.join("\n") + "\n", data);
    }
}

#[test]
fn metrics_listen_moves_metrics_off_the_public_listener() {
    let r = Relay::with(|c| c.metrics_listen = Some("127.0.0.1:0".parse().unwrap()));
    let m = r.metrics_addr.expect("a metrics address");
    assert_ne!(m, r.addr);
    assert_error(&get(r.addr, "/metrics"), 404);
    let scrape = get(m, "/metrics");
    assert_eq!(scrape.status, 200);
    assert!(scrape.text().contains("weir_connections "));
    assert_eq!(get(r.addr, "/healthz").status, 200);
    assert_eq!(get(m, "/healthz").status, 200);
    // The metrics address is no relay: nothing parks there.
    assert_error(&get(m, "/x"), 404);
    assert_error(&ask(m, "PUT", "/x", "", b"abc"), 404);
    assert_eq!(r.metric(WAITING), 0.0);
    // Without the flag, /metrics stays where it was.
    let open = Relay::start();
    assert_eq!(get(open.addr, "/metrics").status, 200);
}

#[test]
fn no_secret_reaches_the_log() {
    let key = TempFile::new("link.key", weir::auth::hex::encode(&KEY).as_bytes());
    let text = format!("{}signed-links {}\n", rules_text(), key.path_str());
    let rules = TempFile::new("auth", text.as_bytes());
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["--listen", &addr.to_string(), "--auth", rules.path_str()])
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + DEADLINE;
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "weir did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let q = link::sign(&KEY, "/team/log", unix_now() + 600, Actions::RECEIVE);
    assert_401(&ask(
        addr,
        "PUT",
        "/team/log",
        &bearer("wrong-token-xyz"),
        b"a",
    ));
    assert_403(&ask(addr, "PUT", "/team/log", &ann(), b"a"));
    assert_403(&ask(addr, "PUT", &format!("/team/log?{q}"), "", b"a"));
    assert_eq!(
        ask(addr, "HEAD", &format!("/team/log?{q}"), &bearer(CI), b"").status,
        405
    );
    let _ = child.kill();
    let _ = child.wait();
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    // The log said what happened…
    assert!(log.contains("401: may not send /team/log"), "{log}");
    assert!(log.contains("allowed: signed link"), "{log}");
    // …and holds no secret.
    let sig = q.rsplit("sig=").next().unwrap();
    let basic = base64_encode(format!("ann:{ANN}").as_bytes());
    for secret in ["wrong-token-xyz", CI, ANN, &basic, sig] {
        assert!(!log.contains(secret), "the log holds {secret}:\n{log}");
    }
}

/// `SIGHUP` rereads the rules file: a new rule lets through what was
/// refused, a rule taken out refuses what was let through, and a file
/// that does not parse keeps the rules in use (and says so).
#[test]
fn sighup_rereads_the_rules_and_keeps_them_when_the_file_is_bad() {
    let dir = std::env::temp_dir().join(format!("weir-auth-hup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("auth");
    let write = |text: &str| std::fs::write(&file, text).unwrap();
    write("allow anyone receive /old/\n");
    let weir = Binary::start_logging(&["--auth", file.to_str().unwrap()], "info");
    let status = |p: &str| ask(weir.addr, "GET", &format!("/status{p}"), "", b"").status;
    assert_eq!(status("/old/a"), 200);
    assert_eq!(status("/new/a"), 401);
    let hup = |n: usize| {
        let ok = Command::new("kill")
            .args(["-HUP", &weir.pid().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        // Wait for the n-th SIGHUP line, whatever it says.
        let deadline = Instant::now() + DEADLINE;
        while weir.log().matches("SIGHUP: ").count() < n {
            assert!(Instant::now() < deadline, "no SIGHUP line: {}", weir.log());
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    write("allow anyone receive /new/\n");
    hup(1);
    weir.wait_log_line(&["SIGHUP: reloaded the access rules from", "auth"]);
    assert_eq!(status("/new/a"), 200);
    assert_eq!(status("/old/a"), 401);
    write("allow anyone recieve /old/\n");
    hup(2);
    weir.wait_log_line(&["SIGHUP: ", "keeping the access rules in use"]);
    assert_eq!(status("/new/a"), 200);
    assert_eq!(status("/old/a"), 401);
    drop(weir);
    let _ = std::fs::remove_dir_all(&dir);
}
