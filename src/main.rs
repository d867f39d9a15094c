//! The `weir` command: flags and environment into a `Config`, logging, run.
//!
//! This is the only place that reads arguments or the environment. Every
//! flag `--some-flag` may also be set as `WEIR_SOME_FLAG`; a flag on the
//! command line wins over the environment.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use weir::reactor::access::{load_rules, read_small};
use weir::{Config, Server};

/// One command-line flag: name, value name (empty for switches), help.
struct Flag {
    name: &'static str,
    value: &'static str,
    help: &'static str,
    default: fn(&Config) -> String,
    set: fn(&mut Config, &str) -> Result<(), String>,
}

fn num<T: std::str::FromStr>(v: &str) -> Result<T, String> {
    v.trim()
        .parse()
        .map_err(|_| format!("'{v}' is not a valid number"))
}

fn secs(v: &str) -> Result<Duration, String> {
    let f: f64 = num(v)?;
    if !(f > 0.0 && f < 1e9) {
        return Err(format!("'{v}' is not a positive number of seconds"));
    }
    Ok(Duration::from_secs_f64(f))
}

fn show_secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{}", s as u64)
    } else {
        format!("{s}")
    }
}

const FLAGS: &[Flag] = &[
    Flag {
        name: "listen",
        value: "ADDR",
        help: "address to bind; repeat for several ([::]:8080 for IPv6)",
        default: |c| {
            c.listen
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        },
        set: |c, v| {
            let a: SocketAddr = v
                .parse()
                .map_err(|_| format!("'{v}' is not an address like 127.0.0.1:8080"))?;
            c.listen.push(a);
            Ok(())
        },
    },
    Flag {
        name: "tls-listen",
        value: "ADDR",
        help: "address that speaks HTTPS (feature tls); repeat for several",
        default: |_| "127.0.0.1:8443 when --tls-cert is given".to_string(),
        set: |c, v| {
            let a: SocketAddr = v
                .parse()
                .map_err(|_| format!("'{v}' is not an address like 127.0.0.1:8443"))?;
            c.tls_listen.push(a);
            Ok(())
        },
    },
    Flag {
        name: "tls-cert",
        value: "PEM",
        help: "certificate chain, leaf first; reread on SIGHUP (feature tls)",
        default: |_| "none".to_string(),
        set: |c, v| {
            c.tls_cert = Some(v.into());
            Ok(())
        },
    },
    Flag {
        name: "tls-key",
        value: "PEM",
        help: "private key (RSA, ECDSA or Ed25519); reread on SIGHUP (feature tls)",
        default: |_| "none".to_string(),
        set: |c, v| {
            c.tls_key = Some(v.into());
            Ok(())
        },
    },
    Flag {
        name: "auth",
        value: "FILE",
        help: "access rules: who may send and receive where (docs/auth.md); default deny for what they do not cover; reread on SIGHUP",
        default: |c| if c.auth.is_some() { "set" } else { "none: an open relay" }.to_string(),
        set: |c, v| {
            c.auth = Some(std::sync::Arc::new(load_rules(Path::new(v))?));
            c.auth_file = Some(v.into());
            Ok(())
        },
    },
    Flag {
        name: "metrics-listen",
        value: "ADDR",
        help: "serve /metrics and /healthz on this address only (the public addresses answer /metrics 404)",
        default: |c| c.metrics_listen.map_or("none: /metrics on every address".into(), |a| a.to_string()),
        set: |c, v| {
            let a: SocketAddr = v
                .parse()
                .map_err(|_| format!("'{v}' is not an address like 127.0.0.1:9090"))?;
            c.metrics_listen = Some(a);
            Ok(())
        },
    },
    Flag {
        name: "ttl",
        value: "SECS",
        help: "how long a sender or receiver may wait for its peer",
        default: |c| show_secs(c.ttl),
        set: |c, v| {
            c.ttl = secs(v)?;
            Ok(())
        },
    },
    Flag {
        name: "max-upload-bytes",
        value: "N",
        help: "per-transfer byte limit (0 = none)",
        default: |c| c.max_upload_bytes.to_string(),
        set: |c, v| {
            c.max_upload_bytes = num(v)?;
            Ok(())
        },
    },
    Flag {
        name: "buffer-size",
        value: "N",
        help: "ring buffer per streaming pipe, bytes (rounded up to a power of two)",
        default: |c| c.buffer_size.to_string(),
        set: |c, v| {
            c.buffer_size = num(v)?;
            Ok(())
        },
    },
    Flag {
        name: "max-streaming-pipes",
        value: "N",
        help: "pipes streaming at once (each holds one ring); past it 503",
        default: |c| c.max_streaming_pipes.to_string(),
        set: |c, v| {
            c.max_streaming_pipes = num(v)?;
            Ok(())
        },
    },
    Flag {
        name: "max-connections",
        value: "N",
        help: "accepted connections at once; accepting resumes below 90%",
        default: |c| c.max_connections.to_string(),
        set: |c, v| {
            c.max_connections = num(v)?;
            Ok(())
        },
    },
    Flag {
        name: "max-receivers",
        value: "N",
        help: "largest ?n=",
        default: |c| c.max_receivers.to_string(),
        set: |c, v| {
            c.max_receivers = num(v)?;
            Ok(())
        },
    },
    Flag {
        name: "head-timeout",
        value: "SECS",
        help: "time allowed to send a request head (and to idle between requests)",
        default: |c| show_secs(c.head_timeout),
        set: |c, v| {
            c.head_timeout = secs(v)?;
            Ok(())
        },
    },
    Flag {
        name: "max-head-bytes",
        value: "N",
        help: "largest request head; past it 431",
        default: |c| c.max_head_bytes.to_string(),
        set: |c, v| {
            c.max_head_bytes = num(v)?;
            Ok(())
        },
    },
    Flag {
        name: "max-target-bytes",
        value: "N",
        help: "largest request target; past it 414",
        default: |c| c.max_target_bytes.to_string(),
        set: |c, v| {
            c.max_target_bytes = num(v)?;
            Ok(())
        },
    },
    Flag {
        name: "shutdown-grace",
        value: "SECS",
        help: "on SIGINT/SIGTERM, how long running transfers may go on",
        default: |c| show_secs(c.shutdown_grace),
        set: |c, v| {
            c.shutdown_grace = secs(v)?;
            Ok(())
        },
    },
    Flag {
        name: "id-length",
        value: "N",
        help: "characters in a server-assigned ID (6 random bits each)",
        default: |c| c.id_length.to_string(),
        set: |c, v| {
            c.id_length = num(v)?;
            Ok(())
        },
    },
    Flag {
        name: "instance",
        value: "NAME",
        help: "this process's name in a fleet: server-made IDs start with NAME- (docs/scale-out.md)",
        default: |c| c.instance.clone().unwrap_or_else(|| "none".into()),
        set: |c, v| {
            c.instance = Some(v.to_string());
            Ok(())
        },
    },
    Flag {
        name: "reservations",
        value: "",
        help: "enable GET /reserve and POST /reserve/<id>",
        default: |c| if c.reservations { "on" } else { "off" }.to_string(),
        set: |c, v| {
            c.reservations = switch(v)?;
            Ok(())
        },
    },
    Flag {
        name: "required-referer",
        value: "URL",
        help: "GET /reserve only with a Referer or Origin matching URL",
        default: |c| c.required_referer.clone().unwrap_or_else(|| "none".into()),
        set: |c, v| {
            c.required_referer = Some(v.trim_end_matches('/').to_string());
            Ok(())
        },
    },
    Flag {
        name: "trust-proxy",
        value: "",
        help: "build URLs from X-Forwarded-Proto/X-Forwarded-Host",
        default: |c| if c.trust_proxy { "on" } else { "off" }.to_string(),
        set: |c, v| {
            c.trust_proxy = switch(v)?;
            Ok(())
        },
    },
    Flag {
        name: "sender-progress",
        value: "MODE",
        help: "when a sender sees its response: auto (live with Expect: 100-continue, else after its body), live, held",
        default: |c| c.sender_progress.name().to_string(),
        set: |c, v| {
            c.sender_progress = weir::config::SenderProgress::parse(v)
                .ok_or_else(|| format!("'{v}' is not auto, live or held"))?;
            Ok(())
        },
    },
    Flag {
        name: "max-parked-per-ip",
        value: "N",
        help: "waiting senders/receivers one client IP may hold (0 = no limit); past it 429",
        default: |c| c.max_parked_per_ip.to_string(),
        set: |c, v| {
            c.max_parked_per_ip = num(v)?;
            Ok(())
        },
    },
    Flag {
        name: "ws-max-message",
        value: "N",
        help: "largest WebSocket message in bytes; past it close 1009",
        default: |c| c.ws_max_message.to_string(),
        set: |c, v| {
            c.ws_max_message = num(v)?;
            Ok(())
        },
    },
    Flag {
        name: "message-budget",
        value: "N",
        help: "bytes of messages held whole at once, all connections together (posts, SockJS sends, WebSocket messages); past it 413 / close 1009",
        default: |c| c.message_budget.to_string(),
        set: |c, v| {
            c.message_budget = num(v)?;
            Ok(())
        },
    },
    Flag {
        name: "sockjs-disconnect-delay",
        value: "SECS",
        help: "a SockJS session without a receiving connection ends after this",
        default: |c| show_secs(c.sockjs_disconnect_delay),
        set: |c, v| {
            c.sockjs_disconnect_delay = secs(v)?;
            Ok(())
        },
    },
    Flag {
        name: "sockjs-response-limit",
        value: "N",
        help: "bytes after which a SockJS streaming response ends (the client reopens)",
        default: |c| c.sockjs_response_limit.to_string(),
        set: |c, v| {
            c.sockjs_response_limit = num(v)?;
            Ok(())
        },
    },
    Flag {
        name: "no-splice",
        value: "",
        help: "move every body through the ring (no splice(2) zero-copy path)",
        default: |c| if c.splice { "splice on" } else { "off" }.to_string(),
        set: |c, v| {
            c.splice = !switch(v)?;
            Ok(())
        },
    },
    Flag {
        name: "splice-budget",
        value: "N",
        help: "bytes spliced transfers' kernel pipes may grow by past --buffer-size, all together (each up to 1 MiB; 0 = never grow)",
        default: |c| c.splice_budget.to_string(),
        set: |c, v| {
            c.splice_budget = num(v)?;
            Ok(())
        },
    },
    Flag {
        name: "heartbeat",
        value: "SECS",
        help: "comment heartbeat on event streams",
        default: |c| show_secs(c.heartbeat),
        set: |c, v| {
            c.heartbeat = secs(v)?;
            Ok(())
        },
    },
    Flag {
        name: "signal-body-limit",
        value: "N",
        help: "largest POST /signal/<id> body; past it 413",
        default: |c| c.signal_body_limit.to_string(),
        set: |c, v| {
            c.signal_body_limit = num(v)?;
            Ok(())
        },
    },
    Flag {
        name: "event-body-limit",
        value: "N",
        help: "largest POST /events/<topic> body; past it 413",
        default: |c| c.event_body_limit.to_string(),
        set: |c, v| {
            c.event_body_limit = num(v)?;
            Ok(())
        },
    },
    Flag {
        name: "stream-queue-bytes",
        value: "N",
        help: "bytes an event stream may fall behind before it is dropped",
        default: |c| c.stream_queue_bytes.to_string(),
        set: |c, v| {
            c.stream_queue_bytes = num(v)?;
            Ok(())
        },
    },
    Flag {
        name: "max-swarm-peers",
        value: "N",
        help: "peers in one signal swarm, initiator included",
        default: |c| c.max_swarm_peers.to_string(),
        set: |c, v| {
            c.max_swarm_peers = num(v)?;
            Ok(())
        },
    },
    Flag {
        name: "max-swarms",
        value: "N",
        help: "signal swarms at once",
        default: |c| c.max_swarms.to_string(),
        set: |c, v| {
            c.max_swarms = num(v)?;
            Ok(())
        },
    },
    Flag {
        name: "max-topics",
        value: "N",
        help: "event topics with subscribers at once",
        default: |c| c.max_topics.to_string(),
        set: |c, v| {
            c.max_topics = num(v)?;
            Ok(())
        },
    },
];

