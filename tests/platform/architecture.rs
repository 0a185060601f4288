//! The layering of docs/design/architecture.md, checked against the code's imports: no cycle
//! between top-level modules, no edge the layering table forbids, and no cycle between the
//! sibling modules of any folder (except those listed in `KNOWN_SIBLING_CYCLES`: none today).
//!
//! Edges are read from the source text: every `crate::…`, `super::…` and `self::…` path (with
//! `use` groups expanded), outside comments and outside inline `#[cfg(test)]` modules, resolved
//! against the module of the file it is in.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

/// The layering table: each top-level module and its layer. A module may use any module of a
/// lower layer, and of its own layer only through [`SAME_LAYER`]; `cli` (layer 4) may use all.
const LAYERS: &[(&str, u8)] = &[
    ("exit", 0),
    ("paths", 0),
    ("logging", 0),
    ("backoff", 0),
    ("net", 0),
    ("telemetry", 0),
    ("config", 0),
    ("keys", 1),
    ("service", 1),
    ("postgres", 2),
    ("aggregator", 2),
    ("node", 2),
    ("process_metrics", 2),
    ("attestation", 2),
    ("snapshot", 2),
    ("live_view", 2),
    ("alerts", 2),
    ("supervisor", 3),
    ("cli", 4),
];

/// The edges the table names inside one layer (each one-way).
const SAME_LAYER: &[(&str, &str)] = &[
    // Layer 0: "each other downward only".
    ("config", "exit"),
    ("config", "paths"),
    ("config", "logging"),
    ("telemetry", "config"),
    ("telemetry", "net"),
    ("telemetry", "logging"),
    ("telemetry", "backoff"),
    ("net", "logging"),
    // Layer 2: "the one-way edges between components".
    ("node", "postgres"),
    ("node", "attestation"),
    ("snapshot", "attestation"),
    ("live_view", "snapshot"),
    ("alerts", "snapshot"),
];

/// Cycles between sibling modules tolerated while a change removes them: each pair's edges,
/// both ways, are left out of the sibling check, so any other cycle still fails it. None today
/// (the last, `node/feed` task <-> writes, went with `feed/shared.rs` and `feed/finalize.rs`).
const KNOWN_SIBLING_CYCLES: &[(&str, &str, &str)] = &[];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// A reference from one file to a module path (absolute, from the crate root).
#[derive(Debug, Clone)]
struct Reference {
    file: String,
    from: Vec<String>,
    to: Vec<String>,
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/a/b.rs` and `src/a/b/mod.rs` are module `a::b`.
fn module_of(file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src()).expect("under src");
    let mut parts: Vec<String> = relative
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The code without comments, string contents and inline `#[cfg(test)]` modules.
fn code_of(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim() == "#[cfg(test)]"
            && lines
                .peek()
                .is_some_and(|next| next.trim_start().starts_with("mod ") && next.ends_with('{'))
        {
            // The inline test module runs to the end of the file in this code base.
            break;
        }
        out.push_str(strip_comment_and_strings(line).as_str());
        out.push('\n');
    }
    out
}

