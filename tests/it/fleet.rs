//! A fleet: three `weir` processes behind a real balancer, Debian's HAProxy
//! (`deploy/haproxy-fleet.cfg`) or nginx (`deploy/nginx-fleet.conf`), all
//! on free ports of 127.0.0.1, started by `scripts/fleet.sh` (the script
//! users try the fleet with), which writes the balancer's configuration
//! from the recipe and the fleet list.
//!
//! Each test runs against both balancers:
//!
//! - `pipes`: 300 pipes on random paths (some with a query string, which
//!   is no part of the key), sender and receiver on their own connections
//!   in random order, every body checked by SHA-256, and every process
//!   carried at least 15 % of them (read from each one's `/metrics`);
//! - `families`: ephemeral IDs, reservations, a swarm of three peers, a
//!   topic with subscribers, a WebSocket pipe and two SockJS sessions over
//!   xhr-polling on one channel, each through the balancer;
//! - `process_dies_and_returns`: a process killed (SIGKILL) while 30
//!   transfers stream cuts exactly its own, visibly to their receivers
//!   (short bodies), the others complete, new transfers succeed on the
//!   two left, an ID it made is answered as gone (HAProxy: `404` with a
//!   line; nginx: `502`); restarted on its address, it takes traffic again;
//! - `curl_upload_with_expect`: 32 MB from `curl -T` (which asks
//!   `Expect: 100-continue`) to `curl`, through the balancer.
//!
//! When the balancer is missing a test prints a notice and passes; with
//! `WEIR_FLEET_TESTS=1` (CI, which installs both) it fails instead.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::support::{
    curl::*, fs::TempFile, http::*, net::*, payload::*, pipe::Recorded, relay::metrics, seed::*,
    sse::*, ws::*, DEADLINE,
};
use weir::websocket::codec::OpCode;

/// Set to `1` to make a missing balancer a failure instead of a skip.
const REQUIRE_VAR: &str = "WEIR_FLEET_TESTS";

/// The weir flags of every member.
const WEIR_FLAGS: &[&str] = &["--reservations"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Balancer {
    Haproxy,
    Nginx,
}

impl Balancer {
    fn name(self) -> &'static str {
        match self {
            Balancer::Haproxy => "haproxy",
            Balancer::Nginx => "nginx",
        }
    }

    fn binary(self) -> &'static str {
        match self {
            Balancer::Haproxy => "/usr/sbin/haproxy",
            Balancer::Nginx => "/usr/sbin/nginx",
        }
    }

    /// Whether it is installed. When it is not: panics with
    /// `WEIR_FLEET_TESTS=1`, otherwise prints a notice and returns `false`.
    fn available(self, test: &str) -> bool {
        crate::proxy::program_available(
            self.binary(),
            self.name(),
            &format!("fleet {test}"),
            &[REQUIRE_VAR],
        )
    }
}

/// One weir process of the fleet.
#[derive(Clone, Debug)]
struct Member {
    name: String,
    pid: u32,
    addr: SocketAddr,
}

/// A fleet started by `scripts/fleet.sh`, stopped by it (by PID) on drop.
struct Fleet {
    dir: PathBuf,
    members: Vec<Member>,
    /// The balancer's address: where every client goes.
    addr: SocketAddr,
    /// HAProxy's stats page (CSV), to see what its health checks found.
    stats: Option<SocketAddr>,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/fleet.sh")
}

