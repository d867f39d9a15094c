//! Configuration: every limit the relay enforces, with documented defaults.
//!
//! `Config::default()` is what `weir` runs with when given no flags. The
//! command line (`src/main.rs`) is the only place that reads arguments or the
//! environment; the library takes a `Config` value.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// When a pipe sender's response (its `200` head and progress lines) is
/// written.
///
/// Some reverse proxies (nginx among them) stop forwarding a request body
/// once the upstream's response has begun, so a sender behind one must not
/// see a byte of its response before its body has been read. Direct clients
/// want the live lines (`Waiting for 1 receiver(s)...`). docs/protocol.md
/// ("The sender's response") has the reasons.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SenderProgress {
    /// Live when the request carried `Expect: 100-continue` (curl sends it
    /// with `-T`; nginx never forwards it), held otherwise. `POST /` is
    /// always live: its first lines carry the new ID.
    Auto,
    /// Always live (only for clients that read while they upload, with no
    /// such proxy in front).
    Live,
    /// Always held until the body has been read (behind a proxy that
    /// forwards `Expect` but still stops at an early answer).
    Held,
}

impl SenderProgress {
    /// Parse `auto`, `live` or `held`.
    pub fn parse(v: &str) -> Option<SenderProgress> {
        match v.trim().to_ascii_lowercase().as_str() {
            "auto" => Some(SenderProgress::Auto),
            "live" => Some(SenderProgress::Live),
            "held" => Some(SenderProgress::Held),
            _ => None,
        }
    }

    /// The flag's spelling.
    pub fn name(self) -> &'static str {
        match self {
            SenderProgress::Auto => "auto",
            SenderProgress::Live => "live",
            SenderProgress::Held => "held",
        }
    }

    /// Whether a sender that did (`expect_continue`) or did not ask
    /// `Expect: 100-continue` gets its response only after its body.
    pub fn holds(self, expect_continue: bool) -> bool {
        match self {
            SenderProgress::Auto => !expect_continue,
            SenderProgress::Live => false,
            SenderProgress::Held => true,
        }
    }
}

