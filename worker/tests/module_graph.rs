//! The Worker's modules depend on each other in one direction only: this reads every
//! source file, collects which top-level modules each one names (`crate::x`), and fails
//! on any cycle, printing it. The README's module table is the picture of this graph.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// Top-level module of a file under `src/` (`config/history.rs` -> `config`).
fn module_of(relative: &Path) -> String {
    let first = relative
        .components()
        .next()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .unwrap_or_default();
    first.trim_end_matches(".rs").to_string()
}

fn collect(
    dir: &Path,
    root: &Path,
    graph: &mut BTreeMap<String, BTreeSet<String>>,
) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, root, graph)?;
            continue;
        }
        let module = module_of(path.strip_prefix(root).unwrap_or(&path));
        let text = fs::read_to_string(&path)?;
        let deps = graph.entry(module.clone()).or_default();
        for (i, _) in text.match_indices("crate::") {
            let name: String = text[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            // `crate::args!` is the D1 argument macro, defined at the root by `store`.
            let name = if name == "args" {
                "store".to_string()
            } else {
                name
            };
            if !name.is_empty() && name != module && name != "lib" {
                deps.insert(name);
            }
        }
    }
    Ok(())
}

fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn worker_modules_form_no_cycle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph = BTreeMap::new();
    collect(&root, &root, &mut graph).unwrap();
    // The entry points dispatch to everything; they are not a module others use.
    graph.remove("lib");
    assert!(graph.len() > 10, "read the modules: {graph:?}");
    if let Some(cycle) = find_cycle(&graph) {
        panic!("module cycle: {}", cycle.join(" -> "));
    }
    // The published state is read by config, flags, ofrep and probes, and depends on none.
    let published = &graph["published"];
    for reader in ["config", "flags", "ofrep", "probes"] {
        assert!(
            graph[reader].contains("published"),
            "{reader} reads published"
        );
        assert!(!published.contains(reader), "published depends on {reader}");
    }
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let graph: BTreeMap<String, BTreeSet<String>> =
        [("a", vec!["b"]), ("b", vec!["c"]), ("c", vec!["a"])]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
            .collect();
    assert_eq!(
        find_cycle(&graph),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
}