fn strip_comment_and_strings(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => {
                    in_string = false;
                    out.push('"');
                }
                _ => {}
            }
            continue;
        }
        match c {
            '/' if chars.peek() == Some(&'/') => break,
            '"' => {
                in_string = true;
                out.push('"');
            }
            _ => out.push(c),
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Reads a path or use tree at the start of `text` (after its `crate::`-like prefix) and returns
/// every path it names, each a list of segments.
fn use_tree(text: &str) -> Vec<Vec<String>> {
    let chars: Vec<char> = text.chars().collect();
    let mut pos = 0;
    parse_tree(&chars, &mut pos)
}

fn skip_ws(chars: &[char], pos: &mut usize) {
    while *pos < chars.len() && chars[*pos].is_whitespace() {
        *pos += 1;
    }
}

fn parse_tree(chars: &[char], pos: &mut usize) -> Vec<Vec<String>> {
    skip_ws(chars, pos);
    if *pos < chars.len() && chars[*pos] == '{' {
        *pos += 1;
        let mut out = Vec::new();
        loop {
            skip_ws(chars, pos);
            if *pos >= chars.len() {
                return out;
            }
            match chars[*pos] {
                '}' => {
                    *pos += 1;
                    return out;
                }
                ',' => *pos += 1,
                _ => {
                    let before = *pos;
                    out.extend(parse_tree(chars, pos));
                    if *pos == before {
                        // Not a path (e.g. `self` or `*` alone): skip one character.
                        *pos += 1;
                    }
                }
            }
        }
    }
    let start = *pos;
    while *pos < chars.len() && is_ident(chars[*pos]) {
        *pos += 1;
    }
    if *pos == start {
        return vec![Vec::new()];
    }
    let segment: String = chars[start..*pos].iter().collect();
    if segment == "self" {
        skip_alias(chars, pos);
        return vec![Vec::new()];
    }
    if chars.get(*pos) == Some(&':') && chars.get(*pos + 1) == Some(&':') {
        *pos += 2;
        parse_tree(chars, pos)
            .into_iter()
            .map(|mut rest| {
                rest.insert(0, segment.clone());
                rest
            })
            .collect()
    } else {
        skip_alias(chars, pos);
        vec![vec![segment]]
    }
}

/// Skips ` as name` after a leaf of a use tree.
fn skip_alias(chars: &[char], pos: &mut usize) {
    let mut at = *pos;
    skip_ws(chars, &mut at);
    let is_as = chars.get(at) == Some(&'a')
        && chars.get(at + 1) == Some(&'s')
        && chars.get(at + 2).is_some_and(|c| c.is_whitespace());
    if is_as {
        at += 2;
        skip_ws(chars, &mut at);
        while at < chars.len() && is_ident(chars[at]) {
            at += 1;
        }
        *pos = at;
    }
}

/// Every module path a file refers to, absolute.
fn references(file: &Path, module: &[String]) -> Vec<Reference> {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let code = code_of(&text);
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < code.len() {
        let preceded_by_ident = i > 0 && (is_ident(bytes[i - 1] as char) || bytes[i - 1] == b':');
        let rest = &code[i..];
        let base: Option<(Vec<String>, usize)> = if preceded_by_ident {
            None
        } else if rest.starts_with("crate::") {
            Some((Vec::new(), "crate::".len()))
        } else if rest.starts_with("self::") {
            Some((module.to_vec(), "self::".len()))
        } else if rest.starts_with("super::") {
            let mut base = module.to_vec();
            let mut len = 0;
            while code[i + len..].starts_with("super::") {
                base.pop();
                len += "super::".len();
            }
            Some((base, len))
        } else {
            None
        };
        match base {
            Some((base, len)) => {
                for path in use_tree(&code[i + len..]) {
                    let mut to = base.clone();
                    to.extend(path);
                    if !to.is_empty() {
                        out.push(Reference {
                            file: file.display().to_string(),
                            from: module.to_vec(),
                            to,
                        });
                    }
                }
                i += len;
            }
            None => i += rest.chars().next().map_or(1, char::len_utf8),
        }
    }
    out
}

fn all_references() -> Vec<Reference> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut out = Vec::new();
    for file in files {
        let module = module_of(&file);
        if module == ["main"] || module == ["lib"] {
            continue;
        }
        out.extend(references(&file, &module));
    }
    assert!(
        out.len() > 500,
        "found only {} references: the scan is broken",
        out.len()
    );
    out
}

type Graph = BTreeMap<String, BTreeMap<String, String>>;

/// A path from `from` to `to` along the graph's edges, if there is one.
fn path_between(graph: &Graph, from: &str, to: &str) -> Option<Vec<String>> {
    let mut previous: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = VecDeque::from([from]);
    let mut seen = BTreeSet::from([from]);
    while let Some(node) = queue.pop_front() {
        if node == to {
            let mut path = vec![to.to_owned()];
            let mut at = to;
            while let Some(p) = previous.get(at) {
                path.push((*p).to_owned());
                at = p;
            }
            path.reverse();
            return Some(path);
        }
        for next in graph.get(node).into_iter().flat_map(|m| m.keys()) {
            if seen.insert(next) {
                previous.insert(next, node);
                queue.push_back(next);
            }
        }
    }
    None
}

/// Every cycle, once (by its set of members), printed with one file per edge.
fn cycles(graph: &Graph) -> Vec<String> {
    let mut found = BTreeSet::new();
    let mut out = Vec::new();
    for (from, edges) in graph {
        for (to, file) in edges {
            let Some(back) = path_between(graph, to, from) else {
                continue;
            };
            let members: BTreeSet<&String> = back.iter().collect();
            if !found.insert(members.into_iter().cloned().collect::<Vec<_>>()) {
                continue;
            }
            let mut line = format!("{from} -> {to} ({file})");
            for pair in back.windows(2) {
                let file = &graph[&pair[0]][&pair[1]];
                line.push_str(&format!(" -> {} ({file})", pair[1]));
            }
            out.push(line);
        }
    }
    out
}

