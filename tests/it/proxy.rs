//! weir behind a real nginx (Debian's `/usr/sbin/nginx`).
//!
//! Each test starts a relay (in this process, [`Relay`], or the real binary,
//! [`Binary`]) and an nginx in front of it, on free ports of 127.0.0.1, with
//! one of two configurations:
//!
//! - `defaults`: what people get by default, nginx's defaults plus
//!   `client_max_body_size 0` and `proxy_pass` (with `Host`): HTTP/1.0 to
//!   weir, request and response buffering on;
//! - `recipe`: `deploy/nginx.conf`, the file users copy (HTTP/1.1, no
//!   buffering, WebSocket upgrades, long timeouts), with its listen line
//!   and weir's address replaced.
//!
//! The transfers carry 100 MB from `curl -T file` to `curl -o file`, checked
//! by SHA-256, with the sender first, the receiver first, and a sender
//! through nginx with a receiver straight on weir. nginx stops forwarding a
//! request body once the upstream's response has begun, so a transfer only
//! completes if weir holds a sender's response until it has read the body.
//! Every transfer is bounded: it fails when no byte arrives for
//! [`STALL`], or at [`TRANSFER_DEADLINE`].
//!
//! nginx runs in the foreground (`daemon off`) as a child of the test, with
//! its pid file, error log and temp paths in a temp dir, and is stopped by
//! its PID. When `/usr/sbin/nginx` is missing a test prints a notice and
//! passes, so `cargo test` works with only Rust and curl; with
//! `WEIR_NGINX_TESTS=1` (CI, which installs nginx) it fails instead.

use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::support::{http::*, payload::*, relay::*, sse::*, ws::*, DEADLINE};
use weir::websocket::codec::OpCode;

/// Debian's nginx (package `nginx`).
const NGINX: &str = "/usr/sbin/nginx";

/// Set to `1` to make a missing nginx a failure instead of a skip.
const REQUIRE_VAR: &str = "WEIR_NGINX_TESTS";

/// The recipe users copy; the `recipe` configuration is built from it.
const RECIPE: &str = include_str!("../../deploy/nginx.conf");
/// The recipe's listen line and upstream address, replaced by the test.
const RECIPE_LISTEN: &str = "listen 80;";
const RECIPE_UPSTREAM: &str = "127.0.0.1:8080";

/// `defaults`: nginx's defaults, and only what a relay cannot do without.
const DEFAULTS: &str = "
server {
    listen 80;
    client_max_body_size 0;
    location / {
        proxy_pass http://127.0.0.1:8080;
        proxy_set_header Host $host;
    }
}
";

/// The size of each transfer.
const SIZE: u64 = 100 * 1000 * 1000;

/// The most one transfer may take.
const TRANSFER_DEADLINE: Duration = Duration::from_secs(120);

/// A transfer that moves no byte for this long has stalled.
const STALL: Duration = Duration::from_secs(15);

/// An event published must reach a subscriber within this; a buffering
/// proxy would hold it back (the read's own deadline is 20 s).
const PROMPTLY: Duration = Duration::from_secs(5);

/// After SIGTERM, before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(10);

// --- The parties -------------------------------------------------------------

/// Which nginx configuration.
#[derive(Clone, Copy, Debug)]
enum Conf {
    Defaults,
    Recipe,
}

/// How weir runs.
#[derive(Clone, Copy, Debug)]
enum Mode {
    InProcess,
    Binary,
}

enum Weir {
    InProcess(Relay),
    Binary(Binary),
}

impl Weir {
    fn start(mode: Mode) -> Weir {
        match mode {
            Mode::InProcess => Weir::InProcess(Relay::start()),
            Mode::Binary => Weir::Binary(Binary::start(&[])),
        }
    }

    fn addr(&self) -> SocketAddr {
        match self {
            Weir::InProcess(r) => r.addr,
            Weir::Binary(b) => b.addr,
        }
    }

    fn wait_metric(&self, name: &str, value: f64) {
        wait_metric(self.addr(), name, value);
    }

    fn assert_idle(&self) {
        self.wait_metric("weir_connections", 0.0);
        self.wait_metric("weir_pipes{state=\"waiting\"}", 0.0);
        self.wait_metric("weir_pipes{state=\"streaming\"}", 0.0);
    }

