//! weir behind real reverse proxies: Debian's nginx, Caddy and HAProxy,
//! each with the recipe from `deploy/` that users copy.
//!
//! Each test starts a relay (in this process, [`Relay`], or the real binary,
//! [`Binary`]) and a proxy in front of it, on free ports of 127.0.0.1, with
//! one of these configurations:
//!
//! - nginx `defaults`: what people get by default, nginx's defaults plus
//!   `client_max_body_size 0` and `proxy_pass` (with `Host`): HTTP/1.0 to
//!   weir, request and response buffering on;
//! - nginx `recipe`: `deploy/nginx.conf` (HTTP/1.1, no buffering,
//!   WebSocket upgrades, long timeouts);
//! - caddy: `deploy/Caddyfile`;
//! - haproxy: `deploy/haproxy.cfg`.
//!
//! A recipe is used as written, with only placeholders replaced: the
//! address the proxy listens on (nginx `listen 80;`, Caddy's site address
//! `relay.example.com {`, HAProxy's `bind :80`) becomes a free loopback
//! port, and weir's address `127.0.0.1:8080` becomes the test relay's; each
//! must appear exactly once. Around it the test puts what makes a private
//! instance of the proxy: nginx's `events`/`http` blocks and temp paths, a
//! Caddy global options block (no admin endpoint, a short shutdown grace),
//! an HAProxy `global` section.
//!
//! The transfers carry 100 MB from `curl -T file` to `curl -o file`, checked
//! by SHA-256, with the sender first, the receiver first, and a sender
//! through the proxy with a receiver straight on weir. nginx and HAProxy
//! stop forwarding a request body once the upstream's response has begun,
//! so a transfer only completes if weir holds a sender's response until it
//! has read the body. Every transfer is bounded: it fails when no byte
//! arrives for [`STALL`], or at [`TRANSFER_DEADLINE`].
//!
//! Each proxy runs in the foreground as a child of the test, with its logs
//! and temp paths in a temp dir, and is stopped by its PID. When a proxy's
//! program is missing a test prints a notice and passes, so `cargo test`
//! works with only Rust and curl; with `WEIR_DEPLOY_TESTS=1` (CI, which
//! installs all three) it fails instead, and so does a missing nginx with
//! `WEIR_NGINX_TESTS=1`.

use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::support::{http::*, payload::*, relay::*, sse::*, ws::*, DEADLINE};
use weir::websocket::codec::OpCode;

/// Set to `1` to make a missing proxy (or `systemd-analyze`) a failure
/// instead of a skip.
pub const REQUIRE_VAR: &str = "WEIR_DEPLOY_TESTS";
/// Set to `1` to make a missing nginx a failure (older name, kept).
const REQUIRE_NGINX_VAR: &str = "WEIR_NGINX_TESTS";

/// weir's address in every recipe, replaced by the test relay's.
const RECIPE_UPSTREAM: &str = "127.0.0.1:8080";

/// `defaults`: nginx's defaults, and only what a relay cannot do without.
const NGINX_DEFAULTS: &str = "
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

/// weir's event stream heartbeat in the event stream tests.
const HEARTBEAT: Duration = Duration::from_secs(2);

/// After SIGTERM, before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(10);

// --- The parties -------------------------------------------------------------

/// Which configuration: nginx has its defaults and the recipe, Caddy
/// and HAProxy their recipe only.
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
/// Whether `program` is there. When it is not: panics if one of
/// `require` is `1`, otherwise prints a notice and returns `false`.
pub fn program_available(program: &str, package: &str, test: &str, require: &[&str]) -> bool {
    if Path::new(program).exists() {
        return true;
    }
    let msg = format!(
        "test {test} cannot run: {program} is missing (Debian package `{package}`: \
         apt-get install {package})"
    );
    for var in require {
        if std::env::var(var).as_deref() == Ok("1") {
            panic!("{msg} ({var}=1 requires it)");
        }
    }
    // On the real stderr: the harness captures `eprintln!`, and a skip
    // must be seen.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "NOTICE: skipping {msg} (set {} to make this a failure)",
        require.join("=1 or ") + "=1"
    );
    false
}