/// A switch is on when given on the command line (empty value) or set to
/// a true-ish value in the environment.
fn switch(v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "" | "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!("'{v}' is not on/off")),
    }
}

fn usage() -> String {
    let mut s = format!(
        "weir {}: an ephemeral HTTP relay; bytes stream from senders to receivers and are never stored.

Usage: weir [FLAGS]

Flags (each may also be set as WEIR_<FLAG>, e.g. WEIR_MAX_UPLOAD_BYTES=0):
",
        env!("CARGO_PKG_VERSION")
    );
    let defaults = Config::default();
    for f in FLAGS {
        let left = if f.value.is_empty() {
            format!("--{}", f.name)
        } else {
            format!("--{} {}", f.name, f.value)
        };
        s.push_str(&format!(
            "  {left:<28} {} [default: {}]\n",
            f.help,
            (f.default)(&defaults)
        ));
    }
    s.push_str(
        "  -h, --help                   print this help
  -V, --version                print the version

Logging: RUST_LOG=info (default) prints one line per finished transfer; RUST_LOG=debug more.

Commands for private relays (docs/auth.md):
  weir new-token [--user] NAME   print a random secret, then its rules line (token or user)
  weir hash-secret               read a secret on stdin, print sha256:HEX for the rules file
  weir new-key                   print a random link key (hex) for signed-links
  weir sign --key-file K --expires 1h [--allow send|receive|both] [--base URL] /path
                                 print a signed link to /path (default: receive, http://127.0.0.1:8080)
",
    );
    s
}

enum Parsed {
    Run(Box<Config>),
    Exit(String),
}

fn parse(args: Vec<String>, env: &[(String, String)]) -> Result<Parsed, String> {
    let mut config = Config::default();
    config.listen.clear();
    let mut from_cli: Vec<&'static str> = Vec::new();
    let mut pending: Vec<(&'static Flag, String)> = Vec::new();
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(Parsed::Exit(usage())),
            "-V" | "--version" => {
                return Ok(Parsed::Exit(format!(
                    "weir {}\n",
                    env!("CARGO_PKG_VERSION")
                )))
            }
            _ => {}
        }
        let Some(body) = arg.strip_prefix("--") else {
            return Err(format!("unexpected argument '{arg}' (see --help)"));
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let flag = FLAGS
            .iter()
            .find(|f| f.name == name)
            .ok_or_else(|| format!("unknown flag --{name} (see --help)"))?;
        let value = if flag.value.is_empty() {
            String::new()
        } else {
            match inline {
                Some(v) => v,
                None => it
                    .next()
                    .ok_or_else(|| format!("--{name} needs a value ({})", flag.value))?,
            }
        };
        from_cli.push(flag.name);
        pending.push((flag, value));
    }
    // Environment first, so the command line overrides it.
    for f in FLAGS {
        if from_cli.contains(&f.name) {
            continue;
        }
        let key = format!("WEIR_{}", f.name.to_ascii_uppercase().replace('-', "_"));
        if let Some((_, v)) = env.iter().find(|(k, _)| *k == key) {
            for part in v.split(',').filter(|p| !p.trim().is_empty()) {
                (f.set)(&mut config, part.trim()).map_err(|e| format!("{key}: {e}"))?;
            }
        }
    }
    for (f, v) in pending {
        (f.set)(&mut config, &v).map_err(|e| format!("--{}: {e}", f.name))?;
    }
    if config.listen.is_empty() {
        config.listen = Config::default().listen;
    }
    config.validate().map_err(|e| e.to_string())?;
    Ok(Parsed::Run(Box::new(config)))
}

/// Seconds from `30`, `90s`, `10m`, `1h` or `7d`.
fn duration(v: &str) -> Result<u64, String> {
    let (digits, unit) = match v.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => v.split_at(i),
        None => (v, "s"),
    };
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => 0,
    };
    match digits.parse::<u64>() {
        Ok(n) if n > 0 && mult > 0 => n
            .checked_mul(mult)
            .ok_or_else(|| format!("'{v}' is too long")),
        _ => Err(format!("'{v}' is not a duration like 90s, 10m, 1h or 7d")),
    }
}

