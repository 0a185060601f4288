//! `enclave status`: every service's state as the supervisor last wrote it, as a table or as
//! JSON, and with `--check` an exit code for health probes.

use std::collections::BTreeSet;
use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::attestation::boot::read_document;
use crate::attestation::identity::IdentityDocument;
use crate::attestation::identity_file;
use crate::logging::Untrusted;
use crate::paths::Root;
use crate::service::state::{Kind, ServiceState, StateDir, StatePage, Status};

const HEADERS: [&str; 7] = [
    "NAME",
    "TYPE",
    "STATUS",
    "PID",
    "RESTARTS",
    "LAST-RESTART",
    "LAST-EXIT",
];
const ABSENT: &str = "-";
/// humantime cannot format instants past 9999-12-31T23:59:59Z.
const MAX_RFC3339_SECS: u64 = 253_402_300_799;

/// Prints every service's state; returns the process exit code.
pub fn run(root: &Root, json: bool, check: bool) -> u8 {
    run_to(
        &StateDir::new(root),
        Some(&identity_file(root)),
        json,
        check,
        &mut io::stdout(),
        &mut io::stderr(),
    )
}

/// `enclave status --identity`: the identity document, summarised or (`json`) as it is.
pub fn run_identity(root: &Root, json: bool) -> u8 {
    identity_to(
        &identity_file(root),
        json,
        &mut io::stdout(),
        &mut io::stderr(),
    )
}

fn identity_to(path: &Path, json: bool, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let document = match read_document(path) {
        Ok(Some(document)) => document,
        Ok(None) => {
            let _ = writeln!(
                err,
                "enclave status: no identity at {}: the supervisor has not published one (is it running, and is --root right?)",
                path.display()
            );
            return 1;
        }
        Err(e) => {
            let _ = writeln!(err, "enclave status: cannot read {}: {e}", path.display());
            return 1;
        }
    };
    let text = if json {
        serde_json::to_string(&document).unwrap_or_default()
    } else {
        render_identity(&document, path)
    };
    match writeln!(out, "{text}") {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            let _ = writeln!(err, "enclave status: cannot write to stdout: {e}");
            1
        }
        _ => 0,
    }
}

/// The identity as `key  value` lines.
fn render_identity(document: &IdentityDocument, path: &Path) -> String {
    let identity = &document.identity;
    let attestation = &document.attestation;
    let mut lines = vec![
        (
            "identity".to_owned(),
            format!(
                "{} (SHA-512, the quote's REPORTDATA; {})",
                document.digests.sha512,
                path.display()
            ),
        ),
        (
            "boot".to_owned(),
            format!("{} id {}", identity.boot_time, identity.boot_id),
        ),
        (
            "configuration".to_owned(),
            format!(
                "{} ({}{})",
                identity.configuration.digest,
                identity.configuration.scheme,
                if identity.configuration.insecure_key {
                    ", INSECURE key from the command line"
                } else {
                    ""
                }
            ),
        ),
        (
            "software".to_owned(),
            format!(
                "enclave {} git {} image {}",
                identity.software.version,
                identity.software.git_revision,
                identity.software.image_digest.as_deref().unwrap_or("-")
            ),
        ),
    ];
    let mut state = attestation.status.as_str().to_owned();
    if let Some(quote) = &attestation.quote {
        state.push_str(&format!(": {} (SHA-256 {})", quote.file, quote.sha256));
    }
    if let Some(reason) = &attestation.reason {
        state.push_str(&format!(": {reason}"));
    }
    lines.push(("attestation".to_owned(), state));
    if let Some(rtmr) = &attestation.rtmr3 {
        let value = if rtmr.extended {
            format!(
                "extended, now {}",
                rtmr.value.as_deref().unwrap_or("unreadable")
            )
        } else {
            format!("not extended: {}", rtmr.reason.as_deref().unwrap_or("-"))
        };
        lines.push(("rtmr3".to_owned(), value));
    }
    if let Some(certificate) = &identity.order_certificate {
        lines.push((
            "order-certificate".to_owned(),
            format!("{} {}", certificate.sha256_fingerprint, certificate.subject),
        ));
    }
    for node in &identity.nodes {
        lines.push((
            format!("node-{}", node.node),
            format!(
                "{} peer {} signer {} transmitter {}",
                node.role, node.peer_id, node.onchain_signing_address, node.transmitter_address
            ),
        ));
    }
    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    // The document is a file anyone with access to the root could have edited.
    lines
        .iter()
        .map(|(k, v)| format!("{k:<width$}  {}", Untrusted::bounded(v, 1000)))
        .collect::<Vec<_>>()
        .join("\n")
}