/// A reverse proxy from Debian's packages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Proxy {
    Nginx,
    Caddy,
    Haproxy,
}

impl Proxy {
    fn program(self) -> &'static str {
        match self {
            Proxy::Nginx => "/usr/sbin/nginx",
            Proxy::Caddy => "/usr/bin/caddy",
            Proxy::Haproxy => "/usr/sbin/haproxy",
        }
    }

    fn package(self) -> &'static str {
        match self {
            Proxy::Nginx => "nginx",
            Proxy::Caddy => "caddy",
            Proxy::Haproxy => "haproxy",
        }
    }

    /// Whether the proxy is there; see [`program_available`].
    fn available(self, test: &str) -> bool {
        let require: &[&str] = match self {
            Proxy::Nginx => &[REQUIRE_VAR, REQUIRE_NGINX_VAR],
            _ => &[REQUIRE_VAR],
        };
        program_available(self.program(), self.package(), test, require)
    }

    /// The recipe (or, for nginx `defaults`, the minimal configuration)
    /// and its listen placeholder.
    fn template(self, conf: Conf) -> (&'static str, &'static str) {
        match (self, conf) {
            (Proxy::Nginx, Conf::Defaults) => (NGINX_DEFAULTS, "listen 80;"),
            (Proxy::Nginx, Conf::Recipe) => (include_str!("../../deploy/nginx.conf"), "listen 80;"),
            (Proxy::Caddy, Conf::Recipe) => (
                include_str!("../../deploy/Caddyfile"),
                "relay.example.com {",
            ),
            (Proxy::Haproxy, Conf::Recipe) => {
                (include_str!("../../deploy/haproxy.cfg"), "bind :80")
            }
            (p, Conf::Defaults) => panic!("{p:?} has only its recipe"),
        }
    }

    /// The configuration the proxy runs: the template with its listen
    /// placeholder and weir's address replaced.
    fn site(self, conf: Conf, listen: SocketAddr, upstream: SocketAddr) -> String {
        let (template, listen_placeholder) = self.template(conf);
        for placeholder in [listen_placeholder, RECIPE_UPSTREAM] {
            assert_eq!(
                template.matches(placeholder).count(),
                1,
                "the {self:?} {conf:?} configuration must hold {placeholder:?} exactly once"
            );
        }
        let listen_line = match self {
            Proxy::Nginx => format!("listen {listen};"),
            // Any Host header, on loopback only.
            Proxy::Caddy => format!("http://:{} {{\n\tbind {}", listen.port(), listen.ip()),
            Proxy::Haproxy => format!("bind {listen}"),
        };
        template
            .replace(listen_placeholder, &listen_line)
            .replace(RECIPE_UPSTREAM, &upstream.to_string())
    }

    /// The whole configuration file for a private instance in `dir`.
    fn config(self, conf: Conf, listen: SocketAddr, upstream: SocketAddr, dir: &Path) -> String {
        let d = dir.display();
        let site = self.site(conf, listen, upstream);
        match self {
            Proxy::Nginx => format!(
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
                 {site}\n\
                 }}\n"
            ),
            // No admin endpoint (its default port would be shared by every
            // test), its autosave in the temp dir, a short grace on SIGTERM (Caddy's
            // default waits for every connection).
            Proxy::Caddy => {
                format!("{{\n\tadmin off\n\tgrace_period 1s\n}}\n\n{site}")
            }
            Proxy::Haproxy => format!("global\n\tmaxconn 1000\n\n{site}"),
        }
    }

    /// What the proxy writes in a response's `Server` header, if anything.
    fn server_header(self) -> Option<&'static str> {
        match self {
            Proxy::Nginx => Some("nginx"),
            Proxy::Caddy => Some("Caddy"),
            Proxy::Haproxy => None,
        }
    }
}

