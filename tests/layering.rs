//! The folder-level import graph of `src/`, checked: no cycle between
//! folders, no arrow from `sys` into a pure layer, no arrow from one face
//! (cli, stage1, stage2) into another. It reads the sources as text, so it
//! sees `use crate::x` and inline `crate::x::y` paths alike; test modules
//! are left out, as they may borrow fixtures from anywhere.
//!
//! `cargo test --test layering -- --nocapture` prints the graph.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The binary crate's top-level modules; everything else is the library.
const BINARY: &[&str] = &["cli", "stage1", "stage2", "live_scan", "probe", "bundle"];
/// The faces: each is one way into the program, and none uses another.
const FACES: &[&str] = &["cli", "stage1", "stage2"];
/// Pure logic: no syscalls, so `sys` must not depend on them.
const PURE: &[&str] = &["image", "discovery", "boot", "tui"];

type Graph = BTreeMap<String, BTreeSet<String>>;

/// The part of a file that is not its unit tests.
fn without_tests(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim() == "#[cfg(test)]"
            && lines
                .peek()
                .is_some_and(|next| next.trim_start().starts_with("mod tests"))
        {
            break;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The module names that follow `prefix` in `code`, e.g. `crate::` → `boot`.
fn targets<'a>(code: &'a str, prefix: &str) -> Vec<&'a str> {
    code.match_indices(prefix)
        .filter(|(at, _)| {
            // `vhdboot::` inside `foo_vhdboot::` is not a path into the crate.
            code[..*at]
                .chars()
                .next_back()
                .is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
        })
        .map(|(at, _)| {
            let rest = &code[at + prefix.len()..];
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .filter(|name| !name.is_empty())
        .collect()
}

fn add_file(graph: &mut Graph, folder: &str, text: &str) {
    let code: String = without_tests(text)
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut found = targets(&code, "crate::");
    if BINARY.contains(&folder) {
        found.extend(targets(&code, "vhdboot::"));
    }
    let edges = graph.entry(folder.to_string()).or_default();
    for target in found {
        if target != folder {
            edges.insert(target.to_string());
        }
    }
}

fn walk(graph: &mut Graph, dir: &Path, folder: Option<&str>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        let top = folder.unwrap_or(stem);
        if path.is_dir() {
            walk(graph, &path, Some(top));
        } else if path.extension().is_some_and(|e| e == "rs") {
            if folder.is_none() && (stem == "main" || stem == "lib") {
                continue;
            }
            if let Ok(text) = std::fs::read_to_string(&path) {
                add_file(graph, top, &text);
            }
        }
    }
}

fn import_graph() -> Graph {
    let mut graph = Graph::new();
    walk(
        &mut graph,
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        None,
    );
    graph
}

/// One cycle through `start`, if there is one.
fn cycle_from(graph: &Graph, start: &str) -> Option<Vec<String>> {
    fn visit(graph: &Graph, start: &str, path: &mut Vec<String>) -> bool {
        let Some(here) = path.last().cloned() else {
            return false;
        };
        for next in graph.get(&here).into_iter().flatten() {
            if next == start {
                path.push(next.clone());
                return true;
            }
            if !path.contains(next) {
                path.push(next.clone());
                if visit(graph, start, path) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_string()];
    visit(graph, start, &mut path).then_some(path)
}

#[test]
fn folders_import_each_other_without_cycles_or_forbidden_arrows() {
    let graph = import_graph();
    for (from, to) in &graph {
        let to: Vec<&str> = to.iter().map(String::as_str).collect();
        println!("{from} -> {}", to.join(", "));
    }
    let mut wrong = Vec::new();
    for start in graph.keys() {
        if let Some(cycle) = cycle_from(&graph, start) {
            wrong.push(format!("cycle: {}", cycle.join(" -> ")));
        }
    }
    for to in graph.get("sys").into_iter().flatten() {
        if PURE.contains(&to.as_str()) {
            wrong.push(format!("sys -> {to}: sys may not use a pure layer"));
        }
    }
    for face in FACES {
        for to in graph.get(*face).into_iter().flatten() {
            if FACES.contains(&to.as_str()) {
                wrong.push(format!("{face} -> {to}: one face may not use another"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
