//! The rooms' rules, checked on the source tree so that they stay true:
//! no import cycle between top-level modules, no production file over 400
//! lines before its tests, and a shell entry point under 200 lines.
//!
//! The check reads the files as text (test code included; imports of the
//! test-only `testkit` are not edges): a `crate::name` outside a comment is
//! an import of the top-level module `name`, wherever it stands (`use`
//! lines, grouped `use crate::{a, b}`, or a path in an expression).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
/// The longest a production file may be before its `#[cfg(test)]` block.
const MAX_PRODUCTION_LINES: usize = 400;
/// `src/shell/mod.rs` only wires: entry, bindings, dispatch.
const MAX_SHELL_ENTRY_LINES: usize = 200;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).expect("src/ is readable");
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `.rs` file under `src/`, with its path relative to `src/`.
fn sources() -> Vec<(String, String)> {
    let mut files = Vec::new();
    rust_files(Path::new(SRC), &mut files);
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let rel = p
                .strip_prefix(SRC)
                .expect("under src/")
                .to_string_lossy()
                .replace('\\', "/");
            let text = std::fs::read_to_string(&p).expect("a source file is UTF-8");
            (rel, text)
        })
        .collect()
}

/// The top-level module a file belongs to (`flows/tests/mod.rs` → `flows`).
fn top_module(rel: &str) -> &str {
    let first = rel.split('/').next().unwrap_or(rel);
    first.strip_suffix(".rs").unwrap_or(first)
}

/// Files that are tests through and through.
fn is_test_file(rel: &str) -> bool {
    rel.contains("/tests/")
        || rel.ends_with("/tests.rs")
        || rel.ends_with("/props.rs")
        || rel == "boundary_props.rs"
        || rel == "layout_rules.rs"
        || rel.starts_with("testkit")
}

/// The top-level modules `text` names as `crate::x`, comments left out.
fn imports(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let inner = group.split('}').next().unwrap_or("");
                for item in inner.split(',') {
                    let name: String = item
                        .trim()
                        .chars()
                        .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                        .collect();
                    if !name.is_empty() {
                        found.insert(name);
                    }
                }
            } else {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    found.insert(name);
                }
            }
        }
    }
    found
}

/// The import graph between top-level modules (edges to itself left out).
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (rel, text) in sources() {
        let from = top_module(&rel).to_owned();
        if from == "lib" || from == "fuzz_api" {
            continue;
        }
        let targets = edges.entry(from.clone()).or_default();
        for to in imports(&text) {
            // The test doubles are used by every room's tests and use the
            // rooms they stand in for: a test-only leaf, not a room.
            if to != from && to != "testkit" {
                targets.insert(to);
            }
        }
    }
    edges
}

/// The path `from` → … → `to`, if there is one.
fn path_between(
    edges: &BTreeMap<String, BTreeSet<String>>,
    from: &str,
    to: &str,
) -> Option<Vec<String>> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![vec![from.to_owned()]];
    while let Some(path) = stack.pop() {
        let last = path.last().expect("never empty").clone();
        if last == to {
            return Some(path);
        }
        if !seen.insert(last.clone()) {
            continue;
        }
        for next in edges.get(&last).into_iter().flatten() {
            let mut longer = path.clone();
            longer.push(next.clone());
            stack.push(longer);
        }
    }
    None
}

#[test]
fn no_import_cycle_between_top_level_modules() {
    let edges = graph();
    let mut cycles = Vec::new();
    for (from, targets) in &edges {
        for to in targets {
            if let Some(back) = path_between(&edges, to, from) {
                cycles.push(format!("{from} -> {}", back.join(" -> ")));
            }
        }
    }
    assert!(cycles.is_empty(), "import cycles: {cycles:#?}");
}

#[test]
fn production_files_stay_short() {
    let mut long = Vec::new();
    for (rel, text) in sources() {
        if is_test_file(&rel) {
            continue;
        }
        let before_tests = text
            .lines()
            .position(|l| l.trim() == "#[cfg(test)]")
            .unwrap_or_else(|| text.lines().count());
        if before_tests > MAX_PRODUCTION_LINES {
            long.push(format!("{rel}: {before_tests} lines before its tests"));
        }
        if rel == "shell/mod.rs" && text.lines().count() >= MAX_SHELL_ENTRY_LINES {
            long.push(format!(
                "{rel}: {} lines (under {MAX_SHELL_ENTRY_LINES})",
                text.lines().count()
            ));
        }
    }
    assert!(long.is_empty(), "too long: {long:#?}");
}

/// The checker itself: a cycle and a grouped import are seen, comments are
/// not imports.
#[test]
fn the_checker_sees_what_it_should() {
    let text = "use crate::{config, http::path};\n// crate::logs\nlet x = crate::error::X;";
    let found: Vec<String> = imports(text).into_iter().collect();
    assert_eq!(found, ["config", "error", "http"]);
    let mut edges = BTreeMap::new();
    edges.insert("a".to_owned(), BTreeSet::from(["b".to_owned()]));
    edges.insert("b".to_owned(), BTreeSet::from(["a".to_owned()]));
    assert_eq!(
        path_between(&edges, "b", "a"),
        Some(vec!["b".to_owned(), "a".to_owned()])
    );
    assert_eq!(path_between(&edges, "b", "c"), None);
    assert_eq!(top_module("flows/tests/mod.rs"), "flows");
    assert_eq!(top_module("config.rs"), "config");
}