/// Everything the server needs to know before it starts.
#[derive(Clone, Debug)]
pub struct Config {
    /// Addresses to listen on (default `127.0.0.1:8080`).
    pub listen: Vec<SocketAddr>,
    /// How long a sender or receiver may wait for its peer (default 600 s).
    pub ttl: Duration,
    /// Per-transfer byte limit; 0 means none (default 1 GiB).
    pub max_upload_bytes: u64,
    /// Ring buffer per streaming pipe, rounded up to a power of two (default 64 KiB).
    pub buffer_size: usize,
    /// Most pipes streaming at once; each holds one ring (default 1024).
    /// Past it a pipe that would start is answered `503`.
    pub max_streaming_pipes: usize,
    /// Accepted connections at once (default 10,000).
    pub max_connections: usize,
    /// Largest `?n=` (default 16).
    pub max_receivers: usize,
    /// Time allowed to send a request head, and to idle between keep-alive
    /// requests (default 10 s).
    pub head_timeout: Duration,
    /// Largest request head in bytes (default 16 KiB); past it `431`.
    pub max_head_bytes: usize,
    /// Largest request target in bytes (default 4 KiB); past it `414`.
    pub max_target_bytes: usize,
    /// How long a finished connection is drained after its response before it
    /// is closed, so that unread client bytes do not turn into a reset that
    /// destroys the response in flight (default 2 s).
    pub linger: Duration,
    /// On SIGINT/SIGTERM, how long running transfers may go on (default 30 s).
    pub shutdown_grace: Duration,
    /// Characters in a server-assigned ID (default 12 = 72 random bits).
    pub id_length: usize,
    /// This process's name in a fleet behind a load balancer (default
    /// none). Every ID the server makes for a URL (`POST /`, `GET /reserve`,
    /// `GET /signal`) starts with `NAME-`, so the balancer can send later
    /// requests for it to this process (docs/scale-out.md).
    pub instance: Option<String>,
    /// Enable `GET /reserve` and `POST /reserve/<id>` (default off).
    pub reservations: bool,
    /// When set, `GET /reserve` needs a `Referer` or `Origin` matching it.
    pub required_referer: Option<String>,
    /// Build download URLs from `X-Forwarded-Proto`/`X-Forwarded-Host`
    /// (only behind a proxy that sets them; default off).
    pub trust_proxy: bool,
    /// Comment heartbeat on event streams (default 25 s).
    pub heartbeat: Duration,
    /// Largest `POST /signal/<id>` body (default 10 KiB); past it `413`.
    pub signal_body_limit: usize,
    /// Largest `POST /events/<topic>` body (default 64 KiB); past it `413`.
    pub event_body_limit: usize,
    /// Bytes an event stream may fall behind before it is dropped
    /// (default 256 KiB).
    pub stream_queue_bytes: usize,
    /// Peers in one signal swarm, the initiator included (default 64).
    pub max_swarm_peers: usize,
    /// Signal swarms at once (default 10,000).
    pub max_swarms: usize,
    /// Event topics with subscribers at once (default 10,000).
    pub max_topics: usize,
    /// Move bodies of one-receiver, known-length transfers with `splice(2)`
    /// through a kernel pipe instead of the ring (Linux; default on).
    pub splice: bool,
    /// Bytes the kernel pipes of spliced transfers may grow by past
    /// `buffer_size`, all together: a transfer that keeps its pipe full
    /// doubles it, up to 1 MiB, while this lasts (default 16 MiB; 0 = never
    /// grow). Kernel memory, counted in the memory bound (rule R10).
    pub splice_budget: usize,
    /// Largest WebSocket message (and frame) accepted; past it close 1009
    /// (default 16 MiB).
    pub ws_max_message: u64,
    /// Waiting (parked) senders, receivers and WebSocket peers one client
    /// IP may hold at once; 0 = no limit (default 500).
    pub max_parked_per_ip: usize,
    /// A SockJS session with no receiving connection ends after this
    /// (default 5 s).
    pub sockjs_disconnect_delay: Duration,
    /// A SockJS streaming response ends after this many bytes; the client
    /// opens a new one (default 128 KiB).
    pub sockjs_response_limit: usize,
    /// When a pipe sender's response is written (default `Auto`).
    pub sender_progress: SenderProgress,
    /// Bytes of messages being assembled whole, across all connections
    /// (event and signal posts, SockJS sends, WebSocket messages held to be
    /// echoed or parsed); past it the client gets the protocol's "too big"
    /// answer (default 32 MiB).
    pub message_budget: usize,
    /// Addresses that speak TLS (feature `tls`); empty with a certificate
    /// means `127.0.0.1:8443`.
    pub tls_listen: Vec<SocketAddr>,
    /// PEM file with the certificate chain, leaf first (feature `tls`).
    /// Read at start and again on `SIGHUP`.
    pub tls_cert: Option<PathBuf>,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1; RSA, ECDSA
    /// or Ed25519).
    pub tls_key: Option<PathBuf>,
    /// Access rules (`--auth FILE`, docs/auth.md); `None` is an open relay
    /// (default).
    pub auth: Option<std::sync::Arc<crate::auth::Rules>>,
    /// Where `auth` came from: reread on `SIGHUP` (a file that cannot be
    /// read or parsed keeps the rules in use).
    pub auth_file: Option<PathBuf>,
    /// Serve `/metrics` and `/healthz` on this address; the public
    /// addresses then answer `/metrics` with `404` (default none: `/metrics`
    /// on every address).
    pub metrics_listen: Option<SocketAddr>,
    /// Called after a burst of connections has gone and the relay's tables
    /// have let go of what they no longer use, at most once a second: a
    /// chance to return the allocator's free pages to the kernel (the
    /// `weir` binary passes glibc's `malloc_trim`). `None` (the default):
    /// nothing more.
    pub release_memory: Option<fn()>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 8080))],
            ttl: Duration::from_secs(600),
            max_upload_bytes: 1 << 30,
            buffer_size: 64 * 1024,
            max_streaming_pipes: 1024,
            max_connections: 10_000,
            max_receivers: 16,
            head_timeout: Duration::from_secs(10),
            max_head_bytes: 16 * 1024,
            max_target_bytes: 4 * 1024,
            linger: Duration::from_secs(2),
            shutdown_grace: Duration::from_secs(30),
            id_length: 12,
            instance: None,
            reservations: false,
            required_referer: None,
            trust_proxy: false,
            heartbeat: Duration::from_secs(25),
            signal_body_limit: 10 * 1024,
            event_body_limit: 64 * 1024,
            stream_queue_bytes: 256 * 1024,
            max_swarm_peers: 64,
            max_swarms: 10_000,
            max_topics: 10_000,
            splice: cfg!(target_os = "linux"),
            splice_budget: 16 << 20,
            ws_max_message: 16 << 20,
            max_parked_per_ip: 500,
            sockjs_disconnect_delay: Duration::from_secs(5),
            sockjs_response_limit: 128 * 1024,
            sender_progress: SenderProgress::Auto,
            message_budget: 32 << 20,
            tls_listen: Vec::new(),
            tls_cert: None,
            tls_key: None,
            auth: None,
            auth_file: None,
            metrics_listen: None,
            release_memory: None,
        }
    }
}

