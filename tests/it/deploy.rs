//! `deploy/weir.service`, the systemd unit users install, checked by
//! `systemd-analyze verify` (Debian package `systemd`).
//!
//! The unit runs `/usr/local/bin/weir`; the test verifies a copy whose
//! ExecStart names the binary cargo built, since `verify` wants the
//! program to exist. Any warning fails the test: `verify` exits `0` on an
//! unknown key or an unknown system call group and only says so. Without
//! `systemd-analyze` the test prints a notice and passes, unless
//! `WEIR_DEPLOY_TESTS=1` (CI) requires it. The proxy recipes in `deploy/`
//! are run by `tests/it/proxy.rs`.

use std::process::{Command, Stdio};

use crate::proxy::{program_available, REQUIRE_VAR};

const UNIT: &str = include_str!("../../deploy/weir.service");
const EXEC_START: &str = "ExecStart=/usr/local/bin/weir ";
const SYSTEMD_ANALYZE: &str = "/usr/bin/systemd-analyze";

#[test]
fn systemd_unit_verifies_without_a_warning() {
    if !program_available(
        SYSTEMD_ANALYZE,
        "systemd",
        "deploy::systemd_unit",
        &[REQUIRE_VAR],
    ) {
        return;
    }
    let dir = std::env::temp_dir().join(format!("weir-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let unit = dir.join("weir.service");
    assert_eq!(UNIT.matches(EXEC_START).count(), 1, "one ExecStart");
    std::fs::write(
        &unit,
        UNIT.replace(
            EXEC_START,
            &format!("ExecStart={} ", env!("CARGO_BIN_EXE_weir")),
        ),
    )
    .unwrap();
    let out = Command::new(SYSTEMD_ANALYZE)
        .arg("verify")
        .arg(&unit)
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
