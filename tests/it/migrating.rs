//! docs/migrating.md runs as shown: every `sh` block marked
//! `<!-- run: expect "..." ... -->` runs in one bash against a relay (its
//! `127.0.0.1:8080` replaced by the relay's address, the `weir` binary on
//! `PATH`), must exit 0, and must print every quoted text.

use crate::support::relay::Binary;
use crate::support::shell::{have_programs, Workdir};

/// (the expected texts, the block's lines) for each marked block.
fn blocks(doc: &str) -> Vec<(Vec<String>, Vec<String>)> {
    let mut out = Vec::new();
    let mut lines = doc.lines();
    while let Some(l) = lines.next() {
        let Some(spec) = l
            .strip_prefix("<!-- run:")
            .and_then(|s| s.strip_suffix("-->"))
        else {
            continue;
        };
        assert_eq!(
            lines.next(),
            Some("```sh"),
            "a run marker must precede a sh block: {l}"
        );
        let body: Vec<String> = lines
            .by_ref()
            .take_while(|l| *l != "```")
            .map(str::to_string)
            .collect();
        out.push((
            quoted(spec.trim().strip_prefix("expect").unwrap_or("")),
            body,
        ));
    }
    out
}

/// The double-quoted strings in `s` (`\"` and `\\` escaped).
fn quoted(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '"' {
            continue;
        }
        let mut q = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => q.extend(chars.next()),
                '"' => break,
                c => q.push(c),
            }
        }
        out.push(q);
    }
    out
}

#[test]
fn every_marked_block_runs_and_prints_what_it_says() {
    if !have_programs(
        "migrating::every_marked_block_runs_and_prints_what_it_says",
        &["curl", "cmp", "grep", "sed"],
        "WEIR_HELP_TESTS",
    ) {
        return;
    }
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/migrating.md")).unwrap();
    let found = blocks(&doc);
    assert!(found.len() >= 7, "{} marked blocks", found.len());
    let relay = Binary::start(&[]);
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_weir"))
        .parent()
        .unwrap();
    let dir = Workdir::new("migrating");
    for (expect, body) in found {
        assert!(
            !expect.is_empty(),
            "a block must say what it prints: {body:?}"
        );
        dir.remove(&["myfile.copy", "news.txt"]);
        let mut script = vec![format!("export PATH={}:$PATH", bin_dir.display())];
        script.push("set -eo pipefail".to_string());
        script.extend(
            body.iter()
                .map(|l| l.replace("127.0.0.1:8080", &relay.addr.to_string())),
        );
        let ran = dir.script(&script);
        let shown = format!(
            "block:\n{}\n[exit {:?}]\n[stdout]\n{}\n[stderr]\n{}",
            body.join("\n"),
            ran.code,
            ran.stdout,
            ran.stderr
        );
        assert_eq!(ran.code, Some(0), "{shown}");
        for e in &expect {
            assert!(
                ran.stdout.contains(e.as_str()),
                "no {e:?} in the output of the {shown}"
            );
        }
    }
}

#[test]
fn markers_are_read_as_written() {
    let doc = "x\n<!-- run: expect \"a \\\"b\\\"\" \"c\" -->\n```sh\necho 1\necho 2\n```\n";
    let b = blocks(doc);
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].0, vec!["a \"b\"".to_string(), "c".to_string()]);
    assert_eq!(b[0].1, vec!["echo 1".to_string(), "echo 2".to_string()]);
}