/// A configuration value that cannot work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Where TLS listens when a certificate is given and no `--tls-listen`.
pub const DEFAULT_TLS_LISTEN: ([u8; 4], u16) = ([127, 0, 0, 1], 8443);

impl Config {
    /// The TLS addresses to bind: none without a certificate.
    pub fn tls_addrs(&self) -> Vec<SocketAddr> {
        if self.tls_cert.is_none() {
            return Vec::new();
        }
        if self.tls_listen.is_empty() {
            return vec![SocketAddr::from(DEFAULT_TLS_LISTEN)];
        }
        self.tls_listen.clone()
    }

    /// Check that the values can work together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |s: &str| Err(ConfigError(s.to_string()));
        if self.listen.is_empty() {
            return err("at least one --listen address is needed");
        }
        if self.buffer_size < 1024 || self.buffer_size > 64 << 20 {
            return err("--buffer-size must be between 1024 and 67108864");
        }
        if self.max_connections < 2 {
            return err("--max-connections must be at least 2");
        }
        if self.max_receivers == 0 || self.max_receivers > 1024 {
            return err("--max-receivers must be between 1 and 1024");
        }
        if self.max_streaming_pipes == 0 {
            return err("--max-streaming-pipes must be at least 1");
        }
        if self.max_head_bytes < 256 || self.max_head_bytes > 1 << 20 {
            return err("--max-head-bytes must be between 256 and 1048576");
        }
        if self.max_target_bytes < 16 || self.max_target_bytes > self.max_head_bytes {
            return err("--max-target-bytes must be between 16 and --max-head-bytes");
        }
        if self.id_length < 8 || self.id_length > 64 {
            return err("--id-length must be between 8 and 64");
        }
        if let Some(name) = &self.instance {
            if !crate::ids::valid_instance(name) {
                return err(
                    "--instance must be 1 to 32 characters of A-Z a-z 0-9 _ (no '-': it ends the prefix)",
                );
            }
        }
        if let Some(r) = &self.required_referer {
            if !(r.starts_with("http://") || r.starts_with("https://")) {
                return err("--required-referer must be an http:// or https:// URL");
            }
        }
        if self.heartbeat.is_zero() {
            return err("--heartbeat must be positive");
        }
        if self.stream_queue_bytes < 1024 {
            return err("--stream-queue-bytes must be at least 1024");
        }
        if self.max_swarm_peers < 2 {
            return err("--max-swarm-peers must be at least 2");
        }
        if self.message_budget < 64 * 1024 {
            return err("--message-budget must be at least 65536");
        }
        if let Some(m) = self.metrics_listen {
            if m.port() != 0 && (self.listen.contains(&m) || self.tls_addrs().contains(&m)) {
                return err(
                    "--metrics-listen must differ from every --listen and --tls-listen address",
                );
            }
        }
        if self.ttl.is_zero() || self.head_timeout.is_zero() {
            return err("--ttl and --head-timeout must be positive");
        }
        let tls_asked =
            self.tls_cert.is_some() || self.tls_key.is_some() || !self.tls_listen.is_empty();
        if tls_asked && !cfg!(feature = "tls") {
            return err("this weir was built without TLS; build it with `cargo build --release --features tls`");
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return err("--tls-cert and --tls-key go together: give both PEM files");
        }
        if !self.tls_listen.is_empty() && self.tls_cert.is_none() {
            return err("--tls-listen needs --tls-cert and --tls-key");
        }
        if let Some(a) = self
            .tls_addrs()
            .iter()
            .find(|a| a.port() != 0 && self.listen.contains(a))
        {
            return Err(ConfigError(format!(
                "{a} is given to both --listen and --tls-listen; one address speaks one protocol"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn bad_values_are_refused() {
        let cases: Vec<fn(&mut Config)> = vec![
            |c| c.listen.clear(),
            |c| c.buffer_size = 10,
            |c| c.max_receivers = 0,
            |c| c.max_target_bytes = c.max_head_bytes + 1,
            |c| c.ttl = Duration::ZERO,
            |c| c.instance = Some(String::new()),
            |c| c.instance = Some("w-1".into()),
            |c| c.instance = Some("a".repeat(33)),
        ];
        for (i, f) in cases.into_iter().enumerate() {
            let mut c = Config::default();
            f(&mut c);
            assert!(c.validate().is_err(), "case {i} accepted");
        }
    }
}
