//! `deploy/weir.service`, the systemd unit users install, checked by
//! `systemd-analyze verify` (Debian package `systemd`), alone and with the
//! drop-in `deploy/weir-private.conf`, whose `ExecStart` is also run: a
//! private relay reading its rules and link key from the credentials
//! directory.
//!
//! The unit runs `/usr/local/bin/weir`; the test verifies a copy whose
//! ExecStart names the binary cargo built, since `verify` wants the
//! program to exist. Any warning fails the test: `verify` exits `0` on an
//! unknown key or an unknown system call group and only says so. Without
//! `systemd-analyze` the test prints a notice and passes, unless
//! `WEIR_DEPLOY_TESTS=1` (CI) requires it. The proxy recipes in `deploy/`
//! are run by `tests/it/proxy.rs`.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::proxy::{program_available, REQUIRE_VAR};
use crate::support::http::{exchange, get, parse_response};
use crate::support::net::{connect, read_to_end};
use crate::support::relay::Binary;

const UNIT: &str = include_str!("../../deploy/weir.service");
const PRIVATE: &str = include_str!("../../deploy/weir-private.conf");
const EXEC_START: &str = "ExecStart=/usr/local/bin/weir ";
const SYSTEMD_ANALYZE: &str = "/usr/bin/systemd-analyze";

#[test]
fn systemd_unit_verifies_without_a_warning() {
    verify("deploy::systemd_unit", None);
}

#[test]
fn systemd_unit_with_the_private_drop_in_verifies_without_a_warning() {
    verify("deploy::private_drop_in", Some(PRIVATE));
}

/// The unit (and `drop_in` in `weir.service.d/`) through
/// `systemd-analyze verify`, with the binary cargo built in `ExecStart`.
fn verify(test: &str, drop_in: Option<&str>) {
    if !program_available(SYSTEMD_ANALYZE, "systemd", test, &[REQUIRE_VAR]) {
        return;
    }
    let exe = format!("ExecStart={} ", env!("CARGO_BIN_EXE_weir"));
    let dir = std::env::temp_dir().join(format!(
        "weir-unit-{}-{}",
        std::process::id(),
        drop_in.is_some()
    ));
    std::fs::create_dir_all(dir.join("weir.service.d")).unwrap();
    let unit = dir.join("weir.service");
    assert_eq!(UNIT.matches(EXEC_START).count(), 1, "one ExecStart");
    std::fs::write(&unit, UNIT.replace(EXEC_START, &exe)).unwrap();
    if let Some(d) = drop_in {
        assert_eq!(d.matches(EXEC_START).count(), 1, "one ExecStart");
        let conf = dir.join("weir.service.d/private.conf");
        std::fs::write(conf, d.replace(EXEC_START, &exe)).unwrap();
    }
    // The unit path makes verify read the drop-in directory beside it.
    let out = Command::new(SYSTEMD_ANALYZE)
        .arg("verify")
        .arg(&unit)
        .env("SYSTEMD_UNIT_PATH", format!("{}:", dir.display()))
        .stdin(Stdio::null())
        .output()
        .expect("run systemd-analyze");
    let _ = std::fs::remove_dir_all(&dir);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "systemd-analyze verify: {said}");
    assert_eq!(said.trim(), "", "systemd-analyze verify warned");
}

/// The drop-in's `ExecStart`, as systemd would run it with `creds` as the
/// credentials directory: anonymous senders are refused, a token sends, a
/// signed link made with the key receives (the key is found beside the
/// rules file, as the drop-in's comment says), and `/metrics` is served on
/// the metrics address only.
#[test]
fn the_private_drop_in_runs_a_private_relay() {
    let exec = PRIVATE
        .lines()
        .find_map(|l| l.strip_prefix(EXEC_START))
        .expect("the drop-in's ExecStart");
    for cred in ["LoadCredential=auth:", "LoadCredential=link.key:"] {
        assert!(PRIVATE.lines().any(|l| l.starts_with(cred)), "{cred}");
    }
    let creds = std::env::temp_dir().join(format!("weir-creds-{}", std::process::id()));
    std::fs::create_dir_all(&creds).unwrap();
    let weir = env!("CARGO_BIN_EXE_weir");
    let key = Command::new(weir).arg("new-key").output().unwrap();
    assert!(key.status.success());
    std::fs::write(creds.join("link.key"), &key.stdout).unwrap();
    let token = "deploy-token-3e1f0a9c7b";
    let hashed = weir::auth::hash_secret(token.as_bytes());
    let rules = format!("token ci {hashed}\nsigned-links link.key\nallow ci send /\n");
    std::fs::write(creds.join("auth"), rules).unwrap();
    // The metrics address: port 0, read back from weir's log.
    let metrics = "127.0.0.1:0".to_string();
    // weir's --listen comes from Binary (a free port); the rest as written.
    let mut args: Vec<String> = Vec::new();
    let mut words = exec.split_whitespace();
    while let Some(w) = words.next() {
        match w {
            "--listen" => {
                words.next();
            }
            "--metrics-listen" => {
                words.next();
                args.extend(["--metrics-listen".into(), metrics.clone()]);
            }
            w => args.push(w.replace("%d", &creds.display().to_string())),
        }
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let relay = Binary::start_logging(&args, "info");
    let addr = relay.addr;
    let line = relay.wait_log_line(&["serving /metrics and /healthz on http://"]);
    let metrics = line.rsplit("http://").next().unwrap().trim().to_string();

    let put = |headers: &str| {
        let req = format!(
            "PUT /drop HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nConnection: close\r\n{headers}\r\nhello"
        );
        exchange(addr, req.as_bytes())
    };
    assert_eq!(put("").status, 401, "an anonymous sender");
    assert_eq!(get(addr, "/drop").status, 401, "an anonymous receiver");
    assert_eq!(get(addr, "/metrics").status, 404, "public /metrics");
    let m = get(metrics.parse().unwrap(), "/metrics");
    assert_eq!(m.status, 200);
    assert!(m.text().contains("weir_connections"), "{}", m.text());

    let key_file = creds.join("link.key");
    let link = sign(weir, &key_file, "/drop");
    let path = &link[link.find("/drop").unwrap()..];
    let mut receiver = connect(addr);
    write!(
        receiver,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let sent = put(&format!("Authorization: Bearer {token}\r\n"));
    assert_eq!(sent.status, 200, "{}", sent.text());
    let got = parse_response(&read_to_end(&mut receiver));
    assert_eq!((got.status, got.body.as_slice()), (200, &b"hello"[..]));
    drop(relay);
    let _ = std::fs::remove_dir_all(&creds);
}

/// `weir sign` for `path`, receive only, an hour.
fn sign(weir: &str, key: &Path, path: &str) -> String {
    let out = Command::new(weir)
        .args(["sign", "--key-file"])
        .arg(key)
        .args(["--expires", "1h", "--allow", "receive", path])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The settings docs/deploy.md promises are in the unit, uncommented.
#[test]
fn systemd_unit_is_hardened_as_documented() {
    let lines: Vec<&str> = UNIT
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    for want in [
        "ExecStart=/usr/local/bin/weir --listen 127.0.0.1:8080",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "DynamicUser=yes",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "LimitNOFILE=65536",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter=@system-service",
        "CapabilityBoundingSet=",
    ] {
        assert!(lines.contains(&want), "deploy/weir.service lacks {want:?}");
    }
}
