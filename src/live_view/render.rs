//! The live view's frame: a pure function of a [`Snapshot`]. Plain text; with colour, the state
//! words are coloured (green good, yellow in between, red bad) and nothing else changes, so the
//! columns line up either way.

use std::time::{Duration, UNIX_EPOCH};

use crate::service::state::Status;
use crate::snapshot::{NodeView, Role, Snapshot};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Color {
    Green,
    Yellow,
    Red,
    Dim,
}

impl Color {
    fn code(self) -> &'static str {
        match self {
            Color::Green => "\x1b[32m",
            Color::Yellow => "\x1b[33m",
            Color::Red => "\x1b[31m",
            Color::Dim => "\x1b[2m",
        }
    }
}

const RESET: &str = "\x1b[0m";
const ABSENT: &str = "-";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    pub color: bool,
    /// Lines are cut at this many characters (a terminal's width).
    pub width: Option<usize>,
}

impl Style {
    pub const PLAIN: Style = Style {
        color: false,
        width: None,
    };
}

type Cell = (String, Option<Color>);

fn plain(text: impl Into<String>) -> Cell {
    (text.into(), None)
}

fn colored(text: impl Into<String>, color: Color) -> Cell {
    (text.into(), Some(color))
}

/// One line as coloured segments.
#[derive(Default)]
struct Line(Vec<Cell>);

impl Line {
    fn text(text: impl Into<String>) -> Self {
        Line(vec![plain(text)])
    }

    fn to_string(&self, style: Style) -> String {
        let mut out = String::new();
        let mut left = style.width.unwrap_or(usize::MAX);
        for (text, color) in &self.0 {
            if left == 0 {
                break;
            }
            let piece: String = text.chars().take(left).collect();
            left -= piece.chars().count();
            match color {
                Some(c) if style.color => {
                    out.push_str(c.code());
                    out.push_str(&piece);
                    out.push_str(RESET);
                }
                _ => out.push_str(&piece),
            }
        }
        out.trim_end().to_owned()
    }
}

/// Columns padded to the widest cell plus two spaces; the last column is not padded.
fn table(header: &[&str], rows: Vec<Vec<Cell>>) -> Vec<Line> {
    let header: Vec<Cell> = header.iter().map(|h| colored(*h, Color::Dim)).collect();
    let all: Vec<Vec<Cell>> = std::iter::once(header).chain(rows).collect();
    let columns = all.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            all.iter()
                .filter_map(|r| r.get(i))
                .map(|(t, _)| t.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    all.into_iter()
        .map(|row| {
            let last = row.len().saturating_sub(1);
            let mut line = Line::default();
            for (i, (text, color)) in row.into_iter().enumerate() {
                let pad = if i == last {
                    0
                } else {
                    widths[i] + 2 - text.chars().count()
                };
                line.0.push((text, color));
                if pad > 0 {
                    line.0.push(plain(" ".repeat(pad)));
                }
            }
            line
        })
        .collect()
}

pub fn render(s: &Snapshot, style: Style) -> String {
    let mut lines = vec![Line::text(format!(
        "enclave at {}",
        humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(s.unix_ms()))
    ))];
    lines.push(Line::default());
    services(s, &mut lines);
    lines.push(Line::default());
    feeds(s, &mut lines);
    lines.push(Line::default());
    nodes(s, &mut lines);
    lines.push(Line::default());
    evidence(s, &mut lines);
    lines
        .iter()
        .map(|l| l.to_string(style))
        .collect::<Vec<_>>()
        .join("\n")
}

fn status_color(status: Status) -> Color {
    match status {
        Status::Up | Status::Finished => Color::Green,
        Status::Starting | Status::Stopping => Color::Yellow,
        Status::Down | Status::Failed => Color::Red,
    }
}

