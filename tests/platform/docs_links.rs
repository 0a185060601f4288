//! The documentation never points at something that is not there: every relative link in
//! README.md, `docs/**/*.md` and every other markdown file of the repository (such as
//! `s6-rc.d/README.md` or the fixtures' `SOURCE.md`) names a file or folder that exists in the
//! repository, and a `#anchor` names a heading of the target file as GitHub renders it
//! (lowercase; spaces become `-`; punctuation other than `-` and `_` is dropped; the second of
//! two equal headings gets `-1`, the third `-2`). Links are read with a CommonMark parser, so a
//! link shown inside code is not a link.

use std::collections::{HashMap, HashSet};
use std::path::{Component, Path, PathBuf};

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

/// A link as written in a markdown file.
#[derive(Debug)]
struct Link {
    line: usize,
    destination: String,
}

/// What the checker needs of one markdown file: its links and the anchors its headings make.
#[derive(Debug, Default)]
struct Document {
    links: Vec<Link>,
    anchors: HashSet<String>,
}

/// GitHub's anchor for a heading's text (before de-duplication).
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn parse(text: &str) -> Document {
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let line_of = |offset: usize| line_starts.partition_point(|&start| start <= offset);

    let mut document = Document::default();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut heading: Option<String> = None;
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS;
    for (event, range) in Parser::new_ext(text, options).into_offset_iter() {
        match event {
            Event::Start(Tag::Heading { .. }) => heading = Some(String::new()),
            Event::End(TagEnd::Heading(_)) => {
                let base = slug(&heading.take().unwrap_or_default());
                let count = seen.entry(base.clone()).or_insert(0);
                let anchor = match *count {
                    0 => base.clone(),
                    n => format!("{base}-{n}"),
                };
                *count += 1;
                document.anchors.insert(anchor);
            }
            Event::Text(t) | Event::Code(t) => {
                if let Some(h) = heading.as_mut() {
                    h.push_str(&t);
                }
            }
            Event::Start(Tag::Link { dest_url, .. })
            | Event::Start(Tag::Image { dest_url, .. }) => document.links.push(Link {
                line: line_of(range.start),
                destination: dest_url.to_string(),
            }),
            _ => {}
        }
    }
    document
}

/// True for links that leave the repository: `https:`, `mailto:`, `//host/…`.
fn is_external(destination: &str) -> bool {
    if destination.starts_with("//") {
        return true;
    }
    let before_path = destination.split(['/', '#', '?']).next().unwrap_or("");
    before_path.contains(':')
}

