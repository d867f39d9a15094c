//! curl as a client (`/usr/bin/curl`, bounded by `--max-time`): run to
//! completion, or spawned with its stdout lines on a channel so a test can
//! wait for one line with a deadline.

use std::io::{self, Read};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::DEADLINE;

/// A running curl whose stdout lines arrive on a channel, so that a test
/// can wait for one line with a deadline.
pub struct Curl {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    stderr: Option<JoinHandle<String>>,
}

impl Curl {
    /// `curl --max-time 20 ARGS...`; curl's own limit bounds every wait.
    pub fn spawn(args: &[&str]) -> Curl {
        let mut child = Command::new("/usr/bin/curl")
            .arg("--max-time")
            .arg(DEADLINE.as_secs().to_string())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn curl");
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        Curl {
            child,
            lines: rx,
            stderr: Some(stderr),
        }
    }

    /// The next line of curl's stdout, or panic at the deadline.
    pub fn next_line(&self) -> String {
        self.lines
            .recv_timeout(DEADLINE)
            .expect("a line from curl within the deadline")
    }

    /// Wait for curl to end; its remaining stdout lines and its stderr.
    pub fn finish(mut self) -> (std::process::ExitStatus, Vec<String>, String) {
        let mut rest = Vec::new();
        let deadline = Instant::now() + DEADLINE + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => rest.push(l),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                Err(e) => panic!("curl stdout did not end: {e}"),
            }
        }
        let status = self.child.wait().expect("wait for curl");
        let stderr = self.stderr.take().unwrap().join().unwrap();
        (status, rest, stderr)
    }
}

impl Drop for Curl {
    fn drop(&mut self) {
        // Only if a test failed before `finish`: do not leave curl behind.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Run curl to completion: (exit status, stdout, stderr).
pub fn curl(args: &[&str]) -> (std::process::ExitStatus, Vec<u8>, String) {
    let out = Command::new("/usr/bin/curl")
        .arg("--max-time")
        .arg(DEADLINE.as_secs().to_string())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run curl");
    (
        out.status,
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
