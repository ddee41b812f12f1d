//! The façade imports only downwards: no circle of `use` paths between its
//! modules (docs/architecture.md). Read from the source files, so a new
//! route module that imports `api/mod.rs`, or a cache that imports a
//! feature folder, fails here instead of tangling the house again.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every module under `src/api`, by path (`["api", "instances", "query"]`),
/// with its source (tests left out).
fn modules(root: &Path) -> BTreeMap<Vec<String>, String> {
    let mut found = BTreeMap::new();
    let mut dirs = vec![root.join("api")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("src/api is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative: PathBuf = path.strip_prefix(root).expect("below src").with_extension("");
            let mut name: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
            if name.last().is_some_and(|n| n == "mod") {
                name.pop();
            }
            let source = std::fs::read_to_string(&path).expect("a readable source file");
            let without_tests = source.split("#[cfg(test)]").next().unwrap_or_default().to_string();
            found.insert(name, without_tests);
        }
    }
    found
}

/// The longest known module a path names, from module `from`.
fn resolve(modules: &BTreeMap<Vec<String>, String>, from: &[String], path: &[&str]) -> Option<Vec<String>> {
    let (mut base, rest): (Vec<String>, &[&str]) = match path.first()? {
        &"crate" => (Vec::new(), &path[1..]),
        &"self" => (from.to_vec(), &path[1..]),
        &"super" => {
            let ups = path.iter().take_while(|s| **s == "super").count();
            (from[..from.len().checked_sub(ups)?].to_vec(), &path[ups..])
        }
        // A child module named without a prefix.
        first if modules.contains_key(&[from, &[first.to_string()]].concat()) => (from.to_vec(), path),
        _ => return None,
    };
    let mut best = None;
    for segment in rest {
        base.push(segment.to_string());
        if modules.contains_key(&base) {
            best = Some(base.clone());
        } else {
            break;
        }
    }
    best
}

/// Paths the source names: `a::b::c` and each item of `a::{b, c::d}`.
fn paths(source: &str) -> Vec<Vec<&str>> {
    let mut found = Vec::new();
    let is_path_char = |c: char| c.is_alphanumeric() || c == '_' || c == ':';
    for (start, _) in source.match_indices("::") {
        let before = &source[..start];
        let begin = before.rfind(|c: char| !is_path_char(c)).map_or(0, |i| i + 1);
        let rest = &source[begin..];
        let end = rest.find(|c: char| !is_path_char(c)).unwrap_or(rest.len());
        let head: Vec<&str> = rest[..end].split("::").filter(|s| !s.is_empty()).collect();
        if rest[end..].starts_with('{') {
            let group = &rest[end + 1..rest[end..].find('}').map_or(rest.len(), |i| end + i)];
            for item in group.split(',') {
                let item = item.trim().split_whitespace().next().unwrap_or_default();
                if !item.is_empty() {
                    found.push([head.clone(), item.split("::").collect()].concat());
                }
            }
        }
        found.push(head);
    }
    found
}

/// A circle of imports, if there is one.
fn circle(graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Option<Vec<Vec<String>>> {
    fn visit(
        node: &Vec<String>,
        graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        stack: &mut Vec<Vec<String>>,
        done: &mut BTreeSet<Vec<String>>,
    ) -> Option<Vec<Vec<String>>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            return Some(stack[at..].to_vec());
        }
        if !done.insert(node.clone()) {
            return None;
        }
        stack.push(node.clone());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, graph, stack, done) {
                return Some(found);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_facade_has_no_circle_of_imports() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let modules = modules(&root);
    assert!(modules.len() > 20, "src/api was read");
    let graph: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = modules
        .iter()
        .map(|(name, source)| {
            let targets = paths(source)
                .iter()
                .filter_map(|path| resolve(&modules, name, path))
                .filter(|target| target != name && target.first().is_some_and(|m| m == "api"))
                .collect();
            (name.clone(), targets)
        })
        .collect();
    let modules_of_state = &graph[&vec!["api".to_string(), "state".to_string()]];
    assert!(
        modules_of_state.contains(&vec!["api".to_string(), "caches".to_string()]),
        "the reader sees imports (state uses the caches)"
    );
    if let Some(circle) = circle(&graph) {
        let names: Vec<String> = circle.iter().map(|m| m.join("::")).collect();
        panic!("a circle of imports in the façade: {}", names.join(" -> "));
    }
}

#[test]
fn a_circle_is_found() {
    let node = |n: &str| vec![n.to_string()];
    let mut graph = BTreeMap::new();
    graph.insert(node("a"), BTreeSet::from([node("b")]));
    graph.insert(node("b"), BTreeSet::from([node("c")]));
    graph.insert(node("c"), BTreeSet::from([node("a")]));
    assert_eq!(circle(&graph).map(|c| c.len()), Some(3));
    graph.insert(node("c"), BTreeSet::new());
    assert_eq!(circle(&graph), None);
}
