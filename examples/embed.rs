//! Embedding weir: an ephemeral-socket relay with its own texts and a
//! progress log, the Rust counterpart of mounting a middleware in a web app.
//!
//! Run it with `cargo run --example embed`, then in another terminal:
//!
//! ```text
//! curl -T - http://127.0.0.1:8080/ < some-file      # prints the download URL
//! curl http://127.0.0.1:8080/s/<id> > copy           # receives it
//! ```
//!
//! Hooks run on the relay's thread and must not block, so this one only
//! formats strings and hands log lines to another thread over a channel.

use std::sync::mpsc::{channel, Sender};
use std::time::Duration;

use weir::{Config, Hooks, Server};

/// Custom texts for uploaders, and one log line per moment.
#[derive(Debug)]
pub struct Announcer {
    log: Sender<String>,
}

impl Announcer {
    /// Log lines go to `log`.
    pub fn new(log: Sender<String>) -> Announcer {
        Announcer { log }
    }

    fn note(&self, line: String) {
        // A closed log must not stop the relay.
        let _ = self.log.send(line);
    }
}

impl Hooks for Announcer {
    fn opened(&mut self, id: &str, url: &str) -> Option<String> {
        self.note(format!("opened {id}"));
        Some(format!("Your upload waits for its reader at:\n{url}\n"))
    }

    fn reserved(&mut self, id: &str, expires_in: Duration) {
        self.note(format!("reserved {id} for {}s", expires_in.as_secs()));
    }

    fn connected(&mut self, id: &str) -> Option<String> {
        self.note(format!("connected {id}"));
        Some("Someone is reading it now.\n".to_string())
    }

    fn progress(&mut self, id: &str, bytes: u64) {
        self.note(format!("progress {id} {bytes}"));
    }

    fn end(&mut self, id: &str, bytes: u64, took: Duration) -> Option<String> {
        self.note(format!("end {id} {bytes}"));
        Some(format!(
            "Delivered {bytes} bytes in {:.1} s. Nothing was kept.\n",
            took.as_secs_f64()
        ))
    }

    fn timeout(&mut self, id: &str) -> Option<String> {
        self.note(format!("timeout {id}"));
        Some("Nobody came for it; the link is gone.\n".to_string())
    }

    fn not_found(&mut self, id: &str) -> Option<String> {
        self.note(format!("not-found {id}"));
        None
    }
}

#[allow(dead_code)]
fn main() -> std::io::Result<()> {
    let config = Config {
        reservations: true,
        ..Config::default()
    };
    let mut server = Server::bind(config)?;
    let (tx, rx) = channel();
    server.set_hooks(Box::new(Announcer::new(tx)));
    std::thread::spawn(move || {
        for line in rx {
            eprintln!("[embed] {line}");
        }
    });
    for addr in server.local_addrs() {
        eprintln!("[embed] relay on http://{addr}/");
    }
    server.handle_signals()?;
    server.run()
}