fn services(s: &Snapshot, lines: &mut Vec<Line>) {
    let services = match &s.services {
        Ok(services) => services,
        Err(e) => {
            lines.push(Line(vec![
                plain("services: "),
                colored(e.clone(), Color::Red),
            ]));
            return;
        }
    };
    let rows = services
        .iter()
        .map(|v| {
            let st = &v.state;
            vec![
                plain(st.name.clone()),
                colored(st.status.as_str(), status_color(st.status)),
                plain(st.pid.map_or(ABSENT.to_owned(), |p| p.to_string())),
                if st.restart_count > 0 {
                    colored(st.restart_count.to_string(), Color::Yellow)
                } else {
                    plain("0")
                },
                plain(
                    v.cpu_cores
                        .map_or(ABSENT.to_owned(), |c| format!("{:.1}%", c * 100.0)),
                ),
                plain(v.memory_bytes.map_or(ABSENT.to_owned(), mebibytes)),
                plain(st.last_exit.map_or(ABSENT.to_owned(), |e| e.to_string())),
            ]
        })
        .collect();
    lines.extend(table(
        &[
            "SERVICE",
            "STATUS",
            "PID",
            "RESTARTS",
            "CPU",
            "MEMORY",
            "LAST-EXIT",
        ],
        rows,
    ));
    if let Some(e) = &s.resources_error {
        lines.push(Line(vec![
            plain("  CPU and memory unknown: "),
            colored(e.clone(), Color::Yellow),
        ]));
    }
}

fn mebibytes(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / 1_048_576.0)
}

fn age(now_ms: u64, at_ms: u64) -> String {
    let secs = now_ms.saturating_sub(at_ms) / 1000;
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s => format!("{} h", s / 3600),
    }
}

fn feeds(s: &Snapshot, lines: &mut Vec<Line>) {
    let now = s.unix_ms();
    let mut notes = Vec::new();
    let rows = s
        .feeds
        .iter()
        .map(|feed| {
            let name = feed.name.as_str();
            let report = s.newest_report(name).map(|(_, r)| r);
            let (answer, round, report_age) = match report {
                Some(r) => (
                    plain(r.answer.answer.normalize().to_string()),
                    plain(format!("{}:{}", r.answer.epoch, r.answer.round)),
                    plain(age(now, r.answer.at_ms)),
                ),
                None => (plain(ABSENT), plain(ABSENT), plain(ABSENT)),
            };
            let (on_chain, matches) = if s.has_chain(name) {
                match (s.on_chain(name), report) {
                    (Some(c), Some(r)) => {
                        let same = (c.epoch, c.round) == (r.answer.epoch, r.answer.round)
                            && c.answer == r.answer.answer;
                        let verdict = if same {
                            colored("yes", Color::Green)
                        } else if (c.epoch, c.round) < (r.answer.epoch, r.answer.round) {
                            colored("pending", Color::Yellow)
                        } else {
                            colored("differs", Color::Red)
                        };
                        (plain(c.answer.normalize().to_string()), verdict)
                    }
                    (Some(c), None) => (plain(c.answer.normalize().to_string()), plain(ABSENT)),
                    (None, _) => (plain(ABSENT), plain(ABSENT)),
                }
            } else {
                (colored("no chain", Color::Dim), plain(ABSENT))
            };
            let status = feed_status(s, name, &mut notes);
            vec![
                plain(name),
                answer,
                round,
                report_age,
                on_chain,
                matches,
                status,
                sources(s, name),
            ]
        })
        .collect();
    lines.extend(table(
        &[
            "FEED", "ANSWER", "E:R", "AGE", "ON-CHAIN", "MATCH", "STATUS", "SOURCES",
        ],
        rows,
    ));
    if let Err(e) = &s.aggregator {
        lines.push(Line(vec![
            plain("  sources unknown: price aggregator "),
            colored(e.clone(), Color::Red),
        ]));
    }
    for note in notes {
        lines.push(Line(vec![plain("  "), colored(note, Color::Red)]));
    }
}