    /// The relay's gauges and transfer counters, for a failure message.
    fn state(&self) -> String {
        let mut m: Vec<_> = metrics(self.addr())
            .into_iter()
            .filter(|(k, _)| {
                k.starts_with("weir_connections")
                    || k.starts_with("weir_pipes")
                    || k.starts_with("weir_transfers_total")
                    || k.starts_with("weir_bytes_relayed_total")
            })
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        m.sort();
        m.join(", ")
    }
}

/// A directory under the system temp dir, removed with everything in it.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        use std::os::unix::fs::PermissionsExt;
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("weir-proxy-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // nginx's workers run as `nobody` when the test runs as root: they
        // must reach the temp paths below.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        TempDir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Whether nginx is there. When it is not: panics with `WEIR_NGINX_TESTS=1`,
/// otherwise prints a notice and returns `false`.
fn nginx_available(test: &str) -> bool {
    if Path::new(NGINX).exists() {
        return true;
    }
    let msg = format!(
        "proxy test {test} cannot run: {NGINX} is missing (Debian package `nginx`: \
         apt-get install nginx)"
    );
    if std::env::var(REQUIRE_VAR).as_deref() == Ok("1") {
        panic!("{msg} ({REQUIRE_VAR}=1 requires the proxy tests)");
    }
    // On the real stderr: the harness captures `eprintln!`, and a skip
    // must be seen.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "NOTICE: skipping {msg} (set {REQUIRE_VAR}=1 to make this a failure)"
    );
    false
}

/// A running nginx master, stopped by its PID on drop. Its error log is
/// printed when the test fails.
struct Nginx {
    addr: SocketAddr,
    child: Child,
    dir: PathBuf,
}

impl Nginx {
    /// The `server` (and `map`) blocks for `conf`, listening on `listen`
    /// and proxying to `upstream`.
    fn server_blocks(conf: Conf, listen: SocketAddr, upstream: SocketAddr) -> String {
        let template = match conf {
            Conf::Defaults => DEFAULTS,
            Conf::Recipe => RECIPE,
        };
        for placeholder in [RECIPE_LISTEN, RECIPE_UPSTREAM] {
            assert_eq!(
                template.matches(placeholder).count(),
                1,
                "the {conf:?} configuration must hold {placeholder:?} exactly once"
            );
        }
        template
            .replace(RECIPE_LISTEN, &format!("listen {listen};"))
            .replace(RECIPE_UPSTREAM, &upstream.to_string())
    }

