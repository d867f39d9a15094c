//! Signal swarms and event topics over Server-Sent Events (spec §3, §4).

use std::io::Write;
use std::time::Duration;

use crate::support::{http::*, net::*, relay::*, sse::*};
use weir::json::{self, Value};

fn obj(data: &str) -> Value {
    json::parse(data.as_bytes(), json::Limits { max_depth: 64 }).expect("event data is JSON")
}

fn field(v: &Value, k: &str) -> String {
    v.get(k)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no {k} in {v:?}"))
        .to_string()
}

fn post(addr: std::net::SocketAddr, path: &str, ctype: &str, body: &str) -> Response {
    exchange(
        addr,
        format!(
            "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
}

struct Peer {
    sse: SseClient,
    id: String,
    cid: String,
    token: String,
}

fn connect_peer(relay: &Relay, path: &str, status: u16) -> Peer {
    let mut sse = SseClient::open(relay.addr, path);
    assert_eq!(sse.status, status);
    assert_eq!(
        sse.header("content-type"),
        Some("text/event-stream; charset=utf-8")
    );
    assert_eq!(sse.header("x-accel-buffering"), Some("no"));
    assert_eq!(sse.header("cache-control"), Some("no-store"));
    assert_eq!(sse.header("access-control-allow-origin"), Some("*"));
    let ev = sse.next_event().expect("connect event");
    assert_eq!(ev.event.as_deref(), Some("connect"));
    let v = obj(&ev.data);
    let (id, cid, token) = (field(&v, "id"), field(&v, "cid"), field(&v, "token"));
    for s in [&id, &cid, &token] {
        assert_eq!(s.len(), 32);
        assert!(
            s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
            "{s}"
        );
    }
    Peer {
        sse,
        id,
        cid,
        token,
    }
}

#[test]
fn koa_signal_flow() {
    let relay = Relay::start();
    let mut init = connect_peer(&relay, "/signal", 200);
    let id = init.id.clone();
    let mut peer = connect_peer(&relay, &format!("/signal/{id}"), 200);
    assert_eq!(peer.id, id);
    assert_ne!(peer.cid, init.cid);
    // The initiator learns of the join.
    let join = init.sse.next_event().unwrap();
    assert_eq!(join.event.as_deref(), Some("join"));
    assert_eq!(
        join.data,
        format!("{{\"id\":\"{id}\",\"cid\":\"{}\"}}", peer.cid)
    );

    // A broadcast reaches every peer, the sender included.
    let body = format!(
        "{{\"token\":\"{}\",\"data\":{{\"boom\":\"boom\"}}}}",
        peer.token
    );
    let r = post(
        relay.addr,
        &format!("/signal/{id}"),
        "application/json",
        &body,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    for p in [&mut init, &mut peer] {
        let ev = p.sse.next_event().unwrap();
        assert_eq!(ev.event.as_deref(), Some("signal"));
        assert_eq!(ev.data, "{\"boom\":\"boom\"}");
    }

    // A direct message (form body, bracket keys nest) reaches only its cid.
    let mut third = connect_peer(&relay, &format!("/signal/{id}"), 200);
    assert_eq!(
        init.sse.next_event().unwrap().event.as_deref(),
        Some("join")
    );
    let form = format!(
        "token={}&cid={}&data[greeting]=hello+there&data[n]=1",
        init.token, peer.cid
    );
    let r = post(
        relay.addr,
        &format!("/signal/{id}"),
        "application/x-www-form-urlencoded",
        &form,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let ev = peer.sse.next_event().unwrap();
    assert_eq!(ev.data, "{\"greeting\":\"hello there\",\"n\":\"1\"}");
    // The others did not get it: their next event is a later broadcast.
    let marker = format!("{{\"token\":\"{}\",\"data\":\"marker\"}}", third.token);
    assert_eq!(
        post(
            relay.addr,
            &format!("/signal/{id}"),
            "application/json",
            &marker
        )
        .status,
        200
    );
    assert_eq!(third.sse.next_event().unwrap().data, "\"marker\"");
    assert_eq!(init.sse.next_event().unwrap().data, "\"marker\"");
    assert_eq!(peer.sse.next_event().unwrap().data, "\"marker\"");

    // A peer leaves: the initiator is told.
    let third_cid = third.cid.clone();
    drop(third);
    let leave = init.sse.next_event().unwrap();
    assert_eq!(leave.event.as_deref(), Some("leave"));
    assert_eq!(
        leave.data,
        format!("{{\"id\":\"{id}\",\"cid\":\"{third_cid}\"}}")
    );

    // The initiator leaves: every stream ends and the swarm is gone.
    drop(init);
    assert_eq!(peer.sse.next_event(), None, "the peer's stream must end");
    relay.wait_metric("weir_swarms", 0.0);
    let gone = SseClient::open(relay.addr, &format!("/signal/{id}"));
    assert_eq!(gone.status, 404);
    drop(peer);
    relay.assert_idle();
}

#[test]
fn signal_error_statuses() {
    let relay = Relay::with(|c| c.signal_body_limit = 200);
    let html = SseClient::open_with(relay.addr, "/signal", "Accept: text/html\r\n");
    assert_eq!(html.status, 406);
    assert_eq!(
        SseClient::open(relay.addr, "/signal/00000000000000000000000000000000").status,
        404
    );
    let post_unknown = post(relay.addr, "/signal/nope", "application/json", "{}");
    assert_eq!(post_unknown.status, 404);

    let init = connect_peer(&relay, "/signal", 200);
    let path = format!("/signal/{}", init.id);
    let tok = &init.token;
    let cases: Vec<(&str, String, u16)> = vec![
        ("application/json", "x".repeat(300), 413),
        (
            "text/plain",
            format!("{{\"token\":\"{tok}\",\"data\":1}}"),
            415,
        ),
        ("application/json", "{\"token\":".to_string(), 400),
        ("application/json", format!("{{\"token\":\"{tok}\"}}"), 400),
        ("application/json", "{\"data\":1}".to_string(), 401),
        (
            "application/json",
            "{\"token\":\"0123\",\"data\":1}".to_string(),
            401,
        ),
        (
            "application/json",
            format!("{{\"token\":\"{tok}\",\"data\":1,\"cid\":\"nobody\"}}"),
            404,
        ),
        (
            "application/json; charset=utf-8",
            format!("{{\"token\":\"{tok}\",\"data\":1}}"),
            200,
        ),
    ];
    for (ctype, body, want) in cases {
        let r = post(relay.addr, &path, ctype, &body);
        assert_eq!(r.status, want, "{ctype} {body}: {}", r.text());
        if want != 200 {
            assert!(r.text().starts_with("[ERROR] "), "{}", r.text());
            assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
        }
    }
    drop(init);
    relay.assert_idle();
}

#[test]
fn topic_framing_edge_cases() {
    let relay = Relay::start();
    let mut sub = SseClient::open(relay.addr, "/events/news");
    assert_eq!(sub.status, 200);
    let welcome = sub.next_any().unwrap();
    assert!(welcome.comment.is_some(), "a welcome comment comes first");
    relay.wait_metric("weir_event_streams", 1.0);
    let cases: &[(&str, &str)] = &[
        ("one line", "one line"),
        ("multi\nline\ndata", "multi\nline\ndata"),
        ("lone\rCR", "lone\nCR"),
        ("crlf\r\nline", "crlf\nline"),
        ("", ""),
        ("trailing\n", "trailing\n"),
        ("\n\nevent: evil\ndata: x", "\n\nevent: evil\ndata: x"),
        ("non-ASCII: é 日本 🚀", "non-ASCII: é 日本 🚀"),
    ];
    for (body, want) in cases {
        let r = post(relay.addr, "/events/news", "text/plain", body);
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), "1\n");
        let ev = sub.next_event().unwrap();
        assert_eq!(ev.data, *want, "for {body:?}");
        assert_eq!(ev.event, None);
    }
    let r = post(
        relay.addr,
        "/events/news?event=update&id=42",
        "text/plain",
        "x",
    );
    assert_eq!(r.status, 200);
    let ev = sub.next_event().unwrap();
    assert_eq!(
        (ev.event.as_deref(), ev.id.as_deref(), ev.data.as_str()),
        (Some("update"), Some("42"), "x")
    );
    for bad in ["?event=a%0Db", "?id=a%0Ab", "?id=a%00b", "?event=%FF"] {
        let r = post(relay.addr, &format!("/events/news{bad}"), "text/plain", "x");
        assert_eq!(r.status, 400, "{bad}");
    }
    // Nobody on a topic: published to zero subscribers.
    assert_eq!(
        post(relay.addr, "/events/empty", "text/plain", "x").text(),
        "0\n"
    );
    drop(sub);
    relay.assert_idle();
}

#[test]
fn last_event_id_is_echoed_in_the_welcome() {
    let relay = Relay::start();
    let mut sub = SseClient::open_with(
        relay.addr,
        "/events/t",
        "Accept: text/event-stream\r\nLast-Event-ID: 17\r\n",
    );
    let welcome = sub.next_any().unwrap();
    let c = welcome.comment.unwrap();
    assert!(c.contains("last-event-id 17"), "{c}");
    drop(sub);
    relay.assert_idle();
}

#[test]
fn heartbeat_with_a_short_interval() {
    let relay = Relay::with(|c| c.heartbeat = Duration::from_millis(200));
    let mut sub = SseClient::open(relay.addr, "/events/beat");
    sub.next_any().unwrap(); // welcome
    let t0 = std::time::Instant::now();
    let beat = sub.next_any().unwrap();
    assert_eq!(beat.comment.as_deref(), Some("heartbeat"));
    assert!(t0.elapsed() >= Duration::from_millis(150));
    let beat = sub.next_any().unwrap();
    assert_eq!(beat.comment.as_deref(), Some("heartbeat"));
    drop(sub);
    relay.assert_idle();
}

#[test]
fn http10_subscriber_gets_a_close_delimited_stream() {
    let relay = Relay::start();
    let mut s = connect(relay.addr);
    write!(
        s,
        "GET /events/old HTTP/1.0\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    let head = String::from_utf8(read_until(&mut s, b"\r\n\r\n")).unwrap();
    assert!(head.starts_with("HTTP/1.0 200 OK\r\n"), "{head}");
    assert!(!head.contains("chunked"));
    read_until(&mut s, b"\n\n"); // welcome
    relay.wait_metric("weir_event_streams", 1.0);
    assert_eq!(
        post(relay.addr, "/events/old", "text/plain", "hi").text(),
        "1\n"
    );
    let got = read_until(&mut s, b"\n\n");
    assert_eq!(got, b"data: hi\n\n");
    drop(s);
    relay.assert_idle();
}

#[test]
fn a_slow_consumer_is_dropped_while_a_fast_one_keeps_receiving() {
    let relay = Relay::with(|c| {
        c.stream_queue_bytes = 64 * 1024;
        c.event_body_limit = 64 * 1024;
    });
    let slow = SseClient::open(relay.addr, "/events/firehose");
    let mut fast = SseClient::open(relay.addr, "/events/firehose");
    fast.next_any().unwrap();
    relay.wait_metric("weir_event_streams", 2.0);
    let payload = "x".repeat(32 * 1024);
    let mut sent = 0;
    // The slow one never reads: once the kernel buffers are full its queue
    // passes the bound. Bounded: at most 64 MiB published.
    while relay.metric("weir_event_streams_total{event=\"dropped_slow\"}") == 0.0 {
        assert!(sent < 2048, "the slow consumer was never dropped");
        let r = post(relay.addr, "/events/firehose", "text/plain", &payload);
        assert_eq!(r.status, 200);
        sent += 1;
        let ev = fast.next_event().unwrap();
        assert_eq!(ev.data.len(), payload.len());
    }
    // The fast one goes on receiving; the topic now has one subscriber.
    let r = post(relay.addr, "/events/firehose", "text/plain", "after");
    assert_eq!(r.text(), "1\n");
    assert_eq!(fast.next_event().unwrap().data, "after");
    drop(slow);
    drop(fast);
    relay.assert_idle();
}

#[test]
fn a_thousand_subscribers_all_receive_an_event() {
    let relay = Relay::start();
    let mut subs: Vec<SseClient> = (0..1000)
        .map(|_| SseClient::open(relay.addr, "/events/crowd"))
        .collect();
    relay.wait_metric("weir_event_streams", 1000.0);
    let r = post(
        relay.addr,
        "/events/crowd?event=hello",
        "text/plain",
        "to everyone",
    );
    assert_eq!(r.text(), "1000\n");
    for s in &mut subs {
        let ev = s.next_event().unwrap();
        assert_eq!(
            (ev.event.as_deref(), ev.data.as_str()),
            (Some("hello"), "to everyone")
        );
    }
    drop(subs);
    relay.assert_idle();
}

/// Bodies being read whole share one budget (`--message-budget`): when
/// others hold it, a post gets `413` saying so, and the budget comes back
/// when they finish or leave.
#[test]
fn posts_share_the_message_budget() {
    let relay = Relay::with(|c| {
        c.message_budget = 64 * 1024;
        c.event_body_limit = 60 * 1024;
    });
    // A post that sends 50 KB of its 60 KB and waits holds 50 KB.
    let mut holder = connect(relay.addr);
    write!(
        holder,
        "POST /events/b HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        60 * 1024
    )
    .unwrap();
    holder.write_all(&vec![b'a'; 50 * 1024]).unwrap();
    // Another 20 KB post does not fit beside it.
    let deadline = std::time::Instant::now() + crate::support::DEADLINE;
    let refused = loop {
        let r = exchange(
            relay.addr,
            format!(
                "POST /events/b HTTP/1.1\r\nHost: x\r\nContent-Length: {n}\r\nConnection: close\r\n\r\n{}",
                "b".repeat(20 * 1024),
                n = 20 * 1024
            )
            .as_bytes(),
        );
        // The holder's bytes may still be on their way to the relay.
        if r.status == 413 || std::time::Instant::now() > deadline {
            break r;
        }
    };
    assert_error(&refused, 413);
    assert!(
        refused
            .text()
            .contains("as many message bytes as it allows"),
        "{}",
        refused.text()
    );
    // The holder leaves: its share comes back.
    drop(holder);
    let deadline = std::time::Instant::now() + crate::support::DEADLINE;
    loop {
        let r = exchange(
            relay.addr,
            format!(
                "POST /events/b HTTP/1.1\r\nHost: x\r\nContent-Length: {n}\r\nConnection: close\r\n\r\n{}",
                "c".repeat(20 * 1024),
                n = 20 * 1024
            )
            .as_bytes(),
        );
        if r.status == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the budget never came back"
        );
    }
}