/// The worst status any oracle reports for the feed (`stale 2/4`), with a note per stale oracle.
fn feed_status(s: &Snapshot, feed: &str, notes: &mut Vec<String>) -> Cell {
    let mut seen = 0;
    let mut worst: Option<(u8, &str)> = None;
    let mut stale = 0;
    for node in s.oracles() {
        let Some(h) = node.health.as_ref().ok().and_then(|h| h.feeds.get(feed)) else {
            continue;
        };
        seen += 1;
        let rank = match h.status.as_str() {
            "ok" => 0,
            "starting" => 1,
            "waiting" => 2,
            _ => 3,
        };
        if rank == 3 {
            stale += 1;
            if let Some(reason) = &h.reason {
                notes.push(format!("{feed} on node-{}: {reason}", node.node));
            }
        }
        if worst.is_none_or(|(r, _)| rank > r) {
            worst = Some((rank, h.status.as_str()));
        }
    }
    match worst {
        None => plain(ABSENT),
        Some((0, status)) => colored(status, Color::Green),
        Some((3, status)) => colored(format!("{status} {stale}/{seen}"), Color::Red),
        Some((_, status)) => colored(status, Color::Yellow),
    }
}

/// `binance up, kraken down (rate_limited)`.
fn sources(s: &Snapshot, feed: &str) -> Cell {
    let Some(quote) = s.aggregator.as_ref().ok().and_then(|a| a.get(feed)) else {
        return plain(ABSENT);
    };
    let parts: Vec<String> = quote
        .sources
        .iter()
        .map(|q| {
            if q.used {
                return format!("{} up", q.source);
            }
            let why = q
                .reason
                .as_deref()
                .map(|r| r.split(':').next().unwrap_or(r).trim())
                .unwrap_or("no price");
            // An outlier answers; the aggregator only leaves its price out.
            let state = if why == "outlier" { "left out" } else { "down" };
            format!("{} {state} ({why})", q.source)
        })
        .collect();
    let color = if quote.status != "ok" {
        Color::Red
    } else if quote.sources.iter().all(|q| q.used) {
        Color::Green
    } else {
        Color::Yellow
    };
    colored(parts.join(", "), color)
}

fn nodes(s: &Snapshot, lines: &mut Vec<Line>) {
    let rows = s.nodes.iter().map(node_row).collect();
    lines.extend(table(&["NODE", "ROLE", "READY", "PEERS", "NOTES"], rows));
}

fn node_row(n: &NodeView) -> Vec<Cell> {
    let role = match n.role {
        Role::Bootstrap => "bootstrap",
        Role::Oracle => "oracle",
    };
    match &n.health {
        Ok(h) => vec![
            plain(format!("node-{}", n.node)),
            plain(role),
            if h.ready {
                colored("yes", Color::Green)
            } else {
                colored("no", Color::Red)
            },
            plain(format!("{}/{}", h.peers_connected, h.peers_expected)),
            plain(h.reasons.join("; ")),
        ],
        Err(e) => vec![
            plain(format!("node-{}", n.node)),
            plain(role),
            colored(ABSENT, Color::Red),
            plain(ABSENT),
            colored(e.clone(), Color::Red),
        ],
    }
}

fn evidence(s: &Snapshot, lines: &mut Vec<Line>) {
    let mut line = Line::text("EVIDENCE  attestation ");
    match &s.attestation {
        Ok(Some(a)) => {
            let color = match a.status.as_str() {
                "quoted" => Color::Green,
                "pending" => Color::Yellow,
                _ => Color::Red,
            };
            line.0.push(colored(a.status.clone(), color));
            if let Some(sha) = &a.quote_sha256 {
                line.0.push(plain(format!(" (quote SHA-256 {sha})")));
            }
            if let Some(reason) = &a.reason {
                line.0.push(plain(format!(": {reason}")));
            }
        }
        Ok(None) => line.0.push(colored("not published yet", Color::Yellow)),
        Err(e) => line.0.push(colored(e.clone(), Color::Red)),
    }
    lines.push(line);
}

#[cfg(test)]
mod tests;
