//! The browser page's server side: `GET /status/<path>` (what the relay
//! knows of a pipe), content negotiation on `/`, the QR code, and
//! `/noscript`. The page itself runs in `tests/it/browser.rs`.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::support::{http::*, net::*, pipe::*, relay::*, DEADLINE};

/// `GET /status/<path>` as text (a JSON object on one line).
fn status(relay: &Relay, path: &str) -> String {
    let r = get(relay.addr, &format!("/status{path}"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert_eq!(r.header("Cache-Control"), Some("no-store"));
    r.text()
}

/// Poll the status of `path` until it contains `needle`, within [`DEADLINE`].
fn wait_status(relay: &Relay, path: &str, needle: &str) -> String {
    let start = Instant::now();
    loop {
        let s = status(relay, path);
        if s.contains(needle) {
            return s;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "status of {path} never had {needle}: {s}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn status_follows_a_pipe_from_waiting_to_gone() {
    let relay = Relay::start();
    assert_eq!(
        status(&relay, "/st-a"),
        "{\"path\":\"/st-a\",\"state\":\"none\"}\n"
    );

    let mut sender = sender(
        relay.addr,
        "/st-a?n=2",
        "Content-Length: 10\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Disposition: attachment; filename=\"n.txt\"\r\n",
    );
    sender.wait_for("Waiting for 2 receiver(s)");
    assert_eq!(
        status(&relay, "/st-a"),
        "{\"path\":\"/st-a\",\"state\":\"waiting\",\"n\":2,\"receivers\":0,\"sender\":true,\
         \"length\":10,\"read\":0,\"delivered\":0,\"type\":\"text/plain; charset=utf-8\",\
         \"disposition\":\"attachment; filename=\\\"n.txt\\\"\",\"form\":false}\n"
    );
    // Asking is not receiving: the pipe still waits for two.
    let mut r1 = start_receiver(relay.addr, "/st-a?n=2");
    wait_status(&relay, "/st-a", "\"receivers\":1,");
    let mut r2 = start_receiver(relay.addr, "/st-a?n=2");
    sender.sock.write_all(b"0123").unwrap();
    let s = wait_status(&relay, "/st-a", "\"delivered\":4,");
    assert!(s.contains("\"state\":\"streaming\""), "{s}");
    assert!(
        s.contains("\"receivers\":2,\"sender\":true,\"length\":10,\"read\":4,"),
        "{s}"
    );
    sender.sock.write_all(b"456789").unwrap();
    for r in [&mut r1, &mut r2] {
        let resp = parse_response(&read_to_end(r));
        assert_eq!(resp.body, b"0123456789");
    }
    assert!(sender.finish().text().contains("Sent successfully"));
    wait_status(&relay, "/st-a", "\"state\":\"none\"");
    relay.assert_idle();
}

#[test]
fn status_of_a_receiver_waiting_and_of_reserved_paths() {
    let relay = Relay::start();
    let r = start_receiver(relay.addr, "/st-b/deep");
    let s = wait_status(&relay, "/st-b/deep", "\"receivers\":1,");
    assert!(
        s.contains(
            "\"state\":\"waiting\",\"n\":1,\"receivers\":1,\"sender\":false,\"length\":null"
        ),
        "{s}"
    );
    // `/status` and below are never pipes.
    let mut put = relay.connect();
    put.write_all(
        b"PUT /status/x HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_error(&parse_response(&read_to_end(&mut put)), 405);
    let r404 = get(relay.addr, "/status");
    assert_error(&r404, 404);
    drop(r);
    wait_status(&relay, "/st-b/deep", "\"state\":\"none\"");
    relay.assert_idle();
}

/// `GET path` with extra header lines.
fn get_with(relay: &Relay, path: &str, headers: &str) -> Response {
    exchange(
        relay.addr,
        format!("GET {path} HTTP/1.1\r\nHost: t\r\n{headers}Connection: close\r\n\r\n").as_bytes(),
    )
}

/// The nonce of a page's policy, checked against its `<script>`/`<style>`.
fn nonce_of(r: &Response) -> String {
    let csp = r.header("Content-Security-Policy").expect("a policy");
    let n = csp
        .split("'nonce-")
        .nth(1)
        .and_then(|s| s.split('\'').next())
        .expect("a nonce in the policy")
        .to_string();
    assert!(n.len() >= 32, "{n}");
    assert!(!csp.contains("unsafe"), "{csp}");
    assert!(csp.starts_with("default-src 'none';"), "{csp}");
    n
}

#[test]
fn root_is_the_page_for_a_browser_and_the_help_for_curl() {
    let relay = Relay::start();
    // curl sends `Accept: */*`: the text help, as before the page.
    let (status, out, err) = crate::support::curl::curl(&["-s", &relay.url("/")]);
    assert!(status.success(), "{err}");
    let help = String::from_utf8(out).unwrap();
    assert!(help.starts_with("weir "), "{help}");
    assert!(help.contains("curl -T myfile"), "{help}");
    assert!(!help.contains("<html"), "{help}");

    let accept = "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n";
    let a = get_with(&relay, "/", accept);
    assert_eq!(a.status, 200);
    assert_eq!(a.header("Content-Type"), Some("text/html; charset=utf-8"));
    assert_eq!(a.header("Vary"), Some("Accept"));
    assert_eq!(a.header("X-Content-Type-Options"), Some("nosniff"));
    let body = a.text();
    let n = nonce_of(&a);
    assert!(
        body.contains(&format!("<script nonce=\"{n}\">")),
        "script nonce"
    );
    assert!(
        body.contains(&format!("<style nonce=\"{n}\">")),
        "style nonce"
    );
    assert!(body.contains("<meta name=\"viewport\""));
    assert!(
        !body.contains(" style=\""),
        "an inline style attribute would be blocked"
    );
    assert!(!body.contains("src=\"http"), "nothing from elsewhere");
    // A fresh nonce each time.
    let b = get_with(&relay, "/", accept);
    assert_ne!(nonce_of(&b), n);
    relay.assert_idle();
}

/// The no-JavaScript form: one form, a file input before a textarea, to a
/// random path; a text sent through it reaches a curl receiver.
#[test]
fn noscript_form_sends_a_text_to_a_random_path() {
    let relay = Relay::start();
    let r = get_with(&relay, "/noscript", "");
    assert_eq!(r.status, 200);
    let page = r.text();
    nonce_of(&r);
    assert!(page.contains("<meta name=\"viewport\""));
    assert!(page.contains(env!("CARGO_PKG_VERSION")));
    assert!(page.contains("<a href=\"/\">"));
    let action = page
        .split("<form method=\"post\" action=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a post form")
        .to_string();
    assert_eq!(action.len(), 17, "a 16-character random path: {action}");
    let again = get_with(&relay, "/noscript", "").text();
    assert!(!again.contains(&action), "each page proposes another path");
    // ?path= keeps safe characters only.
    let asked = get_with(&relay, "/noscript?path=my/p%22<x>", "").text();
    assert!(asked.contains("action=\"/my/p22x\""), "{asked}");

    // What the browser sends with no file chosen and a text typed.
    let body = "--X\r\nContent-Disposition: form-data; name=\"file\"; filename=\"\"\r\n\
                Content-Type: application/octet-stream\r\n\r\n\r\n\
                --X\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\nhello from a form\r\n--X--\r\n";
    let receiver = crate::support::curl::Curl::spawn(&["-s", "-i", &relay.url(&action)]);
    wait_status(&relay, &action, "\"receivers\":1,");
    let mut s = relay.connect();
    write!(
        s,
        "POST {action} HTTP/1.1\r\nHost: t\r\nContent-Type: multipart/form-data; boundary=X\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let sent = parse_response(&read_to_end(&mut s));
    assert!(sent.text().contains("Sent successfully"), "{}", sent.text());
    let (status, lines, err) = receiver.finish();
    assert!(status.success(), "{err}");
    let out = lines.join("\n");
    let lower = out.to_ascii_lowercase();
    assert!(
        lower.contains("content-type: text/plain; charset=utf-8"),
        "{out}"
    );
    assert!(out.ends_with("\n\nhello from a form"), "{out:?}");
    relay.assert_idle();
}

/// A text sent as `text/*` reaches a browser as text, `nosniff` kept.
#[test]
fn text_types_are_forwarded_as_sent() {
    let relay = Relay::start();
    let receiver = crate::support::curl::Curl::spawn(&["-s", "-i", &relay.url("/tx")]);
    wait_status(&relay, "/tx", "\"receivers\":1,");
    let (st, _, err) = crate::support::curl::curl(&[
        "-s",
        "-T",
        "-",
        "-H",
        "Content-Type: text/markdown; charset=utf-8",
        &relay.url("/tx"),
    ]);
    assert!(st.success(), "{err}");
    let (_, lines, _) = receiver.finish();
    let out = lines.join("\n");
    let lower = out.to_ascii_lowercase();
    assert!(
        lower.contains("content-type: text/markdown; charset=utf-8"),
        "{out}"
    );
    assert!(lower.contains("x-content-type-options: nosniff"), "{out}");
    relay.assert_idle();
}

/// Set to `1` to make a missing `zbarimg` a failure instead of a skip.
const ZBAR_VAR: &str = "WEIR_ZBAR_TESTS";

/// The QR codes `/qr` draws, read back by `zbarimg` (Debian's zbar-tools)
/// for every version from 1 to 10.
#[test]
fn qr_codes_read_back_with_zbarimg() {
    if !std::path::Path::new("/usr/bin/zbarimg").exists() {
        let msg = "zbarimg (Debian package zbar-tools) is missing";
        if std::env::var(ZBAR_VAR).as_deref() == Ok("1") {
            panic!("{msg} ({ZBAR_VAR}=1 requires it)");
        }
        let _ = writeln!(
            std::io::stderr(),
            "NOTICE: skipping qr_codes_read_back_with_zbarimg: {msg} (set {ZBAR_VAR}=1 to make this a failure)"
        );
        return;
    }
    let relay = Relay::start();
    let dir = crate::support::fs::TempFile::new("qr-dir-marker", b"");
    let dir = dir.path.parent().unwrap().to_path_buf();
    let mut versions = std::collections::BTreeSet::new();
    for len in [
        1usize, 14, 20, 40, 60, 84, 100, 120, 140, 160, 180, 200, 213,
    ] {
        let text: String = "http://127.0.0.1:8080/#receive="
            .chars()
            .chain((0..).map(|i| b"aZ09-_.~/%& "[i % 12] as char))
            .take(len)
            .collect();
        let enc: String = text.bytes().map(|b| format!("%{b:02X}")).collect();
        let r = get(relay.addr, &format!("/qr?t={enc}"));
        assert_eq!(r.status, 200);
        assert_eq!(r.header("Content-Type"), Some("image/svg+xml"));
        let svg = r.text();
        let (side, grid) = svg_modules(&svg);
        versions.insert((side - 8 - 17) / 4);
        let file = dir.join(format!("qr-{len}.pbm"));
        std::fs::write(&file, pbm(side, &grid, 4)).unwrap();
        let out = std::process::Command::new("/usr/bin/zbarimg")
            .args(["-q", "--raw"])
            .arg(&file)
            .output()
            .expect("run zbarimg");
        let read = String::from_utf8_lossy(&out.stdout);
        assert_eq!(read.trim_end_matches('\n'), text, "length {len}");
    }
    assert_eq!(
        versions.into_iter().collect::<Vec<_>>(),
        (1..=10).collect::<Vec<_>>()
    );
    let too_long = get(relay.addr, &format!("/qr?t={}", "a".repeat(214)));
    assert_error(&too_long, 400);
    let _ = std::fs::remove_dir_all(&dir);
    relay.assert_idle();
}

/// The modules of the SVG `/qr` draws: rows of `M<x> <y>h<w>` runs.
fn svg_modules(svg: &str) -> (usize, Vec<Vec<bool>>) {
    let side: usize = svg
        .split("viewBox=\"0 0 ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .expect("a viewBox");
    let mut grid = vec![vec![false; side]; side];
    let d = svg
        .split(" d=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap();
    for run in d.split('M').filter(|s| !s.is_empty()) {
        let (xy, rest) = run.split_once('h').unwrap();
        let (x, y) = xy.split_once(' ').unwrap();
        let w = rest.split('v').next().unwrap();
        let (x, y, w): (usize, usize, usize) =
            (x.parse().unwrap(), y.parse().unwrap(), w.parse().unwrap());
        for cell in &mut grid[y][x..x + w] {
            *cell = true;
        }
    }
    (side, grid)
}

/// A plain PBM image, `scale` pixels per module.
fn pbm(side: usize, grid: &[Vec<bool>], scale: usize) -> Vec<u8> {
    let mut out = format!("P1\n{} {}\n", side * scale, side * scale).into_bytes();
    for row in grid {
        let line: Vec<u8> = row
            .iter()
            .flat_map(|&d| std::iter::repeat(if d { b'1' } else { b'0' }).take(scale))
            .collect();
        for _ in 0..scale {
            out.extend_from_slice(&line);
            out.push(b'\n');
        }
    }
    out
}
