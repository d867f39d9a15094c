//! `/help` runs as shown: every example is fetched from a relay, its `$`
//! lines run with bash against that relay (the parties of a transfer at
//! the same time), and its result checked to the byte. An example the
//! table below does not know fails the test, as does one it knows that
//! the help no longer has: the help cannot grow an example nobody runs.
//!
//! The examples use curl, tar, openssl, age and python3's websocket
//! client. Without one of them the test prints a notice and passes,
//! unless `WEIR_HELP_TESTS=1` (set by `.ci/run`, which installs them).

use crate::support::curl::curl;
use crate::support::relay::Relay;
use crate::support::shell::{have_programs, same_tree, Ran, Workdir};

const REQUIRE_VAR: &str = "WEIR_HELP_TESTS";

/// One example as the help prints it.
#[derive(Debug)]
struct Example {
    title: String,
    cmds: Vec<String>,
    together: bool,
}

/// Paragraphs with `  $ ` lines; the title is the paragraph's unindented
/// text. "at the same time" in it makes each command a party.
fn examples(help: &str) -> Vec<Example> {
    let mut out = Vec::new();
    for para in help.split("\n\n") {
        let cmds: Vec<String> = para
            .lines()
            .filter_map(|l| l.strip_prefix("  $ "))
            .map(str::to_string)
            .collect();
        if cmds.is_empty() {
            continue;
        }
        let title = para
            .lines()
            .take_while(|l| !l.starts_with(' '))
            .collect::<Vec<_>>()
            .join(" ");
        let together = title.contains("at the same time");
        out.push(Example {
            title,
            cmds,
            together,
        });
    }
    out
}

fn fetch_help(relay: &Relay, path: &str, headers: &[&str]) -> String {
    let url = relay.url(path);
    let mut args = vec!["-sS"];
    for h in headers {
        args.push("-H");
        args.push(h);
    }
    args.push(&url);
    let (status, body, err) = curl(&args);
    assert!(status.success(), "curl {path}: {err}");
    String::from_utf8(body).unwrap()
}

fn show(ran: &[Ran]) -> String {
    ran.iter()
        .map(|r| {
            format!(
                "--- {}\n[exit {:?}]\n[stdout]\n{}\n[stderr]\n{}",
                r.cmd, r.code, r.stdout, r.stderr
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_example_runs_as_shown() {
    let programs = [
        "curl",
        "tar",
        "openssl",
        "age",
        "age-keygen",
        "python3-websocket",
    ];
    if !have_programs("help::every_example_runs_as_shown", &programs, REQUIRE_VAR) {
        return;
    }
    let relay = Relay::with(|c| c.reservations = true);
    let help = fetch_help(&relay, "/help", &[]);
    let url = relay.url("");
    assert!(
        help.contains(&format!("curl -T myfile {url}/mypath")),
        "{help}"
    );
    let dir = Workdir::new("help");
    let myfile = dir.file("myfile");
    // (title prefix, the commands that never end by themselves, what their
    // output shows when the example is done, the check)
    type Check = fn(&Workdir, &[Ran], &[u8]) -> bool;
    let table: &[(&str, &[usize], &str, Check)] = &[
        ("Send a file and receive it", &[], "", |d, r, f| {
            d.file("myfile.copy") == f && r[0].stdout.contains("[INFO] Sent successfully!")
        }),
        ("Send what a command prints", &[], "", |_, r, _| {
            r[1].stdout == "hello\n"
        }),
        ("Send a folder with tar", &[], "", |d, _, _| {
            same_tree(&d.path.join("mydir"), &d.path.join("copy/mydir"))
        }),
        ("Encrypt with openssl", &[], "", |d, _, f| {
            d.file("myfile.copy") == f
        }),
        (
            "Encrypt with age: the receiver makes",
            &[],
            "",
            |d, _, _| d.file("key.pub").starts_with(b"age1"),
        ),
        ("Then send with the public key", &[], "", |d, _, f| {
            d.file("myfile.copy") == f
        }),
        ("One sender, several receivers", &[], "", |d, r, f| {
            d.file("copy1") == f
                && d.file("copy2") == f
                && r[0].stdout.contains("Sent successfully")
        }),
        ("Let the relay pick the path", &[], "", |d, r, f| {
            d.file("myfile.copy") == f
                && r[0].stdout.contains("/s/")
                && r[0].stdout.contains("Upload complete. Socket deleted.")
        }),
        ("Reserve an ID", &[], "", |d, _, f| {
            d.file("myfile.copy") == f
        }),
        ("Events:", &[0], "data: hello", |_, r, _| {
            r[0].stdout.contains("event: greeting\ndata: hello\n")
        }),
        ("Signal swarms", &[], "", |_, r, _| {
            r[0].stdout.contains("\"token\":")
                && r[0].stdout.contains("data: {\"hello\":\"world\"}")
        }),
        ("WebSocket:", &[], "", |_, r, _| r[0].stdout == "hello\n"),
    ];
    let found = examples(&help);
    let titles: Vec<&str> = found.iter().map(|e| e.title.as_str()).collect();
    for (prefix, ..) in table {
        assert_eq!(
            titles.iter().filter(|t| t.starts_with(prefix)).count(),
            1,
            "the help should have one example titled {prefix:?}; it has {titles:#?}"
        );
    }
    for ex in &found {
        let Some((_, stays, until, check)) = table.iter().find(|e| ex.title.starts_with(e.0))
        else {
            panic!(
                "an example no test runs: {:?}; add it to the table",
                ex.title
            );
        };
        dir.remove(&["myfile.copy", "copy", "copy1", "copy2"]);
        let ran = if ex.together {
            dir.parties(&ex.cmds, stays, until)
        } else {
            vec![dir.script(&ex.cmds)]
        };
        assert!(
            check(&dir, &ran, &myfile),
            "example {:?} did not do what it says:\n{}",
            ex.title,
            show(&ran)
        );
        for (i, r) in ran.iter().enumerate() {
            if !stays.contains(&i) {
                assert_eq!(r.code, Some(0), "example {:?}:\n{}", ex.title, show(&ran));
            }
        }
    }
}

#[test]
fn root_answers_curl_with_the_help() {
    let relay = Relay::start();
    let root = fetch_help(&relay, "/", &[]);
    assert_eq!(root, fetch_help(&relay, "/help", &[]));
    assert!(
        root.contains(&format!("curl {}/mypath", relay.url(""))),
        "{root}"
    );
    assert!(!root.contains("/reserve"), "reservations are off: {root}");
}

#[test]
fn urls_follow_a_trusted_proxy_only() {
    let proxy_says = [
        "X-Forwarded-Proto: https",
        "X-Forwarded-Host: relay.example",
    ];
    let plain = Relay::start();
    let help = fetch_help(&plain, "/help", &proxy_says);
    assert!(
        help.contains(&format!("{}/mypath", plain.url(""))) && !help.contains("relay.example"),
        "{help}"
    );
    let trusting = Relay::with(|c| c.trust_proxy = true);
    let help = fetch_help(&trusting, "/help", &proxy_says);
    assert!(
        help.contains("curl -T myfile https://relay.example/mypath"),
        "{help}"
    );
    assert!(help.contains("wss://relay.example/chat"), "{help}");
    let help = fetch_help(
        &trusting,
        "/help",
        &["Forwarded: for=192.0.2.1;proto=https;host=relay.example"],
    );
    assert!(help.contains("curl https://relay.example/mypath"), "{help}");
}