/// The helper commands; `None` when `args` is not one of them.
fn tool(args: &[String], now: u64, stdin: &mut dyn Read) -> Option<Result<String, String>> {
    let (cmd, rest) = args.split_first()?;
    Some(match cmd.as_str() {
        "hash-secret" => hash_secret_cmd(rest, stdin),
        "new-token" => new_token_cmd(rest),
        "new-key" => match rest {
            [] => weir::auth::link::new_key().map_err(|e| format!("no randomness: {e}")),
            _ => Err("usage: weir new-key > /etc/weir/link.key".into()),
        },
        "sign" => sign_cmd(rest, now),
        _ => return None,
    })
}

fn hash_secret_cmd(rest: &[String], stdin: &mut dyn Read) -> Result<String, String> {
    if !rest.is_empty() {
        return Err("usage: weir hash-secret < secret (the secret is read from stdin, never from the command line)".into());
    }
    let mut buf = Vec::new();
    stdin
        .take(4097)
        .read_to_end(&mut buf)
        .map_err(|e| format!("cannot read stdin: {e}"))?;
    if buf.len() > 4096 {
        return Err("the secret is longer than 4096 bytes".into());
    }
    let secret = buf
        .strip_suffix(b"\r\n")
        .or_else(|| buf.strip_suffix(b"\n"))
        .unwrap_or(&buf);
    if secret.is_empty() {
        return Err("no secret on stdin".into());
    }
    if secret.len() < 16 {
        eprintln!("weir: warning: a secret this short can be guessed offline from its digest; use `weir new-token`");
    }
    Ok(format!("{}\n", weir::auth::hash_secret(secret)))
}

