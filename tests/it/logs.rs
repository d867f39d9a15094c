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