fn run_to(
    dir: &StateDir,
    identity: Option<&Path>,
    json: bool,
    check: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    // Output errors are ignored on stderr (nowhere left to report them) and on a closed stdout
    // (`enclave status | head`); the exit code still tells the health.
    let (states, page) = match dir.load() {
        Ok(loaded) => loaded,
        Err(e) => {
            let _ = writeln!(err, "enclave status: {e}");
            return 1;
        }
    };
    let stale = stale_services(page.as_ref());
    let text = if json {
        // The array's shape is relied upon (fields may be added); the identity is
        // `--identity --json`.
        render_json(&states, &stale)
    } else {
        let mut text = render_table(&states, &stale);
        if let Some(page) = page.as_ref().filter(|p| p.stale) {
            text.push_str("\n\n");
            text.push_str(&stale_note(page, &dir.page_path()));
        }
        match identity.map(|path| (path, read_document(path))) {
            Some((path, Ok(Some(document)))) => {
                text.push_str("\n\n");
                text.push_str(&render_identity(&document, path));
            }
            Some((path, Ok(None))) => {
                text.push_str(&format!(
                    "\n\nidentity  not published ({} is absent)",
                    path.display()
                ));
            }
            Some((path, Err(e))) => {
                text.push_str(&format!(
                    "\n\nidentity  unreadable: {}: {e}",
                    path.display()
                ));
            }
            None => {}
        }
        text
    };
    if let Err(e) = writeln!(out, "{text}") {
        if e.kind() != io::ErrorKind::BrokenPipe {
            let _ = writeln!(err, "enclave status: cannot write to stdout: {e}");
            return 1;
        }
    }
    if !check {
        return 0;
    }
    match check_health(&states) {
        Ok(()) => 0,
        Err(problems) => {
            for problem in problems {
                let _ = writeln!(err, "{problem}");
            }
            1
        }
    }
}

/// Names of the services whose state files lag behind the supervisor.
fn stale_services(page: Option<&StatePage>) -> BTreeSet<String> {
    match page {
        Some(page) if page.stale => page.services.iter().map(|s| s.name.clone()).collect(),
        _ => BTreeSet::new(),
    }
}

/// What the operator must know when the files lag behind: since when, why, and that the marked
/// rows are the supervisor's own view.
fn stale_note(page: &StatePage, path: &Path) -> String {
    let since = page
        .stale_since
        .map(restart_time)
        .unwrap_or_else(|| "an unknown time".to_owned());
    let error = page.error.as_deref().unwrap_or("unknown error");
    let mut note = format!(
        "* STALE state files since {since}: the supervisor cannot write them ({}). The rows marked * \
         show its current view, from {}; the files catch up once they can be written.",
        Untrusted::new(error),
        path.display()
    );
    if page.truncated {
        note.push_str(
            " More services lag behind than the page holds: the others' rows may be old.",
        );
    }
    note
}

