//! TLS in the binary (feature `tls`): transfers over HTTPS with curl as the
//! client, each key kind and a served chain, a certificate reloaded on
//! `SIGHUP` while a transfer runs, a handshake that never ends closed at the
//! head timeout, plain HTTP on the TLS address told what to do, `https` in
//! the URLs the relay prints. Certificates are made at test time (rcgen for
//! ECDSA and Ed25519, the `openssl` command for RSA).
//!
//! Without the feature, one test checks that the TLS flags say how to get
//! it.

#[cfg(not(feature = "tls"))]
#[test]
fn tls_flags_without_the_feature_say_how_to_get_it() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["--tls-cert", "c.pem", "--tls-key", "k.pem"])
        .output()
        .expect("run weir");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--features tls"), "{err}");
}

#[cfg(feature = "tls")]
mod with_tls {
    use std::io::Write;
    use std::net::{SocketAddr, TcpStream};
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SignatureAlgorithm,
        PKCS_ECDSA_P256_SHA256, PKCS_ED25519,
    };

    use crate::support::curl::{curl, Curl};
    use crate::support::fs::TempFile;
    use crate::support::net::read_until_closed;
    use crate::support::payload::pattern;
    use crate::support::relay::{wait_metric, Relay};
    use crate::support::DEADLINE;

    /// A certificate for 127.0.0.1 and localhost, its key, and the root a
    /// client must trust, in a directory removed on drop.
    struct Certs {
        dir: PathBuf,
        ca: PathBuf,
        cert: PathBuf,
        key: PathBuf,
    }

    impl Drop for Certs {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn scratch(name: &str) -> PathBuf {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("weir-tls-{}-{name}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn ca(alg: &'static SignatureAlgorithm, name: &str) -> (rcgen::Certificate, KeyPair) {
        let key = KeyPair::generate_for(alg).unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        (p.self_signed(&key).unwrap(), key)
    }

    fn leaf_params() -> CertificateParams {
        let mut p =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, "localhost");
        p
    }

    /// A leaf with key `alg`, signed by a root (`chain` false) or by an
    /// intermediate that the certificate file carries after the leaf.
    fn make(name: &str, alg: &'static SignatureAlgorithm, chain: bool) -> Certs {
        let dir = scratch(name);
        let (root, root_key) = ca(&PKCS_ECDSA_P256_SHA256, "weir test root");
        let key = KeyPair::generate_for(alg).unwrap();
        let mut pem = String::new();
        if chain {
            let ikey = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
            let mut ip = CertificateParams::new(Vec::<String>::new()).unwrap();
            ip.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            ip.distinguished_name
                .push(DnType::CommonName, "weir test intermediate");
            let inter = ip.signed_by(&ikey, &root, &root_key).unwrap();
            let leaf = leaf_params().signed_by(&key, &inter, &ikey).unwrap();
            pem.push_str(&leaf.pem());
            pem.push_str(&inter.pem());
        } else {
            let leaf = leaf_params().signed_by(&key, &root, &root_key).unwrap();
            pem.push_str(&leaf.pem());
        }
        let certs = Certs {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            dir,
        };
        std::fs::write(&certs.ca, root.pem()).unwrap();
        std::fs::write(&certs.cert, pem).unwrap();
        std::fs::write(&certs.key, key.serialize_pem()).unwrap();
        certs
    }

    /// A self-signed RSA certificate from the `openssl` command (ring, under
    /// rcgen, cannot make RSA keys).
    fn make_rsa() -> Certs {
        let dir = scratch("rsa");
        let certs = Certs {
            ca: dir.join("cert.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            dir,
        };
        let out = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args(["-subj", "/CN=localhost"])
            .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
            .arg("-keyout")
            .arg(&certs.key)
            .arg("-out")
            .arg(&certs.cert)
            .output()
            .expect("the openssl command is needed for the RSA test (Debian: openssl)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        certs
    }

    fn tls_relay(certs: &Certs, f: impl FnOnce(&mut weir::Config)) -> (Relay, SocketAddr) {
        let r = Relay::with(|c| {
            c.tls_listen = vec!["127.0.0.1:0".parse().unwrap()];
            c.tls_cert = Some(certs.cert.clone());
            c.tls_key = Some(certs.key.clone());
            f(c);
        });
        let tls = r.tls_addr.expect("a TLS listener");
        (r, tls)
    }

    fn ca_arg(certs: &Certs) -> String {
        certs.ca.to_str().unwrap().to_string()
    }

    fn https(addr: SocketAddr, path: &str) -> String {
        format!("https://{addr}{path}")
    }

    #[test]
    fn a_transfer_over_tls_arrives_whole_and_mixes_with_plain() {
        let certs = make("transfer", &PKCS_ECDSA_P256_SHA256, false);
        let (r, tls) = tls_relay(&certs, |_| {});
        let body = pattern(20 << 20, 13);
        let file = TempFile::new("in", &body);
        let ca = ca_arg(&certs);
        // Both over TLS; then a plain sender and a TLS receiver, and the
        // other way round.
        let cases = [
            (https(tls, "/both"), https(tls, "/both")),
            (r.url("/mixed1"), https(tls, "/mixed1")),
            (https(tls, "/mixed2"), r.url("/mixed2")),
        ];
        for (send, recv) in cases {
            let out = TempFile::new("out", b"");
            let receiver = Curl::spawn(&["-sS", "--cacert", &ca, "-o", out.path_str(), &recv]);
            let (st, _, err) = curl(&["-sS", "--cacert", &ca, "-T", file.path_str(), &send]);
            assert!(st.success(), "sender {send}: {err}");
            let (st, _, err) = receiver.finish();
            assert!(st.success(), "receiver {recv}: {err}");
            let got = std::fs::read(&out.path).unwrap();
            assert!(
                got == body,
                "{send} → {recv}: {} of {} bytes, or changed",
                got.len(),
                body.len()
            );
        }
        r.assert_idle();
    }

    #[test]
    fn rsa_ecdsa_ed25519_and_a_served_chain_each_handshake_with_alpn_http11() {
        let kinds = [
            ("ecdsa", make("ecdsa", &PKCS_ECDSA_P256_SHA256, false)),
            ("ed25519", make("ed25519", &PKCS_ED25519, false)),
            ("chain", make("chain", &PKCS_ECDSA_P256_SHA256, true)),
            ("rsa", make_rsa()),
        ];
        for (kind, certs) in &kinds {
            let (_r, tls) = tls_relay(certs, |_| {});
            let (st, out, err) = curl(&[
                "-sS",
                "-v",
                "--cacert",
                &ca_arg(certs),
                &https(tls, "/help"),
            ]);
            assert!(st.success(), "{kind}: {err}");
            assert!(
                err.contains("ALPN: server accepted http/1.1"),
                "{kind}: no ALPN http/1.1 in curl's log:\n{err}"
            );
            let text = String::from_utf8_lossy(&out);
            assert!(text.contains(&format!("https://{tls}/")), "{kind}: {text}");
        }
    }

    /// A private relay over HTTPS: the credentials travel encrypted and
    /// the gate reads them as over plain HTTP; without them, `401` with
    /// its challenge, over TLS.
    #[test]
    fn a_private_relay_over_tls_checks_the_token() {
        let certs = make("auth", &PKCS_ECDSA_P256_SHA256, false);
        let token = "tls-token-6d0c2e4b1f";
        let text = format!(
            "token ci {}\nallow ci send,receive /\n",
            weir::auth::hash_secret(token.as_bytes())
        );
        let rules = weir::auth::Rules::parse(&text).unwrap();
        let (r, tls) = tls_relay(&certs, |c| {
            c.auth = Some(std::sync::Arc::new(rules));
            c.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
        });
        let ca = ca_arg(&certs);
        let bearer = format!("Authorization: Bearer {token}");
        let body = pattern(1 << 20, 7);
        let file = TempFile::new("in", &body);
        let out = TempFile::new("out", b"");
        let url = https(tls, "/private");
        let (st, said, err) = curl(&[
            "-sS",
            "--cacert",
            &ca,
            "-T",
            file.path_str(),
            "-w",
            "%{http_code}",
            &url,
        ]);
        assert!(st.success(), "{err}");
        assert!(
            String::from_utf8_lossy(&said).ends_with("401"),
            "an anonymous sender over TLS: {}",
            String::from_utf8_lossy(&said)
        );
        let receiver = Curl::spawn(&[
            "-sS",
            "--fail",
            "--cacert",
            &ca,
            "-H",
            &bearer,
            "-o",
            out.path_str(),
            &url,
        ]);
        let (st, _, err) = curl(&[
            "-sS",
            "--fail",
            "--cacert",
            &ca,
            "-H",
            &bearer,
            "-T",
            file.path_str(),
            &url,
        ]);
        assert!(st.success(), "sender: {err}");
        let (st, _, err) = receiver.finish();
        assert!(st.success(), "receiver: {err}");
        assert!(
            std::fs::read(&out.path).unwrap() == body,
            "the body changed"
        );
        r.assert_idle();
    }

    #[test]
    fn plain_http_to_the_tls_address_is_told_to_use_https() {
        let certs = make("plain", &PKCS_ECDSA_P256_SHA256, false);
        let (r, tls) = tls_relay(&certs, |_| {});
        let (st, out, err) = curl(&[
            "-sS",
            "-w",
            "\n%{http_code}",
            &format!("http://{tls}/some/path"),
        ]);
        assert!(st.success(), "{err}");
        let text = String::from_utf8_lossy(&out);
        assert!(text.ends_with("\n400"), "{text}");
        assert!(
            text.contains(&format!("use https://{tls}/some/path")),
            "{text}"
        );
        r.assert_idle();
    }

    #[test]
    fn a_handshake_that_never_finishes_is_closed_at_the_head_timeout() {
        let certs = make("stall", &PKCS_ECDSA_P256_SHA256, false);
        let (r, tls) = tls_relay(&certs, |c| c.head_timeout = Duration::from_secs(1));
        // The start of a ClientHello record, then nothing.
        let mut half = TcpStream::connect(tls).unwrap();
        half.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00])
            .unwrap();
        // A client that never says anything at all.
        let mut mute = TcpStream::connect(tls).unwrap();
        let start = Instant::now();
        for s in [&mut half, &mut mute] {
            let (got, _) = read_until_closed(s, Duration::from_secs(5));
            assert!(got.is_empty(), "the relay wrote {} bytes", got.len());
        }
        assert!(
            start.elapsed() >= Duration::from_millis(900),
            "closed after {:?}, before the head timeout",
            start.elapsed()
        );
        r.assert_idle();
    }

    #[test]
    fn the_ephemeral_socket_lines_and_help_say_https() {
        let certs = make("urls", &PKCS_ECDSA_P256_SHA256, false);
        let (r, tls) = tls_relay(&certs, |_| {});
        let ca = ca_arg(&certs);
        let file = TempFile::new("in", b"over tls\n");
        // (`-T` to a URL ending in `/` would append the file's name.)
        let data = format!("@{}", file.path_str());
        let sender = Curl::spawn(&[
            "-sS",
            "-N",
            "--cacert",
            &ca,
            "--data-binary",
            &data,
            &https(tls, "/"),
        ]);
        let first = sender.next_line();
        assert!(first.contains("Ephemeral socket open with ID"), "{first}");
        let url = sender.next_line();
        let prefix = format!("https://{tls}/s/");
        assert!(url.starts_with(&prefix), "{url}");
        let (st, got, err) = curl(&["-sS", "--cacert", &ca, url.trim()]);
        assert!(st.success(), "{err}");
        assert_eq!(got, b"over tls\n");
        let (st, _, err) = sender.finish();
        assert!(st.success(), "{err}");
        // The help's examples name the scheme the client came with.
        let (st, help, err) = curl(&["-sS", "--cacert", &ca, &https(tls, "/help")]);
        assert!(st.success(), "{err}");
        let help = String::from_utf8(help).unwrap();
        assert!(
            help.contains(&format!("curl -T myfile https://{tls}/mypath")),
            "{help}"
        );
        assert!(help.contains(&format!("wss://{tls}/chat")), "{help}");
        r.assert_idle();
    }

    #[test]
    fn a_bad_certificate_file_stops_the_start_with_one_line() {
        let certs = make("bad", &PKCS_ECDSA_P256_SHA256, false);
        std::fs::write(&certs.cert, "not a certificate\n").unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0"])
            .arg("--tls-cert")
            .arg(&certs.cert)
            .arg("--tls-key")
            .arg(&certs.key)
            .output()
            .expect("run weir");
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("holds no certificate"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }

    /// The real binary with a plain and a TLS address on free ports; its
    /// log lines arrive on a channel.
    struct Tls {
        child: Child,
        plain: SocketAddr,
        tls: SocketAddr,
        log: std::sync::mpsc::Receiver<String>,
    }

    impl Tls {
        /// Wait for a log line containing `needle`, or panic at the deadline.
        fn wait_log(&self, needle: &str) -> String {
            let deadline = Instant::now() + DEADLINE;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match self.log.recv_timeout(left) {
                    Ok(line) if line.contains(needle) => return line,
                    Ok(_) => {}
                    Err(e) => panic!("no log line with {needle:?}: {e}"),
                }
            }
        }
    }

    impl Drop for Tls {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn free_port() -> SocketAddr {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    }

    fn start_binary(cert: &Path, key: &Path) -> Tls {
        for _ in 0..20 {
            let (plain, tls) = (free_port(), free_port());
            let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
                .arg("--listen")
                .arg(plain.to_string())
                .arg("--tls-listen")
                .arg(tls.to_string())
                .arg("--tls-cert")
                .arg(cert)
                .arg("--tls-key")
                .arg(key)
                .env("RUST_LOG", "info")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn weir");
            let stderr = child.stderr.take().unwrap();
            let (tx, log) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            let deadline = Instant::now() + DEADLINE;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if TcpStream::connect(plain).is_ok() && TcpStream::connect(tls).is_ok() {
                    return Tls {
                        child,
                        plain,
                        tls,
                        log,
                    };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("weir with TLS did not start");
    }

    /// Whether a client trusting `ca` completes a request to `url`.
    fn trusted(ca: &Path, url: &str) -> bool {
        let (st, _, _) = curl(&["-sS", "--cacert", ca.to_str().unwrap(), url]);
        st.success()
    }

    #[test]
    fn sighup_reloads_the_certificate_while_a_transfer_runs() {
        let old = make("old", &PKCS_ECDSA_P256_SHA256, false);
        let new = make("new", &PKCS_ED25519, true);
        // The relay reads the files at `live`; they are replaced in place,
        // as certbot's deploy hook would.
        let live = scratch("live");
        let (cert, key) = (live.join("cert.pem"), live.join("key.pem"));
        std::fs::copy(&old.cert, &cert).unwrap();
        std::fs::copy(&old.key, &key).unwrap();
        let relay = start_binary(&cert, &key);
        let url = https(relay.tls, "/reload");
        assert!(trusted(&old.ca, &https(relay.tls, "/healthz")));
        assert!(!trusted(&new.ca, &https(relay.tls, "/healthz")));

        // A transfer that takes a few seconds: 8 MiB at 3 MB/s.
        let body = pattern(8 << 20, 21);
        let file = TempFile::new("in", &body);
        let out = TempFile::new("out", b"");
        let ca = old.ca.to_str().unwrap();
        let receiver = Curl::spawn(&["-sS", "--cacert", ca, "-o", out.path_str(), &url]);
        let sender = Curl::spawn(&[
            "-sS",
            "--cacert",
            ca,
            "--limit-rate",
            "3M",
            "-T",
            file.path_str(),
            &url,
        ]);
        wait_metric(relay.plain, "weir_pipes{state=\"streaming\"}", 1.0);

        // A file that is not a certificate keeps the one in use.
        std::fs::write(&cert, "garbage\n").unwrap();
        signal_hup(&relay.child);
        let line = relay.wait_log("SIGHUP:");
        assert!(line.contains("keeping the certificate in use"), "{line}");
        assert!(trusted(&old.ca, &https(relay.tls, "/healthz")));
        // The new pair: new connections get it once the signal is read.
        std::fs::copy(&new.cert, &cert).unwrap();
        std::fs::copy(&new.key, &key).unwrap();
        signal_hup(&relay.child);
        let line = relay.wait_log("SIGHUP:");
        assert!(line.contains("reloaded the TLS certificate"), "{line}");
        assert!(trusted(&new.ca, &https(relay.tls, "/healthz")));
        assert!(!trusted(&old.ca, &https(relay.tls, "/healthz")));
        // The transfer that began before the reload goes on to the end.
        assert_eq!(
            crate::support::relay::metrics(relay.plain)["weir_pipes{state=\"streaming\"}"],
            1.0,
            "the transfer ended before the reload was checked; make it slower"
        );
        let (st, _, err) = sender.finish();
        assert!(st.success(), "sender: {err}");
        let (st, _, err) = receiver.finish();
        assert!(st.success(), "receiver: {err}");
        assert!(
            std::fs::read(&out.path).unwrap() == body,
            "the body changed"
        );
        let _ = std::fs::remove_dir_all(&live);
    }

    #[test]
    fn a_slow_tls_receiver_holds_the_sender_back_without_growing_memory() {
        let certs = make("slow", &PKCS_ECDSA_P256_SHA256, false);
        let relay = start_binary(&certs.cert, &certs.key);
        let rss = || {
            let status =
                std::fs::read_to_string(format!("/proc/{}/status", relay.child.id())).unwrap();
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .expect("VmRSS")
        };
        let before = rss();
        // 64 MiB offered at full speed to a receiver that takes 200 KB/s.
        let body = pattern(64 << 20, 5);
        let file = TempFile::new("in", &body);
        let url = https(relay.tls, "/slow");
        let ca = certs.ca.to_str().unwrap();
        let receiver = Curl::spawn(&[
            "-sS",
            "--cacert",
            ca,
            "--limit-rate",
            "200K",
            "-o",
            "/dev/null",
            &url,
        ]);
        let sender = Curl::spawn(&["-sS", "--cacert", ca, "-T", file.path_str(), &url]);
        wait_metric(relay.plain, "weir_pipes{state=\"streaming\"}", 1.0);
        // While the transfer runs the relay holds its ring and each TLS
        // connection's bounded buffers, never the body the sender offers.
        let mut peak = 0;
        for _ in 0..20 {
            peak = peak.max(rss());
            std::thread::sleep(Duration::from_millis(100));
        }
        let relayed = crate::support::relay::metrics(relay.plain)["weir_bytes_relayed_total"];
        assert!(
            relayed < (16 << 20) as f64,
            "the receiver was not slow: {relayed} bytes"
        );
        assert!(
            peak < before + 4096,
            "RSS grew from {before} KiB to {peak} KiB while the receiver was slow"
        );
        drop(sender);
        drop(receiver);
    }

    fn signal_hup(child: &Child) {
        let st = Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    }
}
