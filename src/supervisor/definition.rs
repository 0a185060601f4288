//! Service definitions in s6-rc source format (one folder per service), read and checked before
//! anything starts. A folder whose name ends in `@` is a template, instantiated once per node.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;
use thiserror::Error;

/// Grace period between the down signal and SIGKILL when `timeout-down` is absent.
pub const DEFAULT_TIMEOUT_DOWN: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Runs `up` once (through `/bin/sh -c`); gates its dependents until it exits 0.
    Oneshot { up: String, down: Option<String> },
    /// A supervised process, restarted when it dies.
    Longrun {
        run: PathBuf,
        finish: Option<PathBuf>,
        notification_fd: Option<i32>,
    },
    /// A named set of services.
    Bundle { contents: Vec<String> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition {
    /// The instance name (`node-3` for the template `node@`).
    pub name: String,
    /// The template it came from (`node@`), if any.
    pub template: Option<String>,
    pub dir: PathBuf,
    pub kind: Kind,
    /// As written: may name bundles and templates, resolved by the graph.
    pub dependencies: Vec<String>,
    /// `None`: wait forever.
    pub timeout_up: Option<Duration>,
    /// `None`: wait forever.
    pub timeout_down: Option<Duration>,
    pub down_signal: Signal,
    pub env: BTreeMap<String, String>,
}

#[derive(Debug, Error)]
#[error("service {service}: {message}")]
pub struct DefinitionError {
    pub service: String,
    pub message: String,
}

/// All problems found in a definitions folder.
#[derive(Debug, Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct DefinitionErrors(pub Vec<DefinitionError>);

/// Reads every definition in `dir`, instantiating templates for each of `nodes` (the nodes this
/// enclave runs: all of them, or its member's in a DON across enclaves).
pub fn load(dir: &Path, nodes: &[u32]) -> Result<Vec<Definition>, DefinitionErrors> {
    let entries = fs::read_dir(dir).map_err(|e| {
        DefinitionErrors(vec![DefinitionError {
            service: dir.display().to_string(),
            message: format!("cannot read service definitions: {e}"),
        }])
    })?;
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for name in names {
        match read_one(&dir.join(&name), &name) {
            Ok(def) if name.ends_with('@') => out.extend(instantiate(&def, nodes)),
            Ok(def) => out.push(def),
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(DefinitionErrors(errors))
    }
}

/// `node@` → `node-i` for each of `nodes`, each with `NODE_NUMBER`.
fn instantiate(template: &Definition, nodes: &[u32]) -> Vec<Definition> {
    let base = template.name.trim_end_matches('@');
    nodes
        .iter()
        .map(|i| {
            let mut def = template.clone();
            def.name = format!("{base}-{i}");
            def.template = Some(template.name.clone());
            def.env.insert("NODE_NUMBER".into(), i.to_string());
            def
        })
        .collect()
}

fn read_one(dir: &Path, name: &str) -> Result<Definition, Vec<DefinitionError>> {
    let mut errors = Vec::new();
    let mut err = |message: String| {
        errors.push(DefinitionError {
            service: name.to_owned(),
            message,
        })
    };
    if name.starts_with("s6rc-") || name.starts_with("s6-rc-") || name.contains('\n') || name == "@"
    {
        err("the name is reserved or invalid".into());
    }
    let kind = match read_trimmed(dir, "type") {
        Ok(Some(t)) => read_kind(dir, &t, &mut err),
        Ok(None) => {
            err("has no `type` file".into());
            None
        }
        Err(e) => {
            err(format!("cannot read `type`: {e}"));
            None
        }
    };
    let dependencies = read_list(dir, "dependencies.d", "dependencies").unwrap_or_else(|e| {
        err(format!("cannot read dependencies: {e}"));
        Vec::new()
    });
    let timeout_up = read_millis(dir, "timeout-up", &mut err);
    let timeout_down = match read_trimmed(dir, "timeout-down") {
        Ok(None) => Some(DEFAULT_TIMEOUT_DOWN),
        _ => read_millis(dir, "timeout-down", &mut err),
    };
    let down_signal = read_signal(dir, &mut err);
    let env = read_env(dir).unwrap_or_else(|e| {
        err(format!("cannot read env/: {e}"));
        BTreeMap::new()
    });
    match kind {
        Some(kind) if errors.is_empty() => Ok(Definition {
            name: name.to_owned(),
            template: None,
            dir: dir.to_owned(),
            kind,
            dependencies,
            timeout_up,
            timeout_down,
            down_signal,
            env,
        }),
        _ => Err(errors),
    }
}

fn read_kind(dir: &Path, kind: &str, err: &mut impl FnMut(String)) -> Option<Kind> {
    match kind {
        "oneshot" => {
            let up = read_script(dir, "up", err);
            if up.is_none() && !dir.join("up").exists() {
                err("is a oneshot without an `up` file".into());
            }
            let down = read_script(dir, "down", err);
            Some(Kind::Oneshot { up: up?, down })
        }
        "longrun" => {
            let run = executable(dir, "run", err);
            if run.is_none() && !dir.join("run").exists() {
                err("is a longrun without a `run` file".into());
            }
            let finish = executable(dir, "finish", err);
            let notification_fd = read_notification_fd(dir, err);
            Some(Kind::Longrun {
                run: run?,
                finish,
                notification_fd,
            })
        }
        "bundle" => match read_list(dir, "contents.d", "contents") {
            Ok(contents) if !contents.is_empty() => Some(Kind::Bundle { contents }),
            Ok(_) => {
                err("is a bundle with no contents".into());
                None
            }
            Err(e) => {
                err(format!("cannot read contents: {e}"));
                None
            }
        },
        other => {
            err(format!(
                "has unknown type {other:?} (expected oneshot, longrun or bundle)"
            ));
            None
        }
    }
}

/// A oneshot script: the file's text, run later with `/bin/sh -c`.
fn read_script(dir: &Path, file: &str, err: &mut impl FnMut(String)) -> Option<String> {
    match fs::read_to_string(dir.join(file)) {
        Ok(text) if text.trim().is_empty() => {
            err(format!("`{file}` is empty"));
            None
        }
        Ok(text) => Some(text),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => {
            err(format!("cannot read `{file}`: {e}"));
            None
        }
    }
}

fn executable(dir: &Path, file: &str, err: &mut impl FnMut(String)) -> Option<PathBuf> {
    let path = dir.join(file);
    match fs::metadata(&path) {
        Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => Some(path),
        Ok(_) => {
            err(format!("`{file}` must be an executable file"));
            None
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => {
            err(format!("cannot read `{file}`: {e}"));
            None
        }
    }
}

fn read_notification_fd(dir: &Path, err: &mut impl FnMut(String)) -> Option<i32> {
    match read_trimmed(dir, "notification-fd") {
        Ok(Some(text)) => match text.parse::<i32>() {
            Ok(fd) if (3..=1023).contains(&fd) => Some(fd),
            _ => {
                err(format!(
                    "`notification-fd` must be a descriptor number from 3 to 1023, not {text:?}"
                ));
                None
            }
        },
        Ok(None) => None,
        Err(e) => {
            err(format!("cannot read `notification-fd`: {e}"));
            None
        }
    }
}

/// Milliseconds; absent or 0 means no limit, as in s6-rc.
fn read_millis(dir: &Path, file: &str, err: &mut impl FnMut(String)) -> Option<Duration> {
    match read_trimmed(dir, file) {
        Ok(Some(text)) => match text.parse::<u64>() {
            Ok(0) => None,
            Ok(ms) => Some(Duration::from_millis(ms)),
            Err(_) => {
                err(format!("`{file}` must be milliseconds, not {text:?}"));
                None
            }
        },
        Ok(None) => None,
        Err(e) => {
            err(format!("cannot read `{file}`: {e}"));
            None
        }
    }
}

fn read_signal(dir: &Path, err: &mut impl FnMut(String)) -> Signal {
    match read_trimmed(dir, "down-signal") {
        Ok(Some(text)) => parse_signal(&text).unwrap_or_else(|| {
            err(format!("`down-signal` is not a signal: {text:?}"));
            Signal::SIGTERM
        }),
        Ok(None) => Signal::SIGTERM,
        Err(e) => {
            err(format!("cannot read `down-signal`: {e}"));
            Signal::SIGTERM
        }
    }
}

/// `SIGINT`, `INT` or `2`.
pub fn parse_signal(text: &str) -> Option<Signal> {
    if let Ok(n) = text.parse::<i32>() {
        return Signal::try_from(n).ok();
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse().ok()
}

/// One variable per file in `env/`: the first line, trailing whitespace removed (as
/// s6-envdir reads it). An empty file means "unset".
fn read_env(dir: &Path) -> io::Result<BTreeMap<String, String>> {
    let env_dir = dir.join("env");
    let mut env = BTreeMap::new();
    let entries = match fs::read_dir(&env_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(env),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') || name.contains('=') || !entry.path().is_file() {
            continue;
        }
        let text = fs::read_to_string(entry.path())?;
        let value = text.lines().next().unwrap_or("").trim_end();
        if !value.is_empty() {
            env.insert(name, value.to_owned());
        }
    }
    Ok(env)
}

/// Names from `<dir_form>/` (empty files) or, failing that, the deprecated list file.
fn read_list(dir: &Path, dir_form: &str, file_form: &str) -> io::Result<Vec<String>> {
    match fs::read_dir(dir.join(dir_form)) {
        Ok(entries) => {
            let mut names: Vec<String> = entries
                .filter_map(Result::ok)
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| !n.starts_with('.'))
                .collect();
            names.sort();
            return Ok(names);
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    match fs::read_to_string(dir.join(file_form)) {
        Ok(text) => Ok(text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

fn read_trimmed(dir: &Path, file: &str) -> io::Result<Option<String>> {
    match fs::read_to_string(dir.join(file)) {
        Ok(text) => Ok(Some(text.trim().to_owned()).filter(|t| !t.is_empty())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("mkdir");
        }
        fs::write(path, text).expect("write");
    }

    fn exec(path: &Path, text: &str) {
        write(path, text);
        fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    #[test]
    fn reads_all_three_kinds_and_instantiates_templates() {
        let tmp = tempfile::tempdir().expect("tmp");
        let d = tmp.path();
        write(&d.join("boot/type"), "oneshot\n");
        write(&d.join("boot/up"), "echo hi\n");
        write(&d.join("db/type"), "longrun\n");
        exec(&d.join("db/run"), "#!/bin/sh\nexec sleep 100\n");
        write(&d.join("db/notification-fd"), "3\n");
        write(&d.join("db/dependencies.d/boot"), "");
        write(&d.join("db/timeout-up"), "5000\n");
        write(&d.join("db/down-signal"), "SIGINT\n");
        write(&d.join("db/env/PGDATA"), "/data\nignored second line\n");
        write(&d.join("node@/type"), "longrun\n");
        exec(&d.join("node@/run"), "#!/bin/sh\n");
        write(&d.join("node@/dependencies"), "# comment\n db\n");
        write(&d.join("all/type"), "bundle\n");
        write(&d.join("all/contents.d/db"), "");
        let defs = load(d, &[1, 2]).expect("valid");
        let names: Vec<_> = defs.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["all", "boot", "db", "node-1", "node-2"]);
        // A member of a DON across enclaves runs its own nodes only.
        let member = load(d, &[2, 5]).expect("valid");
        let names: Vec<_> = member.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["all", "boot", "db", "node-2", "node-5"]);
        assert_eq!(member[4].env["NODE_NUMBER"], "5");
        let db = &defs[2];
        assert_eq!(db.dependencies, ["boot"]);
        assert_eq!(db.timeout_up, Some(Duration::from_secs(5)));
        assert_eq!(db.timeout_down, Some(DEFAULT_TIMEOUT_DOWN));
        assert_eq!(db.down_signal, Signal::SIGINT);
        assert_eq!(db.env["PGDATA"], "/data");
        assert!(matches!(
            db.kind,
            Kind::Longrun {
                notification_fd: Some(3),
                ..
            }
        ));
        assert_eq!(defs[4].env["NODE_NUMBER"], "2");
        assert_eq!(defs[4].dependencies, ["db"]);
        assert_eq!(defs[4].template.as_deref(), Some("node@"));
    }

    #[test]
    fn every_broken_definition_is_named() {
        let tmp = tempfile::tempdir().expect("tmp");
        let d = tmp.path();
        write(&d.join("a/type"), "daemon\n");
        write(&d.join("b/type"), "longrun\n");
        write(&d.join("c/type"), "oneshot\n");
        write(&d.join("d/type"), "longrun\n");
        write(&d.join("d/run"), "not executable");
        write(&d.join("e/type"), "longrun\n");
        exec(&d.join("e/run"), "#!/bin/sh\n");
        write(&d.join("e/notification-fd"), "1\n");
        write(&d.join("f"), "a stray file is ignored");
        let err = load(d, &[1]).expect_err("invalid");
        let text = err.to_string();
        for expected in [
            "service a: has unknown type \"daemon\"",
            "service b: is a longrun without a `run` file",
            "service c: is a oneshot without an `up` file",
            "service d: `run` must be an executable file",
            "service e: `notification-fd` must be a descriptor number from 3 to 1023",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in {text}");
        }
    }

    #[test]
    fn signals_parse_in_every_usual_spelling() {
        assert_eq!(parse_signal("SIGTERM"), Some(Signal::SIGTERM));
        assert_eq!(parse_signal("int"), Some(Signal::SIGINT));
        assert_eq!(parse_signal("9"), Some(Signal::SIGKILL));
        assert_eq!(parse_signal("NOPE"), None);
    }
}