impl Fleet {
    fn start(balancer: Balancer) -> Fleet {
        use std::sync::atomic::AtomicU64;
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "weir-fleet-{}-{}-{n}",
            std::process::id(),
            balancer.name()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let out = Command::new("bash")
            .arg(script())
            .args(["start", "-n", "3", "--proxy", balancer.name(), "--dir"])
            .arg(&dir)
            .arg("--weir")
            .arg(env!("CARGO_BIN_EXE_weir"))
            .arg("--")
            .args(WEIR_FLAGS)
            .output()
            .expect("run scripts/fleet.sh");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "fleet.sh start failed\nstdout:\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut fleet = Fleet {
            dir,
            members: Vec::new(),
            addr: "127.0.0.1:1".parse().unwrap(),
            stats: None,
        };
        for line in stdout.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            match f.as_slice() {
                ["weir", name, pid, addr] => fleet.members.push(Member {
                    name: name.to_string(),
                    pid: pid.parse().unwrap(),
                    addr: addr.parse().unwrap(),
                }),
                ["haproxy" | "nginx", _pid, addr] => fleet.addr = addr.parse().unwrap(),
                ["stats", url] => {
                    let hostport = url.trim_start_matches("http://").trim_end_matches('/');
                    fleet.stats = Some(hostport.parse().unwrap());
                }
                _ => {}
            }
        }
        assert_eq!(fleet.members.len(), 3, "{stdout}");
        assert_eq!(fleet.members[1].name, "w2");
        if balancer == Balancer::Haproxy {
            assert!(fleet.stats.is_some(), "{stdout}");
            for i in 0..3 {
                fleet.wait_health(i, true);
            }
        }
        fleet
    }

    /// HAProxy's view of member `i`: wait until its health checks say UP
    /// (or DOWN). nginx has no active checks: nothing to wait for.
    fn wait_health(&self, i: usize, up: bool) {
        let Some(stats) = self.stats else { return };
        let name = &self.members[i].name;
        let deadline = Instant::now() + DEADLINE;
        loop {
            let csv = get(stats, "/;csv").text();
            // pxname,svname,...,status is the 18th field.
            let status = csv
                .lines()
                .map(|l| l.split(',').collect::<Vec<_>>())
                .find(|f| f.len() > 17 && f[0] == "weir" && f[1] == name)
                .map(|f| f[17].to_string())
                .unwrap_or_default();
            if status.starts_with("UP") == up && (up || status.starts_with("DOWN")) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "HAProxy says {name} is {status:?}, expected {}",
                if up { "UP" } else { "DOWN" }
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A counter or gauge of every member, in member order; NaN for a
    /// member that is down.
    fn metric(&self, name: &str) -> Vec<f64> {
        self.members
            .iter()
            .map(|m| match TcpStream::connect(m.addr) {
                Ok(_) => metrics(m.addr).get(name).copied().unwrap_or(f64::NAN),
                Err(_) => f64::NAN,
            })
            .collect()
    }

    fn completed(&self) -> Vec<f64> {
        self.metric("weir_transfers_total{outcome=\"complete\"}")
    }

    /// SIGKILL member `i` and wait until its address refuses connections.
    fn kill(&self, i: usize) {
        let m = &self.members[i];
        let ok = Command::new("kill")
            .args(["-KILL", &m.pid.to_string()])
            .status()
            .unwrap();
        assert!(ok.success(), "kill {}", m.pid);
        let deadline = Instant::now() + DEADLINE;
        while TcpStream::connect(m.addr).is_ok() {
            assert!(Instant::now() < deadline, "{} still accepts", m.name);
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Start member `i` again on its address (`fleet.sh restart`).
    fn restart(&mut self, i: usize) {
        let name = self.members[i].name.clone();
        let out = Command::new("bash")
            .arg(script())
            .args(["restart", &name, "--dir"])
            .arg(&self.dir)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "fleet.sh restart {name}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let f: Vec<&str> = stdout.split_whitespace().collect();
        assert_eq!(f.first(), Some(&"weir"), "{stdout}");
        self.members[i].pid = f[2].parse().unwrap();
        self.wait_health(i, true);
    }

    fn log(&self, file: &str) -> String {
        std::fs::read(self.dir.join(file))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .args(["stop", "--dir"])
            .arg(&self.dir)
            .output();
        if std::thread::panicking() {
            for f in [
                "haproxy.log",
                "nginx-error.log",
                "w1.log",
                "w2.log",
                "w3.log",
            ] {
                let log = self.log(f);
                if !log.is_empty() {
                    eprintln!("--- {f} ---\n{log}--- end ---");
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// A random name of URL-safe characters.
fn name(rng: &mut Rng, len: usize) -> String {
    const A: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";
    (0..len).map(|_| A[rng.below(A.len())] as char).collect()
}

/// A sender's head with a `Content-Length` (no `Expect`: its response is
/// held until its body is read, as behind nginx). Every request here says
/// `Connection: close`, so that the balancer closes the client's connection
/// after the response and a read to the end ends there (HAProxy keeps a
/// client's connection open after a response weir closed on its side).
fn put_head(path: &str, len: usize) -> String {
    format!(
        "PUT {path} HTTP/1.1\r\nHost: fleet\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
    )
}

/// A receiver on `path`.
fn start_receiver(addr: SocketAddr, path: &str) -> TcpStream {
    let mut s = connect(addr);
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: fleet\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    s
}

/// How one transfer ended at its receiver.
#[derive(Debug, PartialEq, Eq)]
enum Got {
    /// Every byte, and the SHA-256 matches.
    Complete,
    /// Fewer bytes than the length said (or a reset): visibly cut.
    Cut(usize),
}

/// Read a receiver's response: `Complete` when the body is whole and its
/// SHA-256 is `want`; a whole body with another hash fails the test.
fn receive(mut s: TcpStream, want: &[u8; 32], what: &str) -> Got {
    let raw = match read_to_end_result(&mut s) {
        Ok(raw) => raw,
        Err((_, raw)) => raw,
    };
    if !raw.windows(4).any(|w| w == b"\r\n\r\n") {
        return Got::Cut(0);
    }
    let r = parse_response(&raw);
    assert_eq!(r.status, 200, "{what}: {}", r.text());
    if !r.complete {
        return Got::Cut(r.body.len());
    }
    assert_eq!(&sha256(&r.body), want, "{what}: SHA-256 of the body");
    Got::Complete
}

/// One pipe through the fleet: the sender on `path`, the receiver on the
/// same path without its query, on their own connections in the given
/// order; the sender's body on its own thread. Panics unless it completes.
fn one_pipe(addr: SocketAddr, path: &str, body: Arc<Vec<u8>>, receiver_first: bool) {
    let want = sha256(&body);
    let recv_path = path.split('?').next().unwrap();
    let first = receiver_first.then(|| start_receiver(addr, recv_path));
    let mut s = connect(addr);
    s.write_all(put_head(path, body.len()).as_bytes()).unwrap();
    let what = path.to_string();
    let sender = std::thread::spawn(move || {
        s.write_all(&body).unwrap();
        let r = parse_response(&read_to_end(&mut s));
        assert_eq!(r.status, 200, "{what}: {}", r.text());
        assert!(
            r.text().contains("Sent successfully!"),
            "{what}: {}",
            r.text()
        );
    });
    let receiver = first.unwrap_or_else(|| start_receiver(addr, recv_path));
    assert_eq!(receive(receiver, &want, path), Got::Complete, "{path}");
    sender.join().expect("sender");
}

/// `count` pipes on random paths (a fifth with a query string, which is no
/// part of the key), 16 at a time, bodies of 1 to `max_size` bytes.
fn many_pipes(addr: SocketAddr, rng: &mut Rng, count: usize, max_size: u64) {
    let specs: Vec<(String, Arc<Vec<u8>>, bool)> = (0..count)
        .map(|i| {
            let mut path = format!("/fleet/{}", name(rng, 16));
            if rng.chance(20) {
                path.push_str("?n=1");
            }
            let size = rng.range(1, max_size) as usize;
            let body = Arc::new(pattern(size, rng.next_u64() ^ i as u64));
            (path, body, rng.chance(50))
        })
        .collect();
    let specs = Arc::new(specs);
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..16)
        .map(|_| {
            let (specs, next) = (specs.clone(), next.clone());
            std::thread::spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((path, body, receiver_first)) = specs.get(i) else {
                    return;
                };
                one_pipe(addr, path, body.clone(), *receiver_first);
            })
        })
        .collect();
    for w in workers {
        w.join().expect("a pipe failed");
    }
}

// --- 300 pipes ---------------------------------------------------------------

fn pipes(balancer: Balancer) {
    if !balancer.available("pipes") {
        return;
    }
    let seed = test_seed();
    println!("fleet pipes seed {seed}");
    let mut rng = Rng::new(seed);
    let fleet = Fleet::start(balancer);
    let before = fleet.completed();
    many_pipes(fleet.addr, &mut rng, 300, 256 << 10);
    let after = fleet.completed();
    let carried: Vec<f64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    assert_eq!(carried.iter().sum::<f64>(), 300.0, "{carried:?}");
    for (m, c) in fleet.members.iter().zip(&carried) {
        assert!(
            *c >= 45.0,
            "{} carried {c} of 300 pipes (< 15 %): {carried:?} (seed {seed})",
            m.name
        );
    }
}

#[test]
fn haproxy_300_pipes_spread_over_three_processes() {
    pipes(Balancer::Haproxy);
}

#[test]
fn nginx_300_pipes_spread_over_three_processes() {
    pipes(Balancer::Nginx);
}

// --- every family --------------------------------------------------------------

/// The value of `"key":"..."` in a flat JSON object.
fn json_str(json: &str, key: &str) -> String {
    let pat = format!("\"{key}\"");
    let at = json.find(&pat).unwrap_or_else(|| panic!("{key} in {json}")) + pat.len();
    let rest = json[at..].trim_start().trim_start_matches(':').trim_start();
    let rest = rest.strip_prefix('"').expect("a string value");
    rest[..rest.find('"').unwrap()].to_string()
}

/// The instance prefix of a server-made ID.
fn instance_of(id: &str) -> &str {
    id.split_once('-').map(|(i, _)| i).unwrap_or("")
}

fn post(addr: SocketAddr, path: &str, ctype: &str, body: &str) -> Response {
    exchange(
        addr,
        format!(
            "POST {path} HTTP/1.1\r\nHost: fleet\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
}

fn families(balancer: Balancer) {
    if !balancer.available("families") {
        return;
    }
    let seed = test_seed();
    println!("fleet families seed {seed}");
    let mut rng = Rng::new(seed);
    let fleet = Fleet::start(balancer);
    let lb = fleet.addr;
    let names: Vec<&str> = fleet.members.iter().map(|m| m.name.as_str()).collect();

    // Ephemeral IDs: made wherever `POST /` lands (spread at random), each
    // received through the balancer by its instance prefix.
    let mut made_by = HashMap::new();
    for i in 0..9 {
        let body = pattern(1000 + i, rng.next_u64());
        let mut s = connect(lb);
        let head = format!(
            "POST / HTTP/1.1\r\nHost: fleet\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(&body).unwrap();
        let mut sender = Recorded::new(s);
        sender.wait_for("Ephemeral socket open with ID ");
        let id = sender.wait_for("\n").trim().to_string();
        assert!(
            names.contains(&instance_of(&id)),
            "ID {id} has no instance prefix"
        );
        *made_by.entry(instance_of(&id).to_string()).or_insert(0) += 1;
        // Its status, asked through the balancer, comes from its maker.
        let st = get(lb, &format!("/status/s/{id}")).text();
        assert!(st.contains("\"sender\":true"), "/status/s/{id}: {st}");
        let r = parse_response(&read_to_end(&mut start_receiver(lb, &format!("/s/{id}"))));
        assert_eq!((r.status, sha256(&r.body)), (200, sha256(&body)), "/s/{id}");
        let done = sender.finish();
        assert!(done.text().contains("Upload complete."), "{}", done.text());
    }
    assert!(
        made_by.len() >= 2,
        "9 ephemeral IDs were all made by one process: {made_by:?}"
    );

    // Reservations: the receiver waits first, the upload comes after.
    for _ in 0..3 {
        let r = get(lb, "/reserve");
        assert_eq!(r.status, 200, "{}", r.text());
        let id = json_str(&r.text(), "id");
        assert!(names.contains(&instance_of(&id)), "reservation {id}");
        let receiver = start_receiver(lb, &format!("/s/{id}"));
        wait_until_waiting(&fleet, instance_of(&id), &format!("/s/{id}"));
        let body = pattern(50_000, rng.next_u64());
        let mut s = connect(lb);
        let head = format!(
            "POST /reserve/{id} HTTP/1.1\r\nHost: fleet\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(&body).unwrap();
        assert_eq!(
            receive(receiver, &sha256(&body), "reservation"),
            Got::Complete
        );
        let done = parse_response(&read_to_end(&mut s));
        assert!(done.text().contains("Upload complete."), "{}", done.text());
    }

    // /status/<path> (what the browser page polls) reaches the process
    // that holds <path>: a parked receiver is seen through the balancer.
    // (Hashed on its own path, each probe would find the right process
    // one time in three.)
    for _ in 0..6 {
        let path = format!("/st-{}", name(&mut rng, 10));
        let receiver = start_receiver(lb, &path);
        let deadline = Instant::now() + DEADLINE;
        loop {
            let st = get(lb, &format!("/status{path}")).text();
            if st.contains("\"receivers\":1") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "/status{path} through the balancer never saw the receiver: {st}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let body = pattern(1000, rng.next_u64());
        let mut s = connect(lb);
        s.write_all(put_head(&path, body.len()).as_bytes()).unwrap();
        s.write_all(&body).unwrap();
        assert_eq!(receive(receiver, &sha256(&body), &path), Got::Complete);
        read_to_end(&mut s);
    }

    // A swarm of three: the initiator and two peers that join by its ID.
    let mut init = SseClient::open(lb, "/signal");
    assert_eq!(init.status, 200);
    let connect_ev = init.next_event().expect("connect");
    assert_eq!(connect_ev.event.as_deref(), Some("connect"));
    let swarm = json_str(&connect_ev.data, "id");
    let token = json_str(&connect_ev.data, "token");
    assert!(names.contains(&instance_of(&swarm)), "swarm {swarm}");
    let mut peers: Vec<SseClient> = (0..2)
        .map(|_| {
            let mut p = SseClient::open(lb, &format!("/signal/{swarm}"));
            assert_eq!(p.status, 200, "join {swarm}");
            assert_eq!(p.next_event().unwrap().event.as_deref(), Some("connect"));
            p
        })
        .collect();
    for _ in 0..2 {
        assert_eq!(init.next_event().unwrap().event.as_deref(), Some("join"));
    }
    let r = post(
        lb,
        &format!("/signal/{swarm}"),
        "application/json",
        &format!("{{\"token\":\"{token}\",\"data\":{{\"sdp\":\"x\"}}}}"),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("delivered to 3 peer(s)"), "{}", r.text());
    for c in std::iter::once(&mut init).chain(peers.iter_mut()) {
        let ev = c.next_event().expect("signal");
        assert_eq!(
            (ev.event.as_deref(), ev.data.as_str()),
            (Some("signal"), "{\"sdp\":\"x\"}")
        );
    }
    drop((init, peers));

    // A topic with three subscribers.
    let topic = format!("/events/{}", name(&mut rng, 12).replace('-', "x"));
    let mut subs: Vec<SseClient> = (0..3)
        .map(|_| {
            let s = SseClient::open(lb, &topic);
            assert_eq!(s.status, 200, "{topic}");
            s
        })
        .collect();
    let r = post(lb, &topic, "text/plain", "hello fleet");
    assert_eq!((r.status, r.text().as_str()), (200, "3\n"), "{topic}");
    for s in &mut subs {
        assert_eq!(s.next_event().expect("event").data, "hello fleet");
    }
    drop(subs);

    // A WebSocket pipe: both peers on one path.
    let path = format!("/ws-{}", name(&mut rng, 12));
    let mut a = ws_connect(lb, &path);
    let mut b = ws_connect(lb, &path);
    ws_send(&mut a, true, OpCode::Text, b"from a");
    assert_eq!(ws_recv(&mut b).expect("at b").payload, b"from a");
    ws_send(&mut b, true, OpCode::Binary, &[1, 2, 3]);
    assert_eq!(ws_recv(&mut a).expect("at a").payload, [1, 2, 3]);
    drop((a, b));

    // SockJS over xhr-polling: two sessions on one channel meet (the key is
    // the channel, not the session).
    let base = format!("/sockjs/{}", name(&mut rng, 12).replace('-', "x"));
    let xhr = |session: &str| {
        let r = post(lb, &format!("{base}/000/{session}/xhr"), "text/plain", "");
        assert_eq!(r.status, 200, "{base} {session}");
        r.text()
    };
    assert_eq!(xhr("alice"), "o\n");
    assert_eq!(xhr("bob"), "o\n");
    let r = post(
        lb,
        &format!("{base}/000/alice/xhr_send"),
        "text/plain",
        r#"["hi bob"]"#,
    );
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(xhr("bob"), "a[\"hi bob\"]\n");
}

/// Wait until member `name` has a waiting pipe (a parked receiver).
fn wait_until_waiting(fleet: &Fleet, name: &str, what: &str) {
    let m = fleet.members.iter().find(|m| m.name == name).unwrap();
    let deadline = Instant::now() + DEADLINE;
    while metrics(m.addr)["weir_pipes{state=\"waiting\"}"] < 1.0 {
        assert!(Instant::now() < deadline, "{what} never waited on {name}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn haproxy_every_family_through_the_balancer() {
    families(Balancer::Haproxy);
}

#[test]
fn nginx_every_family_through_the_balancer() {
    families(Balancer::Nginx);
}

// --- a process dies, and comes back ---------------------------------------------

/// The size of each transfer in flight when the process is killed, and how
/// much of it is sent before.
const BIG: usize = 2 << 20;
const FIRST: usize = 256 << 10;

fn process_dies_and_returns(balancer: Balancer) {
    if !balancer.available("process dies and returns") {
        return;
    }
    let seed = test_seed();
    println!("fleet kill seed {seed}");
    let mut rng = Rng::new(seed);
    let mut fleet = Fleet::start(balancer);
    let lb = fleet.addr;

    // 30 transfers streaming: the first FIRST bytes sent, and a receiver
    // that has some of them; the rest is sent on "go".
    const N: usize = 30;
    let mut go = Vec::new();
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let results = Arc::new(Mutex::new(Vec::new()));
    let mut threads = Vec::new();
    for i in 0..N {
        let path = format!("/kill/{}", name(&mut rng, 16));
        let body = Arc::new(pattern(BIG, rng.next_u64() ^ i as u64));
        let want = sha256(&body);
        let (go_tx, go_rx) = mpsc::channel::<()>();
        go.push(go_tx);
        let mut s = connect(lb);
        s.write_all(put_head(&path, BIG).as_bytes()).unwrap();
        let b = body.clone();
        threads.push(std::thread::spawn(move || {
            let _ = s.write_all(&b[..FIRST]);
            let _ = go_rx.recv();
            // A cut sender's writes fail: that is expected.
            let _ = s.write_all(&b[FIRST..]);
            let _ = read_to_end_result(&mut s);
        }));
        let mut r = start_receiver(lb, &path);
        let (ready, results) = (ready_tx.clone(), results.clone());
        threads.push(std::thread::spawn(move || {
            // The head and the first body bytes: the transfer is streaming.
            let mut got = Vec::new();
            let mut buf = [0u8; 65536];
            let deadline = Instant::now() + DEADLINE;
            while !got.windows(4).any(|w| w == b"\r\n\r\n") || got.len() < 32 << 10 {
                assert!(Instant::now() < deadline, "{path}: nothing streamed");
                match r.read(&mut buf) {
                    Ok(0) => panic!("{path}: closed before streaming"),
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(e) => panic!("{path}: {e}"),
                }
            }
            ready.send(()).unwrap();
            let rest = match read_to_end_result(&mut r) {
                Ok(rest) => rest,
                Err((_, rest)) => rest,
            };
            got.extend_from_slice(&rest);
            let resp = parse_response(&got);
            let outcome = if resp.complete {
                assert_eq!(sha256(&resp.body), want, "{path}: SHA-256");
                Got::Complete
            } else {
                Got::Cut(resp.body.len())
            };
            results.lock().unwrap().push(outcome);
        }));
    }
    for _ in 0..N {
        ready_rx
            .recv_timeout(DEADLINE)
            .expect("every transfer streaming");
    }
    let streaming = fleet.metric("weir_pipes{state=\"streaming\"}");
    assert_eq!(streaming.iter().sum::<f64>(), N as f64, "{streaming:?}");
    let on_w2 = streaming[1] as usize;
    assert!(on_w2 > 0, "no transfer on w2: {streaming:?} (seed {seed})");

    // An ephemeral socket that w2 made, waiting for its receiver (`POST /`
    // lands on a random process: try until w2 makes one).
    let mut w2_socket = None;
    for _ in 0..60 {
        let mut s = connect(lb);
        s.write_all(
            b"POST / HTTP/1.1\r\nHost: fleet\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
        )
        .unwrap();
        let mut sender = Recorded::new(s);
        sender.wait_for("Ephemeral socket open with ID ");
        let id = sender.wait_for("\n").trim().to_string();
        if instance_of(&id) == "w2" {
            w2_socket = Some((id, sender));
            break;
        }
    }
    let (w2_id, w2_sender) = w2_socket.expect("w2 made none of 60 IDs");

    fleet.kill(1);
    for g in &go {
        let _ = g.send(());
    }
    for t in threads {
        t.join().expect("a party");
    }
    let results = results.lock().unwrap();
    let cut = results.iter().filter(|g| matches!(g, Got::Cut(_))).count();
    let complete = results.iter().filter(|g| **g == Got::Complete).count();
    assert_eq!(
        (cut, complete),
        (on_w2, N - on_w2),
        "only w2's transfers are cut: {results:?} (seed {seed})"
    );
    for g in results.iter() {
        if let Got::Cut(n) = g {
            assert!(*n < BIG, "a cut receiver saw every byte");
        }
    }
    drop(results);

    // New transfers succeed on the two left, once the balancer knows
    // (HAProxy: its health checks; nginx: the first refused connection).
    fleet.wait_health(1, false);
    drop(w2_sender);

    // Its ID is gone with it, and the balancer says so.
    let r = get(lb, &format!("/s/{w2_id}"));
    match balancer {
        Balancer::Haproxy => {
            assert_eq!(r.status, 404, "{}", r.text());
            assert!(
                r.text()
                    .starts_with("[ERROR] The relay process w2 that made this ID is down"),
                "{}",
                r.text()
            );
        }
        Balancer::Nginx => assert_eq!(r.status, 502, "{}", r.text()),
    }
    let survivors = |f: &Fleet| {
        let c = f.completed();
        c[0] + c[2]
    };
    let before = survivors(&fleet);
    many_pipes(lb, &mut rng, 30, 64 << 10);
    assert_eq!(survivors(&fleet) - before, 30.0);

    // Back on its address, it takes traffic again.
    fleet.restart(1);
    let w2 = fleet.members[1].addr;
    if balancer == Balancer::Nginx {
        // nginx tries the failed server again after fail_timeout: probe
        // (cheap HEADs on event topics) until one reaches it.
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut i = 0;
        loop {
            let seen = metrics(w2)["weir_requests_total"];
            let r = exchange(
                lb,
                format!(
                    "HEAD /events/probe{i} HTTP/1.1\r\nHost: fleet\r\nConnection: close\r\n\r\n"
                )
                .as_bytes(),
            );
            assert_eq!(r.status, 200);
            // The scrape itself counts one request.
            if metrics(w2)["weir_requests_total"] > seen + 1.0 {
                break;
            }
            assert!(Instant::now() < deadline, "nginx never tried w2 again");
            i += 1;
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let before = fleet.completed()[1];
    many_pipes(lb, &mut rng, 60, 64 << 10);
    let took = fleet.completed()[1] - before;
    assert!(
        took >= 6.0,
        "the restarted w2 carried {took} of 60 new pipes (seed {seed})"
    );
}

#[test]
fn haproxy_a_dying_process_cuts_only_its_own_transfers_and_returns() {
    process_dies_and_returns(Balancer::Haproxy);
}

#[test]
fn nginx_a_dying_process_cuts_only_its_own_transfers_and_returns() {
    process_dies_and_returns(Balancer::Nginx);
}

// --- curl -T, which asks Expect: 100-continue -----------------------------------

/// `curl -T` (which sends `Expect: 100-continue`) uploads 32 MB through the
/// balancer to a `curl` downloading it, the receiver first. The fleet runs
/// weir with `--sender-progress held` (scripts/fleet.sh): with live
/// progress HAProxy stalls such an upload near its end (docs/scale-out.md).
fn curl_upload_with_expect(balancer: Balancer) {
    if !balancer.available("curl upload") {
        return;
    }
    let fleet = Fleet::start(balancer);
    let body = pattern(32 << 20, 77);
    let file = TempFile::new("fleet-upload", &body);
    let out = TempFile::new("fleet-download", b"");
    let url = format!("http://{}/curl/upload", fleet.addr);
    let receiver = Curl::spawn(&["-sS", "-o", out.path_str(), &url]);
    let w = fleet.metric("weir_pipes{state=\"waiting\"}");
    let deadline = Instant::now() + DEADLINE;
    while fleet
        .metric("weir_pipes{state=\"waiting\"}")
        .iter()
        .sum::<f64>()
        < 1.0
    {
        assert!(
            Instant::now() < deadline,
            "the receiver never waited: {w:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let (status, said, err) = curl(&["-sS", "-T", file.path_str(), &url]);
    let said = String::from_utf8_lossy(&said).into_owned();
    assert!(status.success(), "sender: {status} {err} {said}");
    assert!(
        said.contains("Sent successfully! (33554432 bytes)"),
        "{said}"
    );
    let (status, _, err) = receiver.finish();
    assert!(status.success(), "receiver: {status} {err}");
    let got = std::fs::read(&out.path).unwrap();
    assert_eq!(sha256(&got), sha256(&body), "{} bytes", got.len());
}

#[test]
fn haproxy_curl_upload_with_expect_completes() {
    curl_upload_with_expect(Balancer::Haproxy);
}

#[test]
fn nginx_curl_upload_with_expect_completes() {
    curl_upload_with_expect(Balancer::Nginx);
}
