//! A relay to test against, and how to watch it: [`Relay`] runs a
//! `weir::Server` on a thread of the test process, [`Binary`] runs the
//! real `weir` binary as a child (for its resident set, open files, limits
//! and signals); `/metrics` is read and polled until a state shows.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use weir::{Config, Server, StopHandle};

use super::http::get;
use super::net::connect;
use super::DEADLINE;

/// A relay running on a thread of the test process.
pub struct Relay {
    pub addr: SocketAddr,
    /// The first HTTPS address, when the config asked for TLS.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub tls_addr: Option<SocketAddr>,
    stop: StopHandle,
    thread: Option<JoinHandle<()>>,
}

impl Relay {
    pub fn start() -> Relay {
        Relay::with(|_| {})
    }

    pub fn with(f: impl FnOnce(&mut Config)) -> Relay {
        Relay::with_hooks(f, None)
    }

    pub fn with_hooks(f: impl FnOnce(&mut Config), hooks: Option<Box<dyn weir::Hooks>>) -> Relay {
        let mut config = Config {
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            shutdown_grace: Duration::from_secs(1),
            ..Config::default()
        };
        f(&mut config);
        let mut server = Server::bind(config).expect("bind");
        if let Some(h) = hooks {
            server.set_hooks(h);
        }
        let addr = server.local_addrs()[0];
        let tls_addr = server.tls_addrs().first().copied();
        let stop = server.stop_handle();
        let thread = std::thread::spawn(move || server.run().expect("run"));
        Relay {
            addr,
            tls_addr,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn connect(&self) -> TcpStream {
        connect(self.addr)
    }

    /// The `/metrics` values by full series name (`weir_pipes{state="waiting"}`).
    pub fn metrics(&self) -> HashMap<String, f64> {
        metrics(self.addr)
    }

    pub fn metric(&self, name: &str) -> f64 {
        self.metrics().get(name).copied().unwrap_or(f64::NAN)
    }

    /// Poll `/metrics` until `name` equals `value`, or panic at the deadline.
    pub fn wait_metric(&self, name: &str, value: f64) {
        wait_metric(self.addr, name, value)
    }

    /// After a scenario: nothing left open, nothing left waiting.
    pub fn assert_idle(&self) {
        self.wait_metric("weir_connections", 0.0);
        self.wait_metric("weir_pipes{state=\"waiting\"}", 0.0);
        self.wait_metric("weir_pipes{state=\"streaming\"}", 0.0);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The real `weir` binary as a child process (for RSS and signals).
pub struct Binary {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Binary {
    pub fn start(args: &[&str]) -> Binary {
        // Pick a free port by binding and releasing it; retried on a clash.
        for _ in 0..20 {
            let port = {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                l.local_addr().unwrap().port()
            };
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
                .arg("--listen")
                .arg(addr.to_string())
                .args(args)
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn weir");
            let deadline = Instant::now() + DEADLINE;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if TcpStream::connect(addr).is_ok() {
                    return Binary { child, addr };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("weir did not start");
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident set size in KiB, from /proc.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    /// Like [`Binary::start`], with the open-file limit lowered to `nofile`
    /// (through the shell's `ulimit`, then `exec`, so the pid is weir's).
    pub fn start_with_nofile(nofile: u32, args: &[&str]) -> Binary {
        for _ in 0..20 {
            let port = {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                l.local_addr().unwrap().port()
            };
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            let mut child = Command::new("bash")
                .arg("-c")
                .arg(format!("ulimit -n {nofile} && exec \"$0\" \"$@\""))
                .arg(env!("CARGO_BIN_EXE_weir"))
                .arg("--listen")
                .arg(addr.to_string())
                .args(args)
                .env("RUST_LOG", "error")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn weir under ulimit");
            let deadline = Instant::now() + DEADLINE;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if let Ok(s) = TcpStream::connect(addr) {
                    drop(s);
                    // The probe is a connection too: wait until the relay
                    // answers, so it is accepted and gone before the test.
                    let r = get(addr, "/healthz");
                    assert_eq!(r.status, 200);
                    return Binary { child, addr };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("weir did not start under ulimit");
    }

    /// The open-file limit the running relay actually has.
    pub fn nofile_limit(&self) -> u64 {
        let limits = std::fs::read_to_string(format!("/proc/{}/limits", self.pid())).unwrap();
        limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .and_then(|l| l.split_whitespace().nth(3))
            .and_then(|v| v.parse().ok())
            .expect("Max open files")
    }

    /// File descriptors the relay holds now.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time (user + system) a process has used, in clock ticks.
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // Fields after the command name (which may hold spaces) start at ')'.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 here.
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

pub fn metrics(addr: SocketAddr) -> HashMap<String, f64> {
    let r = get(addr, "/metrics");
    assert_eq!(r.status, 200);
    r.text()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

pub fn wait_metric(addr: SocketAddr, name: &str, value: f64) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let got = metrics(addr).get(name).copied();
        if got == Some(value) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} is {got:?}, expected {value}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The relay still answers a plain request: `GET /healthz` is `200 ok`.
pub fn assert_serves(addr: SocketAddr) {
    let r = get(addr, "/healthz");
    assert_eq!(r.status, 200, "{:?}", r.text());
    assert_eq!(r.body, b"ok\n");
}