/// Whether the services are where a healthy boot leaves them; otherwise one line per service
/// that is not.
fn check_health(states: &[ServiceState]) -> Result<(), Vec<String>> {
    if states.is_empty() {
        return Err(vec![
            "no services: the supervisor has not started any yet".to_owned()
        ]);
    }
    let problems: Vec<String> = states
        .iter()
        .filter(|s| !s.is_healthy())
        .map(|s| format!("{}: {}, expected {}", s.name, s.status, healthy(s.kind)))
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

fn healthy(kind: Kind) -> Status {
    match kind {
        Kind::Longrun => Status::Up,
        Kind::Oneshot => Status::Finished,
    }
}

/// One line: a JSON array of one object per service, `null` where a value is absent;
/// `staleFiles` is true where the values are the supervisor's view because the files lag.
fn render_json(states: &[ServiceState], stale: &BTreeSet<String>) -> String {
    let services = states
        .iter()
        .map(|s| {
            json!({
                "staleFiles": stale.contains(&s.name),
                "name": s.name,
                "type": s.kind.as_str(),
                "status": s.status.as_str(),
                "pid": s.pid,
                "restartCount": s.restart_count,
                "lastRestart": s.last_restart.map(restart_time),
                "lastExit": s.last_exit.map(|e| e.to_string()),
            })
        })
        .collect();
    Value::Array(services).to_string()
}

/// Columns aligned with two spaces between them, `-` where a value is absent, no trailing
/// newline; `*` after the name of a service whose files lag behind.
fn render_table(states: &[ServiceState], stale: &BTreeSet<String>) -> String {
    let header = HEADERS.map(str::to_owned);
    let rows: Vec<[String; 7]> = states
        .iter()
        .map(|s| {
            let mut row = table_row(s);
            if stale.contains(&s.name) {
                row[0].push('*');
            }
            row
        })
        .collect();
    let mut widths = HEADERS.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    std::iter::once(&header)
        .chain(&rows)
        .map(|row| table_line(row, &widths))
        .collect::<Vec<_>>()
        .join("\n")
}

fn table_row(s: &ServiceState) -> [String; 7] {
    let or_absent = |v: Option<String>| v.unwrap_or_else(|| ABSENT.to_owned());
    [
        s.name.clone(),
        s.kind.as_str().to_owned(),
        s.status.as_str().to_owned(),
        or_absent(s.pid.map(|p| p.to_string())),
        s.restart_count.to_string(),
        or_absent(s.last_restart.map(restart_time)),
        or_absent(s.last_exit.map(|e| e.to_string())),
    ]
}

fn table_line(cells: &[String; 7], widths: &[usize; 7]) -> String {
    let last = cells.len() - 1;
    let padded: Vec<String> = cells
        .iter()
        .zip(widths)
        .enumerate()
        .map(|(i, (cell, &width))| {
            // The last column is not padded, so lines carry no trailing blanks.
            if i == last {
                cell.clone()
            } else {
                format!("{cell:<width$}")
            }
        })
        .collect();
    padded.join("  ")
}

/// RFC 3339 seconds UTC; a value out of humantime's range (only a corrupt file) as the number.
fn restart_time(unix_secs: u64) -> String {
    if unix_secs > MAX_RFC3339_SECS {
        return unix_secs.to_string();
    }
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(unix_secs)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::state::Exit;

    fn service(name: &str, kind: Kind, status: Status) -> ServiceState {
        let mut s = ServiceState::new(name, kind);
        s.status = status;
        s
    }

    fn sample() -> Vec<ServiceState> {
        let mut postgres = service("postgres", Kind::Longrun, Status::Up);
        postgres.pid = Some(4242);
        postgres.restart_count = 2;
        postgres.last_restart = Some(1_700_000_000);
        postgres.last_exit = Some(Exit::Signal(9));
        vec![
            service("config-check", Kind::Oneshot, Status::Finished),
            postgres,
        ]
    }

    fn state_dir(tmp: &tempfile::TempDir) -> StateDir {
        StateDir::new(&Root::new(tmp.path()))
    }

    fn run_captured(dir: &StateDir, json: bool, check: bool) -> (u8, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run_to(dir, None, json, check, &mut out, &mut err);
        let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
        (code, text(out), text(err))
    }

    #[test]
    fn the_table_is_aligned_with_dashes_for_absent_values() {
        let table = render_table(&sample(), &BTreeSet::new());
        let expected = "\
NAME          TYPE     STATUS    PID   RESTARTS  LAST-RESTART          LAST-EXIT
config-check  oneshot  finished  -     0         -                     -
postgres      longrun  up        4242  2         2023-11-14T22:13:20Z  signal 9";
        assert_eq!(table, expected);
    }

    #[test]
    fn json_is_one_line_with_nulls_for_absent_values() {
        let text = render_json(&sample(), &BTreeSet::new());
        assert!(!text.contains('\n'));
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            value,
            json!([
                {
                    "name": "config-check", "type": "oneshot", "status": "finished",
                    "pid": null, "restartCount": 0, "lastRestart": null, "lastExit": null,
                    "staleFiles": false
                },
                {
                    "staleFiles": false,
                    "name": "postgres", "type": "longrun", "status": "up",
                    "pid": 4242, "restartCount": 2, "lastRestart": "2023-11-14T22:13:20Z",
                    "lastExit": "signal 9"
                }
            ])
        );
        assert_eq!(render_json(&[], &BTreeSet::new()), "[]");
    }

    #[test]
    fn an_out_of_range_restart_time_is_shown_as_a_number() {
        assert_eq!(restart_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(restart_time(MAX_RFC3339_SECS), "9999-12-31T23:59:59Z");
        assert_eq!(restart_time(u64::MAX), u64::MAX.to_string());
    }

    #[test]
    fn check_passes_when_every_service_is_healthy() {
        assert_eq!(check_health(&sample()), Ok(()));
    }

    #[test]
    fn check_names_the_services_that_are_not_healthy() {
        let mut states = sample();
        states.push(service("node-1", Kind::Longrun, Status::Starting));
        states.push(service("migrate", Kind::Oneshot, Status::Failed));
        assert_eq!(
            check_health(&states),
            Err(vec![
                "node-1: starting, expected up".to_owned(),
                "migrate: failed, expected finished".to_owned(),
            ])
        );
    }

    #[test]
    fn check_fails_without_services() {
        assert!(check_health(&[]).is_err());
        let tmp = tempfile::tempdir().unwrap();
        let dir = state_dir(&tmp);
        dir.reset().unwrap();
        let (code, out, err) = run_captured(&dir, false, true);
        assert_eq!(code, 1);
        assert_eq!(out, format!("{}\n", render_table(&[], &BTreeSet::new())));
        assert!(err.contains("no services"), "{err}");
        assert_eq!(run_captured(&dir, false, false).0, 0);
    }

    #[test]
    fn run_prints_the_state_and_checks_it() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = state_dir(&tmp);
        dir.reset().unwrap();
        for s in sample() {
            dir.write(&s).unwrap();
        }
        assert_eq!(
            run_captured(&dir, true, true),
            (
                0,
                format!("{}\n", render_json(&sample(), &BTreeSet::new())),
                String::new()
            )
        );
        dir.write(&service("node-2", Kind::Longrun, Status::Stopping))
            .unwrap();
        let (code, out, err) = run_captured(&dir, false, true);
        assert_eq!(code, 1);
        assert!(out.contains("node-2"), "{out}");
        assert_eq!(err, "node-2: stopping, expected up\n");
    }

    #[test]
    fn stale_files_are_said_and_the_supervisors_view_is_shown() {
        use crate::service::state::PageService;
        let tmp = tempfile::tempdir().unwrap();
        let dir = state_dir(&tmp);
        dir.reset().unwrap();
        let old = sample();
        for s in &old {
            dir.write(s).unwrap();
        }
        let mut truth = old[1].clone();
        truth.pid = Some(5151);
        truth.restart_count = 3;
        let page = StatePage {
            supervisor_pid: 1,
            stale: true,
            stale_since: Some(1_700_000_000),
            error: Some("No space left on device (os error 28)".into()),
            services: vec![PageService::from(&truth)],
            truncated: false,
        };
        std::fs::write(dir.page_path(), page.to_bytes()).unwrap();
        let (code, out, _) = run_captured(&dir, false, true);
        assert_eq!(code, 0);
        assert!(out.contains("postgres*"), "{out}");
        assert!(out.contains("5151"), "{out}");
        assert!(!out.contains("4242"), "{out}");
        assert!(
            out.contains("STALE state files since 2023-11-14T22:13:20Z"),
            "{out}"
        );
        assert!(out.contains("No space left on device"), "{out}");
        let (_, out, _) = run_captured(&dir, true, false);
        let value: Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(value[1]["staleFiles"], json!(true));
        assert_eq!(value[1]["restartCount"], json!(3));
        assert_eq!(value[0]["staleFiles"], json!(false));
    }

    #[test]
    fn status_identity_without_a_document_is_explained() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("identity.json");
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert_eq!(identity_to(&path, true, &mut out, &mut err), 1);
        assert!(out.is_empty());
        let err = String::from_utf8(err).unwrap();
        assert!(err.contains("has not published one"), "{err}");
        assert!(err.contains(&path.display().to_string()), "{err}");
        std::fs::write(&path, "{}").unwrap();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert_eq!(identity_to(&path, false, &mut out, &mut err), 1);
        assert!(String::from_utf8(err).unwrap().contains("cannot read"));
    }

    #[test]
    fn a_missing_state_directory_is_explained() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = state_dir(&tmp);
        for check in [false, true] {
            let (code, out, err) = run_captured(&dir, false, check);
            assert_eq!(code, 1);
            assert_eq!(out, "");
            assert!(err.contains(&dir.path().display().to_string()), "{err}");
            assert!(err.contains("supervisor is probably not running"), "{err}");
            assert!(err.contains("--root"), "{err}");
        }
        assert_eq!(run(&Root::new(tmp.path()), true, false), 1);
    }

    #[test]
    fn an_unreadable_state_is_an_error_naming_the_path() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = state_dir(&tmp);
        dir.reset().unwrap();
        std::fs::create_dir(dir.path().join("broken")).unwrap();
        std::fs::write(dir.path().join("broken/type"), "daemon\n").unwrap();
        let (code, _, err) = run_captured(&dir, false, false);
        assert_eq!(code, 1);
        assert!(err.contains("cannot read the service state"), "{err}");
        assert!(err.contains(&dir.path().display().to_string()), "{err}");
    }
}
