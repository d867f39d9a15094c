//! Browser tests: a page in headless Chromium talks to a relay running in
//! this process.
//!
//! Each test starts [`Relay::start`] and runs one Node script from
//! `tests/browser/` (`node <script> <relay URL>`, cwd `tests/browser`). The
//! script serves its page from its own HTTP server on 127.0.0.1 (another
//! origin than the relay's, so CORS is exercised), drives Debian's
//! `/usr/bin/chromium` through `playwright-core`, prints one JSON line and
//! exits 0 only if every expectation held. The script bounds itself
//! (25 s, `tests/browser/lib/harness.mjs`); this side bounds it again.
//!
//! Prerequisites: `/usr/bin/chromium`, `node`, and `tests/browser/node_modules`
//! (`scripts/browser-setup.sh` installs what is missing). Without them a
//! test prints a notice to stderr and passes, so `cargo test` works on a
//! machine with only Rust; with `WEIR_BROWSER_TESTS=1` (CI) it fails.
//!
//! The page tests (`page-*.mjs`) load weir's own page from the relay
//! instead, and use curl as the other party (`lib/weirpage.mjs`).
//!
//! To add a browser test: a page in `tests/browser/pages/`, a script that
//! calls `runBrowserTest` with it, and a `#[test]` here calling
//! [`run_script`] with the script and the npm files it needs.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::support::relay::Relay;

/// Debian's chromium (package `chromium`).
const CHROMIUM: &str = "/usr/bin/chromium";

/// Set to `1` to make missing prerequisites a failure instead of a skip.
const REQUIRE_VAR: &str = "WEIR_BROWSER_TESTS";

/// The last resort: the script's own deadline is 25 s.
const SCRIPT_DEADLINE: Duration = Duration::from_secs(40);

/// After SIGTERM (playwright then closes chromium), before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(5);

/// One chromium at a time: the machines have 2 cores.
static ONE_BROWSER: Mutex<()> = Mutex::new(());

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// Whether the browser test can run. When something is missing: panics if
/// `WEIR_BROWSER_TESTS=1`, otherwise prints a notice and returns `false`.
/// `npm_files` are paths below `tests/browser/node_modules` the script needs.
fn prerequisites(script: &str, npm_files: &[&str]) -> bool {
    let mut missing = Vec::new();
    if !Path::new(CHROMIUM).exists() {
        missing.push(format!("{CHROMIUM} (Debian package `chromium`)"));
    }
    let node_ok = Command::new("node")
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success());
    if !node_ok {
        missing.push("`node` (Node.js 20 or later) on PATH".to_string());
    }
    let modules = browser_dir().join("node_modules");
    for f in std::iter::once("playwright-core/package.json").chain(npm_files.iter().copied()) {
        if !modules.join(f).exists() {
            missing.push(format!(
                "tests/browser/node_modules/{f} (`npm ci --prefix tests/browser`)"
            ));
        }
    }
    if missing.is_empty() {
        return true;
    }
    let msg = format!(
        "browser test {script} cannot run: missing {}. Install them with scripts/browser-setup.sh",
        missing.join("; ")
    );
    if std::env::var(REQUIRE_VAR).as_deref() == Ok("1") {
        panic!("{msg} ({REQUIRE_VAR}=1 requires the browser tests)");
    }
    notice(&format!(
        "NOTICE: skipping {msg} (set {REQUIRE_VAR}=1 to make this a failure)"
    ));
    false
}

/// A line on the real stderr: `eprintln!` is captured by the test harness
/// and shown only on failure, while a skip must be seen.
fn notice(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Read a child's pipe to the end on a thread.
fn drain(mut r: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = r.read_to_end(&mut v);
        String::from_utf8_lossy(&v).into_owned()
    })
}

