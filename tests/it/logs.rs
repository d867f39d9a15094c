//! The access log of the real binary: one `info` line per finished
//! request, with the client (the forwarded one only with `--trust-proxy`),
//! the method as sent, the path without its query, the status, the bytes
//! and the time. Read from the binary's stderr as it runs.

use crate::support::curl::curl;
use crate::support::fs::TempFile;
use crate::support::payload::pattern;
use crate::support::relay::Binary;

fn url(b: &Binary, path: &str) -> String {
    format!("http://{}{}", b.addr, path)
}

#[test]
fn a_pipe_transfer_logs_one_line_per_party() {
    let relay = Binary::start_logging(&[], "info");
    let data = pattern(300_000, 7);
    let file = TempFile::new("logged", &data);
    let target = url(&relay, "/logged-pipe?n=1&token=hush");
    let receiver = {
        let target = target.clone();
        std::thread::spawn(move || curl(&["-sS", &target]))
    };
    let (status, _, err) = curl(&["-sS", "-T", file.path_str(), &target]);
    assert!(status.success(), "{err}");
    let (status, got, err) = receiver.join().unwrap();
    assert!(status.success() && got == data, "{err}");
    let sender = relay.wait_log_line(&["PUT /logged-pipe 200"]);
    let receiver = relay.wait_log_line(&["GET /logged-pipe 200"]);
    for line in [&sender, &receiver] {
        assert!(line.contains(" INFO  weir::access] ["), "{line}");
        assert!(line.contains("] 127.0.0.1 "), "{line}");
        assert!(line.trim_end().ends_with('s'), "a duration ends it: {line}");
    }
    assert!(sender.contains(" in=300000 "), "{sender}");
    let out: u64 = receiver
        .split(" out=")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!((300_000..301_000).contains(&out), "{receiver}");
    // The query may hold a secret; the transfer is told once per party.
    let log = relay.log();
    assert!(!log.contains("hush"), "{log}");
    assert_eq!(log.matches("/logged-pipe").count(), 2, "{log}");
}

#[test]
fn misuse_is_info_with_its_status_and_method_as_sent() {
    let relay = Binary::start_logging(&[], "info");
    let (_, _, _) = curl(&["-sS", &url(&relay, "/s/never-made")]);
    let line = relay.wait_log_line(&["GET /s/never-made 404"]);
    assert!(line.contains(" INFO  weir::access]"), "{line}");
    let (_, _, _) = curl(&["-sS", "-X", "brew", &url(&relay, "/pot")]);
    let line = relay.wait_log_line(&[" brew /pot 405"]);
    assert!(line.contains(" INFO  "), "{line}");
}

#[test]
fn the_forwarded_client_is_logged_only_behind_a_trusted_proxy() {
    let forwarded = "X-Forwarded-For: 198.51.100.4, 203.0.113.9";
    let trusting = Binary::start_logging(&["--trust-proxy"], "info");
    let (status, _, err) = curl(&["-sS", "-H", forwarded, &url(&trusting, "/healthz")]);
    assert!(status.success(), "{err}");
    let line = trusting.wait_log_line(&["GET /healthz 200"]);
    assert!(line.contains("] 203.0.113.9 via 127.0.0.1 GET"), "{line}");
    let (status, _, err) = curl(&[
        "-sS",
        "-H",
        "Forwarded: for=\"[2001:db8::7]:5555\";proto=https",
        &url(&trusting, "/version"),
    ]);
    assert!(status.success(), "{err}");
    let line = trusting.wait_log_line(&["GET /version 200"]);
    assert!(line.contains("] 2001:db8::7 via 127.0.0.1 GET"), "{line}");

    let plain = Binary::start_logging(&[], "info");
    let (status, _, err) = curl(&["-sS", "-H", forwarded, &url(&plain, "/healthz")]);
    assert!(status.success(), "{err}");
    let line = plain.wait_log_line(&["GET /healthz 200"]);
    assert!(line.contains("] 127.0.0.1 GET"), "{line}");
    assert!(!plain.log().contains("203.0.113.9"), "{}", plain.log());
}

/// A WebSocket pipe's access lines count the frame bytes each side sent
/// (`in=`), not only what it was sent.
#[test]
fn a_websocket_pipe_logs_the_bytes_each_side_sent() {
    use crate::support::ws::{ws_answer_close, ws_close_of, ws_connect, ws_recv, ws_send};
    use weir::websocket::codec::OpCode;
    let relay = Binary::start_logging(&[], "info");
    let mut a = ws_connect(relay.addr, "/ws-logged");
    let mut b = ws_connect(relay.addr, "/ws-logged");
    let data = pattern(1000, 3);
    ws_send(&mut a, true, OpCode::Binary, &data);
    let got = ws_recv(&mut b).expect("a frame");
    assert_eq!(got.payload, data);
    ws_send(&mut a, true, OpCode::Close, &1000u16.to_be_bytes());
    let close = ws_recv(&mut b).expect("the close");
    assert_eq!(ws_close_of(&close).0, 1000);
    ws_answer_close(&mut b, &1000u16.to_be_bytes());
    let field = |line: &str, name: &str| -> u64 {
        line.split(&format!(" {name}="))
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {name}= in {line}"))
    };
    // Both lines, waited for (each is written when its side closes).
    let deadline = std::time::Instant::now() + crate::support::DEADLINE;
    let log = loop {
        let log = relay.log();
        if log.matches("GET /ws-logged 101").count() >= 2 {
            break log;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "two access lines: {log}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let both: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("GET /ws-logged 101"))
        .collect();
    assert_eq!(both.len(), 2, "{log}");
    // a sent one 1,000-byte frame (8 bytes of masked header) and a close
    // (2 + 4 + 2); b sent its answering close.
    let ins: Vec<u64> = both.iter().map(|l| field(l, "in")).collect();
    assert!(ins.contains(&1016) && ins.contains(&8), "{both:?}");
}