fn new_token_cmd(rest: &[String]) -> Result<String, String> {
    let (kind, name) = match rest {
        [name] if !name.starts_with('-') => ("token", name),
        [flag, name] if flag == "--user" => ("user", name),
        _ => return Err("usage: weir new-token [--user] NAME".into()),
    };
    let mut raw = [0u8; 32];
    weir::ids::fill(&mut raw).map_err(|e| format!("no randomness: {e}"))?;
    let secret = weir::auth::base64url::encode(&raw);
    let line = format!(
        "{kind} {name} {}",
        weir::auth::hash_secret(secret.as_bytes())
    );
    // Check the line the way the relay will read it.
    weir::auth::Rules::parse(&line).map_err(|e| e.message)?;
    Ok(format!("{secret}\n{line}\n"))
}

fn sign_cmd(rest: &[String], now: u64) -> Result<String, String> {
    let usage =
        "usage: weir sign --key-file K --expires 1h [--allow send|receive|both] [--base URL] /path";
    let (mut key_file, mut expires, mut allow, mut base, mut target) = (
        None,
        None,
        "receive".to_string(),
        "http://127.0.0.1:8080".to_string(),
        None,
    );
    let mut it = rest.iter();
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{a} needs a value; {usage}"))
        };
        match a.as_str() {
            "--key-file" => key_file = Some(value()?),
            "--expires" => expires = Some(duration(&value()?)?),
            "--allow" => allow = value()?,
            "--base" => base = value()?,
            p if p.starts_with('/') && target.is_none() => target = Some(p.to_string()),
            other => return Err(format!("unexpected '{other}'; {usage}")),
        }
    }
    let (Some(key_file), Some(expires), Some(target)) = (key_file, expires, target) else {
        return Err(usage.into());
    };
    let actions = match allow.as_str() {
        "send" => weir::auth::Actions::SEND,
        "receive" => weir::auth::Actions::RECEIVE,
        "both" | "send,receive" => weir::auth::Actions::BOTH,
        _ => return Err(format!("--allow '{allow}' is not send, receive or both")),
    };
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        return Err(format!("--base '{base}' is not an http:// or https:// URL"));
    }
    let key = read_small(Path::new(&key_file), 4096)?;
    let key = weir::auth::link::parse_key(&key).map_err(|e| format!("{key_file}: {e}"))?;
    let exp = now.saturating_add(expires);
    Ok(format!(
        "{}\n",
        weir::auth::link::url(&base, &target, &key, exp, actions)
    ))
}