    /// Start nginx in front of `upstream`, in `dir`.
    fn start(conf: Conf, upstream: SocketAddr, dir: &TempDir) -> Nginx {
        let d = dir.0.display();
        // A free port: bind and release it; nginx failing to bind it (taken
        // in between) is retried with another.
        for _ in 0..10 {
            let addr = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap();
            let config = format!(
                "daemon off;\n\
                 master_process on;\n\
                 worker_processes 1;\n\
                 pid {d}/nginx.pid;\n\
                 error_log {d}/error.log info;\n\
                 events {{ worker_connections 256; }}\n\
                 http {{\n\
                 access_log off;\n\
                 client_body_temp_path {d}/client_body_temp;\n\
                 proxy_temp_path {d}/proxy_temp;\n\
                 fastcgi_temp_path {d}/fastcgi_temp;\n\
                 uwsgi_temp_path {d}/uwsgi_temp;\n\
                 scgi_temp_path {d}/scgi_temp;\n\
                 {}\n\
                 }}\n",
                Nginx::server_blocks(conf, addr, upstream)
            );
            let conf_path = dir.path("nginx.conf");
            std::fs::write(&conf_path, config).unwrap();
            let _ = std::fs::remove_file(dir.path("nginx.pid"));
            let stderr = File::create(dir.path("nginx.stderr")).unwrap();
            let mut child = Command::new(NGINX)
                .arg("-p")
                .arg(&dir.0)
                .arg("-c")
                .arg(&conf_path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .expect("spawn nginx");
            // nginx writes its pid file once it has bound its sockets.
            let deadline = Instant::now() + DEADLINE;
            let pid = child.id().to_string();
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    // Before it has read its configuration nginx logs to
                    // its built-in error log (Debian's: stderr).
                    let log = read_lossy(&dir.path("error.log"));
                    let stderr = read_lossy(&dir.path("nginx.stderr"));
                    if log.contains("Address already in use")
                        || stderr.contains("Address already in use")
                    {
                        break;
                    }
                    panic!(
                        "nginx exited at start ({status})\nerror log:\n{log}\nstderr:\n{stderr}"
                    );
                }
                let written = std::fs::read_to_string(dir.path("nginx.pid")).unwrap_or_default();
                if written.trim() == pid && TcpStream::connect(addr).is_ok() {
                    return Nginx {
                        addr,
                        child,
                        dir: dir.0.clone(),
                    };
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "nginx did not start within {DEADLINE:?}\nerror log:\n{}",
                        read_lossy(&dir.path("error.log"))
                    );
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        panic!("nginx found no free port");
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Its error log, and what it wrote to stderr before it had read its
    /// configuration.
    fn error_log(&self) -> String {
        format!(
            "{}{}",
            read_lossy(&self.dir.join("nginx.stderr")),
            read_lossy(&self.dir.join("error.log"))
        )
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let pid = self.child.id();
        // The workers, should the master have to be killed.
        let workers =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        // Fast shutdown: the master stops its workers and exits.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status();
        if wait_until(&mut self.child, Instant::now() + TERM_GRACE).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
            for w in workers.split_whitespace() {
                let _ = Command::new("kill").arg("-KILL").arg(w).status();
            }
        }
        if std::thread::panicking() {
            eprintln!("--- nginx error log ---\n{}--- end ---", self.error_log());
        }
    }
}

fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// Wait for `child` until `deadline`; `None` if it is still running then.
fn wait_until(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A curl run with its output in files; killed by its PID if the test
/// fails before it ends.
struct CurlRun {
    child: Child,
    /// Where `-o` writes.
    out: PathBuf,
    /// Where `-D` writes the response heads.
    head: PathBuf,
    stderr: PathBuf,
    status: Option<ExitStatus>,
}

impl CurlRun {
    /// `curl -sS -N -o <name>.out -D <name>.head ARGS... URL`; `-N` (no
    /// output buffering) so that the files show what has arrived.
    fn spawn(dir: &TempDir, name: &str, args: &[&str], url: &str) -> CurlRun {
        let out = dir.path(&format!("{name}.out"));
        let head = dir.path(&format!("{name}.head"));
        let stderr = dir.path(&format!("{name}.stderr"));
        let child = Command::new("curl")
            .arg("-sS")
            .arg("-N")
            .arg("--max-time")
            .arg(
                (TRANSFER_DEADLINE + Duration::from_secs(10))
                    .as_secs()
                    .to_string(),
            )
            .arg("-o")
            .arg(&out)
            .arg("-D")
            .arg(&head)
            .args(args)
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&stderr).unwrap())
            .spawn()
            .expect("spawn curl");
        CurlRun {
            child,
            out,
            head,
            stderr,
            status: None,
        }
    }

    /// Whether curl has ended (and its status is kept).
    fn poll(&mut self) -> bool {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("wait for curl");
        }
        self.status.is_some()
    }

    fn out_len(&self) -> u64 {
        std::fs::metadata(&self.out).map(|m| m.len()).unwrap_or(0)
    }

    fn describe(&self, who: &str) -> String {
        let state = match self.status {
            Some(s) => format!("ended ({s})"),
            None => "still running".to_string(),
        };
        format!(
            "{who} curl {state}; stderr {:?}; response head {:?}",
            read_lossy(&self.stderr).trim(),
            read_lossy(&self.head)
        )
    }

    /// The last response head curl wrote (after any `100 Continue`).
    fn final_head(&self) -> String {
        let all = read_lossy(&self.head);
        let heads: Vec<&str> = all.split("\r\n\r\n").filter(|h| !h.is_empty()).collect();
        heads.last().copied().unwrap_or_default().to_string()
    }
}

