//! A clean stop on SIGTERM: no new connections, waiting clients told,
//! running transfers finish within the grace period, then the process exits.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{http::*, net::*, payload::*, pipe::*, relay::*, DEADLINE};

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .arg(sig)
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(ok.success());
}

#[test]
fn sigterm_lets_a_running_transfer_finish_and_tells_waiting_clients() {
    let mut relay = Binary::start(&["--shutdown-grace", "10"]);
    let addr = relay.addr;
    // A running transfer: 2 MiB declared, half sent so far.
    let body = pattern(2 << 20, 9);
    let mut sender = connect(addr);
    write!(
        sender,
        "PUT /run HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    let mut receiver = start_receiver(addr, "/run");
    sender.write_all(&body[..1 << 20]).unwrap();
    // A waiting sender on another path.
    let mut waiting = connect(addr);
    write!(
        waiting,
        "PUT /wait HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"
    )
    .unwrap();
    read_until(&mut waiting, b"Waiting for 1 receiver(s)");
    signal(relay.pid(), "-TERM");
    // The waiting client is told and its response ends.
    let told = String::from_utf8_lossy(&read_to_end(&mut waiting)).into_owned();
    assert!(
        told.contains("[ERROR] The relay is shutting down."),
        "{told}"
    );
    // No new connection is served.
    let refused = match TcpStream::connect(addr) {
        Err(_) => true,
        Ok(mut s) => {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
            let mut b = [0u8; 16];
            !matches!(s.read(&mut b), Ok(n) if n > 0)
        }
    };
    assert!(refused, "a new connection was served after SIGTERM");
    // The running transfer completes, every byte.
    sender.write_all(&body[1 << 20..]).unwrap();
    let got = parse_response(&read_to_end(&mut receiver));
    assert_eq!(hash(&got.body), hash(&body));
    let sent = String::from_utf8_lossy(&read_to_end(&mut sender)).into_owned();
    assert!(sent.contains("Sent successfully!"), "{sent}");
    // Then the process exits by itself, well before the grace period ends.
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(status) = relay.child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(Instant::now() < deadline, "weir did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}
