//! The layering of `src/` (see `src/lib.rs`): no module uses a module of a
//! higher layer, no two modules use each other through a chain (a module
//! and its own submodules count as one), and `Server` has no `impl` block
//! outside the loop's own file. Read from the source files themselves, so a
//! new `use` that breaks the rule fails here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The layer of each module, lowest first. A module not listed takes the
/// layer of its nearest listed ancestor.
const LAYERS: &[(&str, u8)] = &[
    // Support: no I/O, no protocol state.
    ("config", 0),
    ("ids", 0),
    ("json", 0),
    ("form", 0),
    ("metrics", 0),
    ("hooks", 0),
    ("budget", 0),
    ("auth", 0),
    ("encoding", 0),
    // Sans-io edges.
    ("http", 1),
    ("help", 1),
    ("page", 1),
    ("ring", 1),
    ("timer", 1),
    ("wire", 1),
    ("splice", 1),
    ("websocket::codec", 1),
    ("websocket::hixie", 1),
    ("websocket::conn", 1),
    ("sockjs::protocol", 1),
    ("sockjs::conn", 1),
    ("events::sse", 1),
    ("relay::core", 1),
    ("relay::env", 1),
    ("relay::pump", 1),
    // Connections and what families share.
    ("net", 2),
    // Families.
    ("relay", 3),
    ("events", 3),
    ("websocket", 3),
    ("sockjs", 3),
    // The loop.
    ("reactor", 4),
];

fn layer(module: &str) -> u8 {
    let mut best: Option<(usize, u8)> = None;
    for (name, l) in LAYERS {
        let hit = module == *name || module.starts_with(&format!("{name}::"));
        if hit && best.map_or(true, |(len, _)| name.len() > len) {
            best = Some((name.len(), *l));
        }
    }
    best.map(|(_, l)| l)
        .unwrap_or_else(|| panic!("module {module} has no layer: add it to LAYERS"))
}

/// `src/a/b.rs` and `src/a/b/mod.rs` are module `a::b`; `lib.rs` is the root.
fn module_of(rel: &Path) -> String {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs").to_string();
    if stem != "mod" && stem != "lib" {
        parts.push(stem);
    }
    parts.join("::")
}

fn sources(dir: &Path, root: &Path, out: &mut Vec<(String, String)>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let rel = p.strip_prefix(root).unwrap();
        if p.is_dir() {
            if rel != Path::new("bin") {
                sources(&p, root, out);
            }
        } else if p.extension().is_some_and(|x| x == "rs") && rel != Path::new("main.rs") {
            out.push((module_of(rel), std::fs::read_to_string(&p).unwrap()));
        }
    }
}

/// The modules `text` (the source of `module`) refers to: `crate::` and
/// `super::` paths, cut to the longest name that is a module.
fn uses(module: &str, text: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    // Code only: comments may name anything.
    let code: String = text
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let parent = module.rsplit_once("::").map_or("", |(p, _)| p);
    for (prefix, base) in [("crate::", ""), ("super::", parent)] {
        let mut rest = code.as_str();
        while let Some(i) = rest.find(prefix) {
            let after = &rest[i + prefix.len()..];
            let path: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let full = if base.is_empty() {
                path.trim_end_matches(':').to_string()
            } else {
                format!("{base}::{}", path.trim_end_matches(':'))
            };
            // The longest prefix that names a module.
            let segs: Vec<&str> = full.split("::").collect();
            for n in (1..=segs.len()).rev() {
                let cand = segs[..n].join("::");
                if modules.contains(&cand) {
                    if cand != module {
                        out.insert(cand);
                    }
                    break;
                }
            }
            rest = &after[path.len()..];
        }
    }
    out
}

fn related(a: &str, b: &str) -> bool {
    a.is_empty()
        || b.is_empty()
        || a.starts_with(&format!("{b}::"))
        || b.starts_with(&format!("{a}::"))
}

#[test]
fn no_module_uses_a_higher_layer_and_there_are_no_cycles() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &root, &mut files);
    let modules: BTreeSet<String> = files.iter().map(|(m, _)| m.clone()).collect();
    assert!(modules.contains("relay::core") && modules.contains("reactor"));
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut wrong = Vec::new();
    for (m, text) in &files {
        if m.is_empty() {
            continue; // lib.rs declares and re-exports; it is the crate's face.
        }
        let deps = uses(m, text, &modules);
        for d in &deps {
            if !related(m, d) && layer(d) > layer(m) {
                wrong.push(format!(
                    "{m} (layer {}) uses {d} (layer {})",
                    layer(m),
                    layer(d)
                ));
            }
        }
        graph.insert(m.clone(), deps);
    }
    assert!(
        wrong.is_empty(),
        "lower layers use higher ones:\n{}",
        wrong.join("\n")
    );
    // Cycles between modules that are not ancestor and descendant.
    for start in graph.keys() {
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        let mut seen = BTreeSet::new();
        while let Some((m, path)) = stack.pop() {
            for d in graph.get(&m).into_iter().flatten() {
                if related(&m, d) {
                    continue;
                }
                if d == start {
                    panic!("an import cycle: {} -> {d}", path.join(" -> "));
                }
                if seen.insert(d.clone()) {
                    let mut p = path.clone();
                    p.push(d.clone());
                    stack.push((d.clone(), p));
                }
            }
        }
    }
}

#[test]
fn server_has_no_impl_outside_the_loops_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &root, &mut files);
    for (m, text) in &files {
        if m == "reactor" {
            continue;
        }
        assert!(
            !text.contains("impl Server"),
            "{m} has an `impl Server` block; the loop's own file alone may"
        );
    }
}

#[test]
fn the_connection_has_no_boxed_protocol_fields() {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/net/conn.rs"))
            .unwrap();
    let conn = text.split("pub struct Conn {").nth(1).unwrap();
    let conn = &conn[..conn.find("\n}").unwrap()];
    assert!(
        !conn.contains("Option<Box<"),
        "Conn has an Option<Box<..>> field:\n{conn}"
    );
}