/// What the relay calls once a burst has gone (`Config::release_memory`).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const RELEASE_MEMORY: Option<fn()> = Some(trim_heap);
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
const RELEASE_MEMORY: Option<fn()> = None;

/// glibc keeps the pages of freed memory in its heap: after 19,900
/// connections had gone, weir's RSS stayed at 16 to 40 MiB (idle: 2.6)
/// although every table had shrunk, because any chunk still in use high in
/// the heap keeps everything below it. `malloc_trim(0)` hands every free
/// page back to the kernel (MADV_DONTNEED), wherever it is; measured with
/// scripts/fdlimit.py, RSS 5 s after the burst fell to 3.8 MiB. This is the
/// project's one `unsafe` block; the library forbids `unsafe`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn trim_heap() {
    extern "C" {
        fn malloc_trim(pad: usize) -> std::ffi::c_int;
    }
    // SAFETY: malloc_trim takes no pointer and has no precondition; glibc
    // documents it as thread-safe, and it only changes which free pages
    // stay mapped.
    unsafe {
        malloc_trim(0);
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if let Some(out) = tool(&args, now, &mut std::io::stdin().lock()) {
        return match out {
            Ok(text) => {
                let _ = std::io::stdout().write_all(text.as_bytes());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("weir: {e}");
                ExitCode::from(2)
            }
        };
    }
    let env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with("WEIR_"))
        .collect();
    let mut config = match parse(args, &env) {
        Ok(Parsed::Run(c)) => *c,
        Ok(Parsed::Exit(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("weir: {e}");
            return ExitCode::from(2);
        }
    };
    config.release_memory = RELEASE_MEMORY;
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut server = match Server::bind(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("weir: {e}");
            return ExitCode::from(1);
        }
    };
    if let Err(e) = server.handle_signals() {
        eprintln!("weir: cannot install signal handlers: {e}");
        return ExitCode::from(1);
    }
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weir: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str], env: &[(&str, &str)]) -> Result<Config, String> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        match parse(args.iter().map(|s| s.to_string()).collect(), &env)? {
            Parsed::Run(c) => Ok(*c),
            Parsed::Exit(_) => Err("exit".into()),
        }
    }

    fn run_tool(args: &[&str], stdin: &[u8]) -> Result<String, String> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        tool(&args, 1_000, &mut &stdin[..]).expect("a tool")
    }

    #[test]
    fn tools() {
        let abc = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n";
        assert_eq!(run_tool(&["hash-secret"], b"abc\n").unwrap(), abc);
        assert_eq!(run_tool(&["hash-secret"], b"abc\r\n").unwrap(), abc);
        assert_eq!(run_tool(&["hash-secret"], b"abc").unwrap(), abc);
        assert!(run_tool(&["hash-secret"], b"").is_err());
        assert!(run_tool(&["hash-secret", "abc"], b"").is_err());
        let out = run_tool(&["new-token", "ci"], b"").unwrap();
        let (secret, line) = out.trim_end().split_once('\n').unwrap();
        assert_eq!(secret.len(), 43);
        assert_eq!(
            line,
            format!("token ci {}", weir::auth::hash_secret(secret.as_bytes()))
        );
        let out = run_tool(&["new-token", "--user", "ann"], b"").unwrap();
        assert!(out.lines().nth(1).unwrap().starts_with("user ann sha256:"));
        assert!(run_tool(&["new-token", "bad name!"], b"").is_err());
        assert_eq!(run_tool(&["new-key"], b"").unwrap().len(), 65);
        assert!(tool(&["--ttl".to_string()], 0, &mut &b""[..]).is_none());
        assert_eq!(duration("90"), Ok(90));
        assert_eq!(duration("2s"), Ok(2));
        assert_eq!(duration("1h"), Ok(3600));
        assert_eq!(duration("7d"), Ok(7 * 86400));
        for bad in ["", "0", "1y", "h", "-1s"] {
            assert!(duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sign_prints_a_link() {
        let dir = std::env::temp_dir().join(format!("weir-sign-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("k");
        std::fs::write(&key, "ab".repeat(32)).unwrap();
        let k = key.to_str().unwrap();
        let out = run_tool(
            &[
                "sign",
                "--key-file",
                k,
                "--expires",
                "1h",
                "--base",
                "https://r.example",
                "/f?n=2",
            ],
            b"",
        )
        .unwrap();
        let want = weir::auth::link::url(
            "https://r.example",
            "/f?n=2",
            &[0xab; 32],
            4_600,
            weir::auth::Actions::RECEIVE,
        );
        assert_eq!(out, format!("{want}\n"));
        assert!(run_tool(&["sign", "--key-file", k, "/f"], b"").is_err());
        assert!(run_tool(
            &[
                "sign",
                "--key-file",
                k,
                "--expires",
                "1h",
                "--allow",
                "x",
                "/f"
            ],
            b""
        )
        .is_err());
        std::fs::write(&key, "ab").unwrap();
        assert!(run_tool(&["sign", "--key-file", k, "--expires", "1h", "/f"], b"").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn flags_env_and_precedence() {
        let c = run(&[], &[]).unwrap();
        assert_eq!(c.listen, Config::default().listen);
        let c = run(
            &["--ttl", "5", "--listen=127.0.0.1:0", "--listen", "[::1]:0"],
            &[],
        )
        .unwrap();
        assert_eq!(c.ttl, Duration::from_secs(5));
        assert_eq!(c.listen.len(), 2);
        let c = run(
            &["--ttl", "7"],
            &[("WEIR_TTL", "9"), ("WEIR_MAX_RECEIVERS", "4")],
        )
        .unwrap();
        assert_eq!(c.ttl, Duration::from_secs(7));
        assert_eq!(c.max_receivers, 4);
        assert!(run(&["--nope"], &[]).is_err());
        assert!(run(&["--ttl"], &[]).is_err());
        assert!(run(&["--ttl", "-3"], &[]).is_err());
        assert!(run(&["--buffer-size", "1"], &[]).is_err());
        assert!(usage().contains("--max-upload-bytes N"));
        assert!(usage().contains("[default: 1073741824]"));
        let c = run(
            &["--reservations", "--required-referer", "https://a.example/"],
            &[],
        )
        .unwrap();
        assert!(c.reservations);
        assert_eq!(c.required_referer.as_deref(), Some("https://a.example"));
        let c = run(
            &[],
            &[("WEIR_RESERVATIONS", "1"), ("WEIR_TRUST_PROXY", "off")],
        )
        .unwrap();
        assert!(c.reservations);
        assert!(!c.trust_proxy);
        let c = run(&[], &[("WEIR_INSTANCE", "w2")]).unwrap();
        assert_eq!(c.instance.as_deref(), Some("w2"));
        let c = run(&["--instance", "w1"], &[("WEIR_INSTANCE", "w2")]).unwrap();
        assert_eq!(c.instance.as_deref(), Some("w1"));
    }

    #[test]
    fn auth_and_metrics_flags() {
        let dir = std::env::temp_dir().join(format!("weir-flags-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let rules = dir.join("auth");
        let h = weir::auth::hash_secret(b"s");
        std::fs::write(
            &rules,
            format!("token t {h}\nsigned-links k\nallow t send /\n"),
        )
        .unwrap();
        let r = rules.to_str().unwrap();
        // The key file is named relative to the rules file: missing, then bad, then good.
        let e = run(&["--auth", r], &[]).unwrap_err();
        assert!(e.starts_with("--auth: ") && e.contains("/k"), "{e}");
        std::fs::write(dir.join("k"), "1234").unwrap();
        assert!(run(&["--auth", r], &[])
            .unwrap_err()
            .contains("at least 32"));
        std::fs::write(dir.join("k"), "ab".repeat(32)).unwrap();
        assert!(run(&["--auth", r], &[]).unwrap().auth.is_some());
        assert!(run(&[], &[("WEIR_AUTH", r)]).unwrap().auth.is_some());
        std::fs::write(&rules, "allow nobody send /\n").unwrap();
        let e = run(&["--auth", r], &[]).unwrap_err();
        assert!(e.contains("line 1: 'nobody'"), "{e}");
        assert!(run(&["--auth", "/nonexistent/weir-auth"], &[]).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
        let c = run(&["--metrics-listen", "127.0.0.1:9090"], &[]).unwrap();
        assert_eq!(c.metrics_listen, Some("127.0.0.1:9090".parse().unwrap()));
        let c = run(&[], &[("WEIR_METRICS_LISTEN", "127.0.0.1:9091")]).unwrap();
        assert_eq!(c.metrics_listen, Some("127.0.0.1:9091".parse().unwrap()));
        assert!(run(&["--metrics-listen", "127.0.0.1:8080"], &[]).is_err());
        assert!(run(&["--metrics-listen", "nope"], &[]).is_err());
    }
}