/// Wait for `child` until `deadline`; `None` if it is still running then.
fn wait_until(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    loop {
        if let Some(status) = child.try_wait().expect("wait for node") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Stop the script we started, by its PID: SIGTERM first, so that
/// playwright closes chromium, then SIGKILL.
fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    if wait_until(child, Instant::now() + TERM_GRACE).is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Run `node <script> <relay URL>` in `tests/browser` against a fresh relay
/// and assert that it succeeded and left the relay idle.
fn run_script(script: &str, npm_files: &[&str]) {
    if !prerequisites(script, npm_files) {
        return;
    }
    let one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let relay = Relay::start();
    let url = relay.url("");
    let started = Instant::now();
    let mut child = Command::new("node")
        .arg(script)
        .arg(&url)
        .current_dir(browser_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn node");
    let out = drain(child.stdout.take().unwrap());
    let err = drain(child.stderr.take().unwrap());
    let status = wait_until(&mut child, started + SCRIPT_DEADLINE);
    if status.is_none() {
        stop(&mut child);
    }
    drop(one);
    let elapsed = started.elapsed().as_secs_f64();
    let stdout = out.join().unwrap();
    let stderr = err.join().unwrap();
    notice(&format!("browser test {script}: {elapsed:.1} s"));
    let Some(status) = status else {
        panic!(
            "{script} did not finish within {SCRIPT_DEADLINE:?}; stopped it\nstdout: {stdout}\nstderr: {stderr}"
        );
    };
    assert!(
        status.success(),
        "{script} failed ({status}) after {elapsed:.1} s\nstdout: {stdout}\nstderr: {stderr}"
    );
    // The report is `{"test":"<name>","ok":true,...}` on one line.
    let reported_ok = stdout
        .lines()
        .last()
        .and_then(|l| l.split_once(','))
        .is_some_and(|(_, rest)| rest.starts_with("\"ok\":true,"));
    assert!(
        reported_ok,
        "{script} exited 0 without reporting success\nstdout: {stdout}\nstderr: {stderr}"
    );
    println!("{}", stdout.trim_end());
    // Chromium is closed: every stream it had must be gone from the relay
    // (SockJS sessions without a receiver linger for the disconnect delay).
    let idle = Instant::now();
    relay.assert_idle();
    relay.wait_metric("weir_event_streams", 0.0);
    relay.wait_metric("weir_swarms", 0.0);
    relay.wait_metric("weir_topics", 0.0);
    relay.wait_metric("weir_websockets", 0.0);
    relay.wait_metric("weir_sockjs_sessions", 0.0);
    relay.wait_metric("weir_sockjs_channels", 0.0);
    notice(&format!(
        "browser test {script}: relay idle {:.1} s after it",
        idle.elapsed().as_secs_f64()
    ));
}

/// EventSource from another origin: signal swarms (connect, join, signal
/// to all and to one cid, leave) and event topics (named events,
/// multi-line data, ids).
#[test]
fn eventsource_signal_and_topics() {
    run_script("sse.mjs", &[]);
}

/// sockjs-client (its browser bundle from npm) from another origin, one
/// transport at a time (websocket, xhr-streaming, xhr-polling,
/// eventsource): the echo service (past its 4096-byte streaming limit),
/// the close service, and a channel bridging the transport with a
/// websocket member.
#[test]
fn sockjs_client_transports() {
    run_script("sockjs.mjs", &["sockjs-client/dist/sockjs.min.js"]);
}

/// weir's own page on `/` sending to curl: a 20 MB file (SHA-256), a text,
/// a cancel the receiver sees as a cut; the bar reaches 100 % only when
/// the page says done; no console error, no CSP violation; screenshots of
/// `/` and of a transfer in progress in `target/screenshots/`.
#[test]
fn page_sends_to_curl() {
    run_script("page-send.mjs", &[]);
}

/// weir's own page receiving from curl (a file under its sent name, a text
/// shown inline), and `/noscript` with JavaScript off sending a file and a
/// text; screenshots of `/noscript`.
#[test]
fn page_receives_from_curl_and_noscript_sends() {
    run_script("page-receive.mjs", &[]);
}
