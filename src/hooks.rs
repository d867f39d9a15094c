//! Hooks: the moments of an ephemeral socket's life, for embedders.
//!
//! A [`Hooks`] implementation observes each moment and may replace the
//! text weir writes to the client at that moment (return `Some(text)`), or
//! keep the default (return `None`). Every method has a default that keeps
//! weir's own text, so an embedder implements only what it needs.
//!
//! Hooks run on the event loop's thread, inside the loop turn that saw the
//! moment. They must not block or do slow work (no network or disk I/O, no
//! locks that another thread may hold for long): while a hook runs, no
//! other client is served. Hand work to another thread through a channel.
//!
//! Replacement texts are written as they are. A text for a streaming
//! response (`opened`, `connected`, `end`, `timeout`) should end with a
//! newline; texts for error answers are placed after `[ERROR] `.

use std::time::Duration;

/// Observes and may re-word the moments of an ephemeral socket.
pub trait Hooks: Send {
    /// A sender's `POST /` got its ID. Default text: the line
    /// `Ephemeral socket open with ID <id>` and the download URL.
    fn opened(&mut self, id: &str, url: &str) -> Option<String> {
        let _ = (id, url);
        None
    }

    /// `GET /reserve` made a reservation (observe only: the JSON answer is
    /// fixed, as clients parse it).
    fn reserved(&mut self, id: &str, expires_in: Duration) {
        let _ = (id, expires_in);
    }

    /// The receiver arrived; the transfer starts. Default text:
    /// `Receiver connected. Sending...`.
    fn connected(&mut self, id: &str) -> Option<String> {
        let _ = id;
        None
    }

    /// Bytes relayed so far (observe only). Called at most once per MiB
    /// relayed, and once at the end.
    fn progress(&mut self, id: &str, bytes: u64) {
        let _ = (id, bytes);
    }

    /// The transfer ended with every byte delivered. Default text:
    /// `Upload complete. Socket deleted. (<bytes> bytes)`.
    fn end(&mut self, id: &str, bytes: u64, took: Duration) -> Option<String> {
        let _ = (id, bytes, took);
        None
    }

    /// Nobody asked for the socket within the TTL. Default text:
    /// `Timed out. No one requested your socket.`.
    fn timeout(&mut self, id: &str) -> Option<String> {
        let _ = id;
        None
    }

    /// A `GET /s/<id>` or `POST /reserve/<id>` named an unknown, spent or
    /// expired ID (`404`). The text follows `[ERROR] `.
    fn not_found(&mut self, id: &str) -> Option<String> {
        let _ = id;
        None
    }

    /// An upload was over `--max-upload-bytes` (`413`, or a cut when the
    /// length was not declared). The text follows `[ERROR] `.
    fn too_large(&mut self, limit: u64) -> Option<String> {
        let _ = limit;
        None
    }

    /// `GET /reserve` without a matching `Referer`/`Origin` (`403`). The
    /// text follows `[ERROR] `.
    fn referer_rejected(&mut self, referer: Option<&str>) -> Option<String> {
        let _ = referer;
        None
    }
}

/// Keeps every default text.
#[derive(Debug, Default, Clone, Copy)]
pub struct DefaultHooks;

impl Hooks for DefaultHooks {}

/// The default texts, in one place.
pub mod text {
    /// `opened`.
    pub fn opened(id: &str, url: &str) -> String {
        format!("Ephemeral socket open with ID {id}\n{url}\n")
    }
    /// `connected`.
    pub fn connected() -> String {
        "Receiver connected. Sending...\n".to_string()
    }
    /// `end`.
    pub fn end(bytes: u64) -> String {
        format!("Upload complete. Socket deleted. ({bytes} bytes)\n")
    }
    /// `timeout`.
    pub fn timeout() -> String {
        "Timed out. No one requested your socket.\n".to_string()
    }
    /// `not_found`.
    pub fn not_found(id: &str) -> String {
        format!("No socket with ID {id}: it never existed, was already received, or expired.")
    }
    /// `too_large`.
    pub fn too_large(limit: u64) -> String {
        format!("The upload is larger than the limit of {limit} bytes.")
    }
    /// `referer_rejected`.
    pub fn referer_rejected() -> String {
        "Reservations are only made for pages of the configured site (Referer/Origin).".to_string()
    }
}