fn percent_decode(text: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(high), Some(low)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(high << 4 | low);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `base` joined with a relative path, `..` resolved by hand; None when it leaves `root`.
fn resolve(root: &Path, base_dir: &Path, path: &str) -> Option<PathBuf> {
    let joined = if let Some(from_root) = path.strip_prefix('/') {
        root.join(from_root)
    } else {
        base_dir.join(path)
    };
    let mut resolved = PathBuf::new();
    for component in joined.components() {
        match component {
            Component::ParentDir => {
                if !resolved.pop() {
                    return None;
                }
            }
            Component::CurDir => {}
            other => resolved.push(other),
        }
    }
    resolved.starts_with(root).then_some(resolved)
}

/// Every markdown file under `root`, skipping build output and hidden folders (`.git`, the
/// dev chain's virtualenv in `.local`).
fn markdown_files(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut folders = vec![root.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let entries = std::fs::read_dir(&folder)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", folder.display()));
        for entry in entries {
            let entry = entry.expect("directory entry");
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let kind = entry.file_type().expect("file type");
            if kind.is_dir() {
                if !name.starts_with('.') && name != "target" {
                    folders.push(path);
                }
            } else if name.ends_with(".md") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// One line per broken link under `root`: `file:line: link: why`.
fn broken_links(root: &Path) -> Vec<String> {
    let root = root.to_path_buf();
    let mut documents: HashMap<PathBuf, Document> = HashMap::new();
    let mut document_of = |path: &Path| -> Option<HashSet<String>> {
        if !documents.contains_key(path) {
            let text = std::fs::read_to_string(path).ok()?;
            documents.insert(path.to_path_buf(), parse(&text));
        }
        documents.get(path).map(|d| d.anchors.clone())
    };

    let mut problems = Vec::new();
    for file in markdown_files(&root) {
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        let shown = file
            .strip_prefix(&root)
            .unwrap_or(&file)
            .display()
            .to_string();
        for link in parse(&text).links {
            let destination = link.destination.trim();
            if destination.is_empty() || is_external(destination) {
                continue;
            }
            let (path, anchor) = match destination.split_once('#') {
                Some((path, anchor)) => (path, Some(percent_decode(anchor))),
                None => (destination, None),
            };
            let path = percent_decode(path.split('?').next().unwrap_or(""));
            let mut problem = |why: String| {
                problems.push(format!(
                    "{shown}:{}: ({}): {why}",
                    link.line, link.destination
                ))
            };
            let target = if path.is_empty() {
                file.clone()
            } else {
                let base_dir = file.parent().unwrap_or(&root);
                match resolve(&root, base_dir, &path) {
                    Some(target) => target,
                    None => {
                        problem("points outside the repository".into());
                        continue;
                    }
                }
            };
            if !target.exists() {
                problem(format!(
                    "{} does not exist",
                    target.strip_prefix(&root).unwrap_or(&target).display()
                ));
                continue;
            }
            let Some(anchor) = anchor else { continue };
            if target.extension().is_some_and(|e| e == "md") {
                let anchors = document_of(&target).unwrap_or_default();
                if !anchors.contains(&anchor) {
                    problem(format!(
                        "no heading of {} has the anchor #{anchor}",
                        target.strip_prefix(&root).unwrap_or(&target).display()
                    ));
                }
            }
        }
    }
    problems
}

#[test]
fn every_relative_link_in_the_documentation_names_an_existing_file_and_heading() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let files = markdown_files(&root);
    for expected in [
        "README.md",
        "docs/design/architecture.md",
        "docs/operator/configuration.md",
        "s6-rc.d/README.md",
    ] {
        assert!(
            files.contains(&root.join(expected)),
            "{expected} is not among the checked files: {files:?}"
        );
    }
    let problems = broken_links(&root);
    assert!(
        problems.is_empty(),
        "{} broken link(s) in the documentation:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn a_link_to_a_missing_file_or_heading_is_reported_with_its_line() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let root = dir.path();
    std::fs::create_dir_all(root.join("docs/operator")).expect("mkdir");
    std::fs::write(
        root.join("README.md"),
        "# Title\n\
         \n\
         [good](docs/operator/guide.md#exit-codes) [twice](docs/operator/guide.md#notes-1)\n\
         [self](#title) [folder](docs/)\n\
         [gone](docs/operator/missing.md)\n\
         [no such heading](docs/operator/guide.md#ports)\n\
         [web](https://example.com/x.md) `[code](nowhere.md)`\n\
         \n\
         ```\n\
         [fenced](nowhere.md)\n\
         ```\n\
         [escape](../outside.md)\n",
    )
    .expect("write README");
    std::fs::write(
        root.join("docs/operator/guide.md"),
        "# Guide\n\n## Exit codes\n\n## Notes\n\n## Notes\n\n[back](../../README.md#title) [bad](#exit_codes)\n",
    )
    .expect("write guide");

    let problems = broken_links(root);
    assert_eq!(problems.len(), 4, "{problems:#?}");
    assert!(
        problems[0].starts_with("README.md:5: (docs/operator/missing.md)"),
        "{problems:#?}"
    );
    assert!(problems[0].contains("does not exist"), "{problems:#?}");
    assert!(
        problems[1].starts_with("README.md:6: (docs/operator/guide.md#ports)"),
        "{problems:#?}"
    );
    assert!(problems[1].contains("no heading"), "{problems:#?}");
    assert!(
        problems[2].starts_with("README.md:12: (../outside.md)"),
        "{problems:#?}"
    );
    assert!(
        problems[3].starts_with("docs/operator/guide.md:9: (#exit_codes)"),
        "{problems:#?}"
    );
}

#[test]
fn anchors_follow_githubs_slug_rules() {
    let cases = [
        ("Quick start", "quick-start"),
        ("The demo: `scripts/demo.sh`", "the-demo-scriptsdemosh"),
        ("`enclave status`", "enclave-status"),
        (
            "Figures (this machine: 2 vCPU, Docker 28)",
            "figures-this-machine-2-vcpu-docker-28",
        ),
        (
            "Firing, resolved, deduplicated, rate-limited",
            "firing-resolved-deduplicated-rate-limited",
        ),
        ("`feeds[]`", "feeds"),
        ("snake_case and kebab-case", "snake_case-and-kebab-case"),
        ("Exit codes → what to do", "exit-codes--what-to-do"),
    ];
    for (heading, expected) in cases {
        assert_eq!(slug(heading), expected, "heading {heading:?}");
    }
    let document = parse("# A\n\n## A\n\n### A\n\n# B\n");
    let mut anchors: Vec<_> = document.anchors.into_iter().collect();
    anchors.sort();
    assert_eq!(anchors, ["a", "a-1", "a-2", "b"]);
}

#[test]
fn the_readme_stays_a_short_introduction_with_the_rest_under_docs() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let lines = readme.lines().count();
    assert!(
        lines <= 300,
        "README.md has {lines} lines: it is the newcomer's and operator's introduction (at most \
         300); put reference material under docs/ and link to it"
    );
}