/// A running proxy, stopped by its PID on drop. Its logs are printed when
/// the test fails.
struct Front {
    proxy: Proxy,
    addr: SocketAddr,
    child: Child,
    dir: PathBuf,
}

impl Front {
    /// Start `proxy` with `conf` in front of `upstream`, in `dir`.
    fn start(proxy: Proxy, conf: Conf, upstream: SocketAddr, dir: &TempDir) -> Front {
        // A free port: bind and release it; the proxy failing to bind it
        // (taken in between) is retried with another.
        for _ in 0..10 {
            let addr = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap();
            let conf_path = dir.path(match proxy {
                Proxy::Nginx => "nginx.conf",
                Proxy::Caddy => "Caddyfile",
                Proxy::Haproxy => "haproxy.cfg",
            });
            std::fs::write(&conf_path, proxy.config(conf, addr, upstream, &dir.0)).unwrap();
            let _ = std::fs::remove_file(dir.path("nginx.pid"));
            let stderr = File::create(dir.path("proxy.stderr")).unwrap();
            let mut cmd = Command::new(proxy.program());
            match proxy {
                Proxy::Nginx => cmd.arg("-p").arg(&dir.0).arg("-c").arg(&conf_path),
                Proxy::Caddy => cmd
                    .arg("run")
                    .arg("--config")
                    .arg(&conf_path)
                    .arg("--adapter")
                    .arg("caddyfile")
                    // Its certificate storage and config dirs, unused for
                    // an http:// site but created anyway.
                    .env("HOME", &dir.0)
                    .env("XDG_DATA_HOME", &dir.0)
                    .env("XDG_CONFIG_HOME", &dir.0),
                // -db: foreground, no daemon.
                Proxy::Haproxy => cmd.arg("-db").arg("-f").arg(&conf_path),
            };
            let mut child = cmd
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {}: {e}", proxy.program()));
            let front = |child| Front {
                proxy,
                addr,
                child,
                dir: dir.0.clone(),
            };
            let deadline = Instant::now() + DEADLINE;
            let pid = child.id().to_string();
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    let logs = front_logs(&dir.0);
                    if logs.contains("Address already in use")
                        || logs.contains("address already in use")
                    {
                        break;
                    }
                    panic!("{proxy:?} exited at start ({status})\n{logs}");
                }
                // nginx writes its pid file once it has bound its sockets;
                // Caddy and HAProxy accept once they have read everything.
                let ready = match proxy {
                    Proxy::Nginx => {
                        std::fs::read_to_string(dir.path("nginx.pid"))
                            .unwrap_or_default()
                            .trim()
                            == pid
                    }
                    _ => true,
                };
                if ready && TcpStream::connect(addr).is_ok() {
                    return front(child);
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "{proxy:?} did not start within {DEADLINE:?}\n{}",
                        front_logs(&dir.0)
                    );
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        panic!("{proxy:?} found no free port");
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// What it wrote to stderr, and nginx's error log.
    fn logs(&self) -> String {
        front_logs(&self.dir)
    }

    /// Whether a response head came through this proxy, as far as its
    /// `Server` header tells; `None` where the proxy adds none.
    fn stamped(&self, head: &str) -> Option<bool> {
        let name = self.proxy.server_header()?.to_ascii_lowercase();
        Some(head.lines().any(|l| {
            let l = l.to_ascii_lowercase();
            l.strip_prefix("server:")
                .is_some_and(|v| v.trim().starts_with(&name))
        }))
    }
}

fn front_logs(dir: &Path) -> String {
    format!(
        "--- stderr ---\n{}--- error.log ---\n{}",
        read_lossy(&dir.join("proxy.stderr")),
        read_lossy(&dir.join("error.log"))
    )
}

impl Drop for Front {
    fn drop(&mut self) {
        let pid = self.child.id();
        // nginx's workers, should the master have to be killed.
        let workers =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        // nginx: fast shutdown, the master stops its workers and exits;
        // Caddy: graceful, within its grace_period; HAProxy: stops at once.
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
            eprintln!("--- {:?} logs ---\n{}--- end ---", self.proxy, self.logs());
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

/// Who comes first, and which side goes through the proxy.
#[derive(Clone, Copy, Debug)]
enum Case {
    /// Both through the proxy; the sender first.
    SenderFirst,
    /// Both through the proxy; the receiver first.
    ReceiverFirst,
    /// The sender through the proxy, the receiver straight on weir, first.
    DirectReceiver,
    /// The sender straight on weir, first; the receiver through the proxy.
    DirectSender,
}

const WAITING: &str = "weir_pipes{state=\"waiting\"}";

/// Carry [`SIZE`] bytes from `curl -T` to `curl -o` and check them.
fn transfer(proxy: Proxy, conf: Conf, mode: Mode, case: Case) {
    let name = format!("{proxy:?}/{conf:?}/{mode:?}/{case:?}");
    if !proxy.available(&name) {
        return;
    }
    let dir = TempDir::new();
    let weir = Weir::start(mode);
    let front = Front::start(proxy, conf, weir.addr(), &dir);
    let source = dir.path("source.bin");
    write_source(&source);
    let want = expected_sha256(&source);
    let path = "/proxy-transfer";
    let src = source.to_str().unwrap();
    let direct = format!("http://{}{path}", weir.addr());

    let started = Instant::now();
    let (mut sender, mut receiver) = match case {
        Case::SenderFirst => {
            let s = CurlRun::spawn(&dir, "sender", &["-T", src], &front.url(path));
            weir.wait_metric(WAITING, 1.0);
            let r = CurlRun::spawn(&dir, "receiver", &[], &front.url(path));
            (s, r)
        }
        Case::ReceiverFirst => {
            let r = CurlRun::spawn(&dir, "receiver", &[], &front.url(path));
            weir.wait_metric(WAITING, 1.0);
            let s = CurlRun::spawn(&dir, "sender", &["-T", src], &front.url(path));
            (s, r)
        }
        Case::DirectReceiver => {
            let r = CurlRun::spawn(&dir, "receiver", &[], &direct);
            weir.wait_metric(WAITING, 1.0);
            let s = CurlRun::spawn(&dir, "sender", &["-T", src], &front.url(path));
            (s, r)
        }
        Case::DirectSender => {
            let s = CurlRun::spawn(&dir, "sender", &["-T", src], &direct);
            weir.wait_metric(WAITING, 1.0);
            let r = CurlRun::spawn(&dir, "receiver", &[], &front.url(path));
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
                "{name}: {why}; the receiver has {got} of {SIZE} bytes \
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
        "{name}\n{}\n{}\nsender's response: {:?}",
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
    let rhead = receiver.final_head();
    assert!(rhead.starts_with("HTTP/1.1 200 "), "{context}");
    if let Some(stamped) = front.stamped(&rhead) {
        assert_eq!(stamped, !matches!(case, Case::DirectReceiver), "{context}");
    }
    assert!(
        rhead
            .to_ascii_lowercase()
            .contains(&format!("\r\ncontent-length: {SIZE}")),
        "{context}"
    );
    let shead = sender.final_head();
    assert!(shead.starts_with("HTTP/1.1 200 "), "{context}");
    if let Some(stamped) = front.stamped(&shead) {
        assert_eq!(stamped, !matches!(case, Case::DirectSender), "{context}");
    }

    // The sender's last line tells the truth.
    let text = read_lossy(&sender.out);
    assert_eq!(
        text.lines().last(),
        Some(format!("[INFO] Sent successfully! ({SIZE} bytes)").as_str()),
        "{context}"
    );

    // The proxy closed its connections to weir; the pipe is gone.
    weir.assert_idle();
    weir.wait_metric("weir_transfers_total{outcome=\"complete\"}", 1.0);
    println!("{name}: {SIZE} bytes in {elapsed:.1} s");
    drop(front);
}

macro_rules! transfer_tests {
    ($($name:ident: $proxy:ident, $conf:ident, $mode:ident, $case:ident;)*) => {
        $(
            #[test]
            fn $name() {
                transfer(Proxy::$proxy, Conf::$conf, Mode::$mode, Case::$case);
            }
        )*
    };
}

transfer_tests! {
    defaults_in_process_100mb_sender_first: Nginx, Defaults, InProcess, SenderFirst;
    defaults_in_process_100mb_receiver_first: Nginx, Defaults, InProcess, ReceiverFirst;
    defaults_in_process_100mb_sender_via_nginx_receiver_direct: Nginx, Defaults, InProcess, DirectReceiver;
    defaults_binary_100mb_sender_first: Nginx, Defaults, Binary, SenderFirst;
    defaults_binary_100mb_receiver_first: Nginx, Defaults, Binary, ReceiverFirst;
    defaults_binary_100mb_sender_via_nginx_receiver_direct: Nginx, Defaults, Binary, DirectReceiver;
    recipe_in_process_100mb_sender_first: Nginx, Recipe, InProcess, SenderFirst;
    recipe_in_process_100mb_receiver_first: Nginx, Recipe, InProcess, ReceiverFirst;
    recipe_in_process_100mb_sender_via_nginx_receiver_direct: Nginx, Recipe, InProcess, DirectReceiver;
    recipe_in_process_100mb_sender_direct_receiver_via_nginx: Nginx, Recipe, InProcess, DirectSender;
    recipe_binary_100mb_sender_first: Nginx, Recipe, Binary, SenderFirst;
    recipe_binary_100mb_receiver_first: Nginx, Recipe, Binary, ReceiverFirst;
    recipe_binary_100mb_sender_via_nginx_receiver_direct: Nginx, Recipe, Binary, DirectReceiver;
    caddy_in_process_100mb_sender_first: Caddy, Recipe, InProcess, SenderFirst;
    caddy_in_process_100mb_receiver_first: Caddy, Recipe, InProcess, ReceiverFirst;
    caddy_in_process_100mb_sender_via_caddy_receiver_direct: Caddy, Recipe, InProcess, DirectReceiver;
    caddy_in_process_100mb_sender_direct_receiver_via_caddy: Caddy, Recipe, InProcess, DirectSender;
    caddy_binary_100mb_sender_first: Caddy, Recipe, Binary, SenderFirst;
    haproxy_in_process_100mb_sender_first: Haproxy, Recipe, InProcess, SenderFirst;
    haproxy_in_process_100mb_receiver_first: Haproxy, Recipe, InProcess, ReceiverFirst;
    haproxy_in_process_100mb_sender_via_haproxy_receiver_direct: Haproxy, Recipe, InProcess, DirectReceiver;
    haproxy_in_process_100mb_sender_direct_receiver_via_haproxy: Haproxy, Recipe, InProcess, DirectSender;
    haproxy_binary_100mb_sender_first: Haproxy, Recipe, Binary, SenderFirst;
}

// --- Event streams ---------------------------------------------------------------

/// A subscriber through the proxy gets the welcome comment, then an event
/// published through the proxy, at once: the stream is not buffered.
fn event_stream(proxy: Proxy, conf: Conf, mode: Mode) {
    let name = format!("{proxy:?}/{conf:?}/{mode:?}/event stream");
    if !proxy.available(&name) {
        return;
    }
    let dir = TempDir::new();
    // Caddy notices that its client has gone only when it next writes to
    // it, and only then closes its stream from weir: a short heartbeat
    // lets the end of the test see the stream closed.
    let weir = match mode {
        Mode::InProcess => Weir::InProcess(Relay::with(|c| c.heartbeat = HEARTBEAT)),
        Mode::Binary => Weir::Binary(Binary::start(&[
            "--heartbeat",
            &HEARTBEAT.as_secs().to_string(),
        ])),
    };
    let front = Front::start(proxy, conf, weir.addr(), &dir);

    let mut sub = SseClient::open(front.addr, "/events/proxy-news");
    assert_eq!(sub.status, 200);
    if let Some(server) = proxy.server_header() {
        assert!(
            sub.header("Server").is_some_and(|s| s.starts_with(server)),
            "{name}: {:?}",
            sub.headers
        );
    }
    assert_eq!(
        sub.header("Content-Type"),
        Some("text/event-stream; charset=utf-8")
    );
    // The welcome comment arrives through the proxy before anything else
    // happens: nothing holds the stream back.
    let welcome = sub.next_any().expect("the welcome comment");
    assert_eq!(welcome.comment.as_deref(), Some("weir event stream"));

    let body = "hello\nthrough a proxy";
    let published = Instant::now();
    let r = exchange(
        front.addr,
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
    assert!(took < PROMPTLY, "{name}: the event took {took:?}");

    drop(sub);
    weir.wait_metric("weir_event_streams", 0.0);
    weir.assert_idle();
    drop(front);
}

#[test]
fn recipe_in_process_event_stream_is_live() {
    event_stream(Proxy::Nginx, Conf::Recipe, Mode::InProcess);
}

#[test]
fn recipe_binary_event_stream_is_live() {
    event_stream(Proxy::Nginx, Conf::Recipe, Mode::Binary);
}

#[test]
fn caddy_in_process_event_stream_is_live() {
    event_stream(Proxy::Caddy, Conf::Recipe, Mode::InProcess);
}

#[test]
fn caddy_binary_event_stream_is_live() {
    event_stream(Proxy::Caddy, Conf::Recipe, Mode::Binary);
}

#[test]
fn haproxy_in_process_event_stream_is_live() {
    event_stream(Proxy::Haproxy, Conf::Recipe, Mode::InProcess);
}

#[test]
fn haproxy_binary_event_stream_is_live() {
    event_stream(Proxy::Haproxy, Conf::Recipe, Mode::Binary);
}

/// With nginx's defaults (response buffering on), `X-Accel-Buffering: no`
/// is what keeps the stream live.
#[test]
fn defaults_in_process_event_stream_is_live() {
    event_stream(Proxy::Nginx, Conf::Defaults, Mode::InProcess);
}

#[test]
fn defaults_binary_event_stream_is_live() {
    event_stream(Proxy::Nginx, Conf::Defaults, Mode::Binary);
}

// --- WebSocket pipes -------------------------------------------------------------

/// Two WebSocket clients through the proxy on one path are bridged: messages
/// go both ways, a large one too, and a close reaches the other side.
fn websocket_pipe(proxy: Proxy, mode: Mode) {
    if !proxy.available(&format!("{proxy:?}/{mode:?}/websocket pipe")) {
        return;
    }
    let dir = TempDir::new();
    let weir = Weir::start(mode);
    let front = Front::start(proxy, Conf::Recipe, weir.addr(), &dir);

    let mut a = ws_connect(front.addr, "/proxy-ws");
    weir.wait_metric("weir_ws_pipes{state=\"waiting\"}", 1.0);
    let mut b = ws_connect(front.addr, "/proxy-ws");
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
    drop(front);
}

#[test]
fn recipe_in_process_websocket_pipe_both_ways() {
    websocket_pipe(Proxy::Nginx, Mode::InProcess);
}

#[test]
fn recipe_binary_websocket_pipe_both_ways() {
    websocket_pipe(Proxy::Nginx, Mode::Binary);
}

#[test]
fn caddy_in_process_websocket_pipe_both_ways() {
    websocket_pipe(Proxy::Caddy, Mode::InProcess);
}

#[test]
fn caddy_binary_websocket_pipe_both_ways() {
    websocket_pipe(Proxy::Caddy, Mode::Binary);
}

#[test]
fn haproxy_in_process_websocket_pipe_both_ways() {
    websocket_pipe(Proxy::Haproxy, Mode::InProcess);
}

#[test]
fn haproxy_binary_websocket_pipe_both_ways() {
    websocket_pipe(Proxy::Haproxy, Mode::Binary);
}