impl Drop for CurlRun {
    fn drop(&mut self) {
        if self.poll() {
            return;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `SIZE`-byte file of [`PatternStream`] bytes, written in pieces.
fn write_source(path: &Path) {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(File::create(path).unwrap());
    let mut stream = PatternStream::new(0x6e67_696e);
    let mut buf = vec![0u8; 1 << 20];
    let mut left = SIZE;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        stream.fill(&mut buf[..n]);
        f.write_all(&buf[..n]).unwrap();
        left -= n as u64;
    }
    f.flush().unwrap();
}

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .expect("run sha256sum");
    assert!(out.status.success(), "sha256sum {}", path.display());
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

/// The SHA-256 of the source file, computed once per test process.
fn expected_sha256(source: &Path) -> &'static str {
    static SHA: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SHA.get_or_init(|| sha256(source))
}

// --- Transfers ----------------------------------------------------------------

/// Who comes first, and which side goes through nginx.
#[derive(Clone, Copy, Debug)]
enum Case {
    /// Both through nginx; the sender first.
    SenderFirst,
    /// Both through nginx; the receiver first.
    ReceiverFirst,
    /// The sender through nginx, the receiver straight on weir, first.
    DirectReceiver,
}

const WAITING: &str = "weir_pipes{state=\"waiting\"}";

/// Carry [`SIZE`] bytes from `curl -T` to `curl -o` and check them.
fn transfer(conf: Conf, mode: Mode, case: Case) {
    if !nginx_available(&format!("{conf:?}/{mode:?}/{case:?}")) {
        return;
    }
    let dir = TempDir::new();
    let weir = Weir::start(mode);
    let nginx = Nginx::start(conf, weir.addr(), &dir);
    let source = dir.path("source.bin");
    write_source(&source);
    let want = expected_sha256(&source);
    let path = "/proxy-transfer";
    let src = source.to_str().unwrap();
    let direct = format!("http://{}{path}", weir.addr());

    let started = Instant::now();
    let (mut sender, mut receiver) = match case {
        Case::SenderFirst => {
            let s = CurlRun::spawn(&dir, "sender", &["-T", src], &nginx.url(path));
            weir.wait_metric(WAITING, 1.0);
            let r = CurlRun::spawn(&dir, "receiver", &[], &nginx.url(path));
            (s, r)
        }
        Case::ReceiverFirst => {
            let r = CurlRun::spawn(&dir, "receiver", &[], &nginx.url(path));
            weir.wait_metric(WAITING, 1.0);
            let s = CurlRun::spawn(&dir, "sender", &["-T", src], &nginx.url(path));
            (s, r)
        }
        Case::DirectReceiver => {
            let r = CurlRun::spawn(&dir, "receiver", &[], &direct);
            weir.wait_metric(WAITING, 1.0);
            let s = CurlRun::spawn(&dir, "sender", &["-T", src], &nginx.url(path));
            (s, r)
        }
    };

    // Both curls end, with bytes moving all along.
    let deadline = started + TRANSFER_DEADLINE;
    let mut seen = 0;
    let mut last_move = Instant::now();
    loop {
        let ended = (sender.poll(), receiver.poll());
        if ended == (true, true) {
            break;
        }
        let got = receiver.out_len();
        if got != seen {
            seen = got;
            last_move = Instant::now();
        }
        let why = if Instant::now() > deadline {
            Some(format!("not done within {TRANSFER_DEADLINE:?}"))
        } else if last_move.elapsed() > STALL {
            Some(format!("stalled: no byte for {STALL:?}"))
        } else {
            None
        };
        if let Some(why) = why {
            panic!(
                "{conf:?}/{mode:?}/{case:?}: {why}; the receiver has {got} of {SIZE} bytes \
                 after {:.1} s\n{}\n{}\nsender's response so far: {:?}\nweir: {}",
                started.elapsed().as_secs_f64(),
                sender.describe("sender"),
                receiver.describe("receiver"),
                read_lossy(&sender.out),
                weir.state(),
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let elapsed = started.elapsed().as_secs_f64();

    let context = format!(
        "{conf:?}/{mode:?}/{case:?}\n{}\n{}\nsender's response: {:?}",
        sender.describe("sender"),
        receiver.describe("receiver"),
        read_lossy(&sender.out)
    );
    assert!(sender.status.unwrap().success(), "{context}");
    assert!(receiver.status.unwrap().success(), "{context}");

    // The bytes.
    assert_eq!(receiver.out_len(), SIZE, "{context}");
    assert_eq!(sha256(&receiver.out), want, "{context}");

    // The heads: each went the way the case says, and the receiver got the
    // sender's length.
    let via_nginx = |head: &str| {
        head.lines()
            .any(|l| l.to_ascii_lowercase().starts_with("server: nginx"))
    };
    let rhead = receiver.final_head();
    assert!(rhead.starts_with("HTTP/1.1 200 "), "{context}");
    assert_eq!(
        via_nginx(&rhead),
        !matches!(case, Case::DirectReceiver),
        "{context}"
    );
    assert!(
        rhead
            .to_ascii_lowercase()
            .contains(&format!("\r\ncontent-length: {SIZE}")),
        "{context}"
    );
    let shead = sender.final_head();
    assert!(shead.starts_with("HTTP/1.1 200 "), "{context}");
    assert!(via_nginx(&shead), "{context}");

    // The sender's last line tells the truth.
    let text = read_lossy(&sender.out);
    assert_eq!(
        text.lines().last(),
        Some(format!("[INFO] Sent successfully! ({SIZE} bytes)").as_str()),
        "{context}"
    );

    // nginx closed its connections to weir; the pipe is gone.
    weir.assert_idle();
    weir.wait_metric("weir_transfers_total{outcome=\"complete\"}", 1.0);
    println!("{conf:?}/{mode:?}/{case:?}: {SIZE} bytes in {elapsed:.1} s");
    drop(nginx);
}

macro_rules! transfer_tests {
    ($($name:ident: $conf:ident, $mode:ident, $case:ident;)*) => {
        $(
            #[test]
            fn $name() {
                transfer(Conf::$conf, Mode::$mode, Case::$case);
            }
        )*
    };
}

transfer_tests! {
    defaults_in_process_100mb_sender_first: Defaults, InProcess, SenderFirst;
    defaults_in_process_100mb_receiver_first: Defaults, InProcess, ReceiverFirst;
    defaults_in_process_100mb_sender_via_nginx_receiver_direct: Defaults, InProcess, DirectReceiver;
    defaults_binary_100mb_sender_first: Defaults, Binary, SenderFirst;
    defaults_binary_100mb_receiver_first: Defaults, Binary, ReceiverFirst;
    defaults_binary_100mb_sender_via_nginx_receiver_direct: Defaults, Binary, DirectReceiver;
    recipe_in_process_100mb_sender_first: Recipe, InProcess, SenderFirst;
    recipe_in_process_100mb_receiver_first: Recipe, InProcess, ReceiverFirst;
    recipe_in_process_100mb_sender_via_nginx_receiver_direct: Recipe, InProcess, DirectReceiver;
    recipe_binary_100mb_sender_first: Recipe, Binary, SenderFirst;
    recipe_binary_100mb_receiver_first: Recipe, Binary, ReceiverFirst;
    recipe_binary_100mb_sender_via_nginx_receiver_direct: Recipe, Binary, DirectReceiver;
}

// --- Event streams ---------------------------------------------------------------

/// A subscriber through nginx gets the welcome comment, then an event
/// published through nginx, at once: the stream is not buffered.
fn event_stream(conf: Conf, mode: Mode) {
    if !nginx_available(&format!("{conf:?}/{mode:?}/event stream")) {
        return;
    }
    let dir = TempDir::new();
    let weir = Weir::start(mode);
    let nginx = Nginx::start(conf, weir.addr(), &dir);

    let mut sub = SseClient::open(nginx.addr, "/events/proxy-news");
    assert_eq!(sub.status, 200);
    assert!(
        sub.header("Server").is_some_and(|s| s.starts_with("nginx")),
        "{:?}",
        sub.headers
    );
    assert_eq!(
        sub.header("Content-Type"),
        Some("text/event-stream; charset=utf-8")
    );
    // The welcome comment arrives through nginx before anything else
    // happens: nothing holds the stream back.
    let welcome = sub.next_any().expect("the welcome comment");
    assert_eq!(welcome.comment.as_deref(), Some("weir event stream"));

    let body = "hello\nthrough nginx";
    let published = Instant::now();
    let r = exchange(
        nginx.addr,
        format!(
            "POST /events/proxy-news?event=greeting&id=7 HTTP/1.1\r\nHost: t\r\n\
             Content-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "1\n");
    let ev = sub.next_event().expect("the event");
    let took = published.elapsed();
    assert_eq!(
        ev,
        Sse {
            event: Some("greeting".into()),
            id: Some("7".into()),
            data: body.into(),
            comment: None,
        }
    );
    assert!(took < PROMPTLY, "the event took {took:?} through nginx");

    drop(sub);
    weir.wait_metric("weir_event_streams", 0.0);
    weir.assert_idle();
    drop(nginx);
}

#[test]
fn recipe_in_process_event_stream_is_live() {
    event_stream(Conf::Recipe, Mode::InProcess);
}

#[test]
fn recipe_binary_event_stream_is_live() {
    event_stream(Conf::Recipe, Mode::Binary);
}

/// With nginx's defaults (response buffering on), `X-Accel-Buffering: no`
/// is what keeps the stream live.
#[test]
fn defaults_in_process_event_stream_is_live() {
    event_stream(Conf::Defaults, Mode::InProcess);
}

#[test]
fn defaults_binary_event_stream_is_live() {
    event_stream(Conf::Defaults, Mode::Binary);
}

// --- WebSocket pipes -------------------------------------------------------------

/// Two WebSocket clients through nginx on one path are bridged: messages
/// go both ways, a large one too, and a close reaches the other side.
fn websocket_pipe(mode: Mode) {
    if !nginx_available(&format!("{mode:?}/websocket pipe")) {
        return;
    }
    let dir = TempDir::new();
    let weir = Weir::start(mode);
    let nginx = Nginx::start(Conf::Recipe, weir.addr(), &dir);

    let mut a = ws_connect(nginx.addr, "/proxy-ws");
    weir.wait_metric("weir_ws_pipes{state=\"waiting\"}", 1.0);
    let mut b = ws_connect(nginx.addr, "/proxy-ws");
    weir.wait_metric("weir_ws_pipes{state=\"bridged\"}", 1.0);

    ws_send(&mut a, true, OpCode::Text, b"hello from a");
    let f = ws_recv(&mut b).expect("a frame for b");
    assert_eq!(
        (f.fin, f.opcode, f.payload.as_slice()),
        (true, OpCode::Text, &b"hello from a"[..])
    );
    ws_send(&mut b, true, OpCode::Binary, &[0, 1, 2, 255]);
    let f = ws_recv(&mut a).expect("a frame for a");
    assert_eq!(
        (f.fin, f.opcode, f.payload.as_slice()),
        (true, OpCode::Binary, &[0u8, 1, 2, 255][..])
    );

    // 4 MiB each way at once, each written on its own thread.
    let (pa, pb) = (pattern(4 << 20, 21), pattern(4 << 20, 22));
    let (ha, hb) = (hash(&pa), hash(&pb));
    let mut a2 = a.try_clone().unwrap();
    let mut b2 = b.try_clone().unwrap();
    let wa = std::thread::spawn(move || ws_send(&mut a2, true, OpCode::Binary, &pa));
    let wb = std::thread::spawn(move || ws_send(&mut b2, true, OpCode::Binary, &pb));
    let at_b = ws_recv(&mut b).expect("a's large frame");
    let at_a = ws_recv(&mut a).expect("b's large frame");
    wa.join().unwrap();
    wb.join().unwrap();
    assert_eq!((at_b.opcode, hash(&at_b.payload)), (OpCode::Binary, ha));
    assert_eq!((at_a.opcode, hash(&at_a.payload)), (OpCode::Binary, hb));

    let close = weir::websocket::codec::close_frame(1000, "done");
    ws_send(&mut a, true, OpCode::Close, &close[2..]);
    assert_eq!(
        ws_close_of(&ws_recv(&mut b).expect("the close at b")),
        (1000, "done".to_string())
    );
    assert_eq!(
        ws_close_of(&ws_recv(&mut a).expect("the close at a")),
        (1000, "done".to_string())
    );
    drop((a, b));
    weir.wait_metric("weir_websockets", 0.0);
    weir.assert_idle();
    drop(nginx);
}

#[test]
fn recipe_in_process_websocket_pipe_both_ways() {
    websocket_pipe(Mode::InProcess);
}

#[test]
fn recipe_binary_websocket_pipe_both_ways() {
    websocket_pipe(Mode::Binary);
}