fn top_level_graph(references: &[Reference]) -> Graph {
    let tops: BTreeSet<&str> = LAYERS.iter().map(|(m, _)| *m).collect();
    let mut graph = Graph::new();
    for r in references {
        let (Some(from), Some(to)) = (r.from.first(), r.to.first()) else {
            continue;
        };
        if from != to && tops.contains(to.as_str()) {
            graph
                .entry(from.clone())
                .or_default()
                .entry(to.clone())
                .or_insert_with(|| r.file.clone());
        }
    }
    graph
}

#[test]
fn no_cycle_between_top_level_modules() {
    let graph = top_level_graph(&all_references());
    let found = cycles(&graph);
    assert!(
        found.is_empty(),
        "import cycles between top-level modules:\n{}",
        found.join("\n")
    );
}

#[test]
fn every_top_level_edge_is_one_the_layering_table_allows() {
    let layer: BTreeMap<&str, u8> = LAYERS.iter().copied().collect();
    let graph = top_level_graph(&all_references());
    let mut forbidden = Vec::new();
    for (from, edges) in &graph {
        let Some(&from_layer) = layer.get(from.as_str()) else {
            forbidden.push(format!("{from}: not in the layering table"));
            continue;
        };
        for (to, file) in edges {
            let to_layer = layer[to.as_str()];
            let allowed = from_layer == 4
                || to_layer < from_layer
                || SAME_LAYER.contains(&(from.as_str(), to.as_str()));
            if !allowed {
                forbidden.push(format!(
                    "{from} (layer {from_layer}) -> {to} (layer {to_layer}), e.g. in {file}"
                ));
            }
        }
    }
    assert!(
        forbidden.is_empty(),
        "edges docs/design/architecture.md does not allow:\n{}",
        forbidden.join("\n")
    );
}

/// The child modules of the folder of module `folder`: its `*.rs` files and sub-folders.
fn children(folder: &[String]) -> BTreeSet<String> {
    let dir = folder.iter().fold(src(), |d, p| d.join(p));
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return BTreeSet::new();
    };
    entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| {
            if p.is_dir() {
                p.file_name().map(|n| n.to_string_lossy().into_owned())
            } else if p.extension().is_some_and(|e| e == "rs") {
                p.file_stem().map(|n| n.to_string_lossy().into_owned())
            } else {
                None
            }
        })
        .filter(|name| name != "mod")
        .collect()
}

#[test]
fn no_cycle_between_sibling_modules_of_any_folder() {
    let references = all_references();
    let folders: BTreeSet<Vec<String>> = references
        .iter()
        .flat_map(|r| (1..r.from.len()).map(|n| r.from[..n].to_vec()))
        .collect();
    let mut found = Vec::new();
    for folder in folders {
        let siblings = children(&folder);
        let name = folder.join("/");
        let known = |a: &str, b: &str| {
            KNOWN_SIBLING_CYCLES
                .iter()
                .any(|(f, x, y)| *f == name && ((*x == a && *y == b) || (*x == b && *y == a)))
        };
        let mut graph = Graph::new();
        for r in &references {
            let depth = folder.len();
            if r.from.len() <= depth || r.to.len() <= depth || r.from[..depth] != folder[..] {
                continue;
            }
            if r.to[..depth] != folder[..] {
                continue;
            }
            let (from, to) = (&r.from[depth], &r.to[depth]);
            if from == to || !siblings.contains(to) || known(from, to) {
                continue;
            }
            graph
                .entry(from.clone())
                .or_default()
                .entry(to.clone())
                .or_insert_with(|| r.file.clone());
        }
        found.extend(cycles(&graph).into_iter().map(|c| format!("{name}/: {c}")));
    }
    assert!(
        found.is_empty(),
        "import cycles between sibling modules:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_scanner_resolves_groups_super_and_self() {
    let paths = use_tree("{a::b, c::{d, e as f}, self, *};");
    let shown: Vec<String> = paths.iter().map(|p| p.join("::")).collect();
    assert_eq!(shown, ["a::b", "c::d", "c::e", "", ""]);
    let dir = std::env::temp_dir().join(format!("architecture-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("x.rs");
    std::fs::write(
        &file,
        "use super::super::config::Config; // crate::ignored\nuse self::inner::X;\nfn f() { crate::paths::root(); \"crate::not_code\"; }\n",
    )
    .expect("write");
    let module = vec!["aggregator".to_owned(), "sources".to_owned()];
    let found: Vec<String> = references(&file, &module)
        .into_iter()
        .map(|r| r.to.join("::"))
        .collect();
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(
        found,
        [
            "config::Config",
            "aggregator::sources::inner::X",
            "paths::root"
        ]
    );
}
