//! `ec2ssh status [TARGET…]`: are these instances Online in Systems Manager? Prints
//! each one's ping status, agent version and last ping; exits 0 only when all are
//! Online (3 when some are not), so scripts can gate on it. `--wait` polls until they
//! are (or a timeout), `--watch` keeps a live view with transitions marked.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::aws::{AwsContext, AwsErrorKind};
use crate::cli::StatusArgs;
use crate::error::AppError;
use crate::fleet::ping::Backoff;
use crate::fleet::{self, Instance, Ping};
use crate::signals::{self, Signals};
use crate::text::{fit, sanitize};
use crate::time::{age, unix_now};

/// The exit code when the command worked but not every target is Online.
pub const NOT_ALL_ONLINE: u8 = 3;

/// One target's state, also the `--json` row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub id: String,
    pub name: Option<String>,
    pub region: String,
    pub ping: Ping,
    pub agent_version: Option<String>,
    /// Unix seconds.
    pub last_ping: Option<i64>,
}

impl Row {
    fn of(i: &Instance) -> Row {
        Row {
            id: i.id.clone(),
            name: i.name.clone(),
            region: i.region.clone(),
            ping: i.ping,
            agent_version: i.agent_version.clone(),
            last_ping: i.last_ping,
        }
    }
}

#[derive(Serialize)]
struct StatusJson<'a> {
    version: u32,
    all_online: bool,
    instances: &'a [Row],
}

/// The rows for `targets` (every managed instance when empty), in the targets' order.
pub fn rows(instances: &[Instance], targets: &[String]) -> Result<Vec<Row>, AppError> {
    if targets.is_empty() {
        return Ok(instances
            .iter()
            .filter(|i| i.ping != Ping::NotManaged)
            .map(Row::of)
            .collect());
    }
    let mut rows: Vec<Row> = Vec::new();
    for t in targets {
        let row = Row::of(fleet::select::find(instances, t)?);
        if !rows.iter().any(|r| r.id == row.id) {
            rows.push(row);
        }
    }
    Ok(rows)
}

pub fn all_online(rows: &[Row]) -> bool {
    !rows.is_empty() && rows.iter().all(|r| r.ping == Ping::Online)
}

/// The table, one line per row; `was` holds each instance's state before its last
/// change, shown as "(was …)".
pub fn render(rows: &[Row], was: &HashMap<String, Ping>, now: i64) -> Vec<String> {
    let mut lines = vec![format!(
        "{}  {}  {}  {}  LAST PING",
        fit("NAME", 24),
        fit("ID", 20),
        fit("PING", 29),
        fit("AGENT", 12)
    )];
    for r in rows {
        let ping = match was.get(&r.id) {
            Some(old) if *old != r.ping => format!("{} (was {})", r.ping.label(), old.label()),
            _ => r.ping.label().to_string(),
        };
        lines.push(format!(
            "{}  {}  {}  {}  {}",
            fit(&sanitize(r.name.as_deref().unwrap_or("")), 24),
            fit(&sanitize(&r.id), 20),
            fit(&ping, 29),
            fit(&sanitize(r.agent_version.as_deref().unwrap_or("–")), 12),
            r.last_ping
                .map(|t| age(now - t))
                .unwrap_or_else(|| "–".into())
        ));
    }
    lines
}

pub async fn run(ctx: &AwsContext, args: &StatusArgs) -> Result<u8, AppError> {
    let mut signals = Signals::install();
    let started = Instant::now();
    // The last state seen, and the one before each instance's last change: a
    // transition stays marked until the next one, not just for one refresh.
    let mut seen: HashMap<String, Ping> = HashMap::new();
    let mut was: HashMap<String, Ping> = HashMap::new();
    let mut drawn = 0usize;
    let tty = std::io::stdout().is_terminal();
    let polling = args.wait || args.watch;
    let mut backoff = Backoff::new(Duration::from(args.interval));
    loop {
        let throttled_before = ctx.throttle.count();
        let inventory = match fleet::fetch(ctx).await {
            // Polling outlasts a throttled account: wait longer and ask again.
            Err(e) if polling && throttled_only(&e) && !timed_out(started, args) => {
                let wait = backoff.after(true);
                eprintln!(
                    "warning: {} (asking again in {})",
                    e,
                    humantime::format_duration(wait)
                );
                tokio::select! {
                    _ = tokio::time::sleep(wait) => continue,
                    n = signals.recv() => return Err(signals::as_error(n)),
                }
            }
            result => result?,
        };
        let throttled = ctx.throttle.count() > throttled_before;
        for w in &inventory.warnings {
            eprintln!("warning: {}", w.summary());
        }
        let rows = rows(&inventory.instances, &args.targets)?;
        let online = all_online(&rows);
        let finished = if args.watch {
            false
        } else {
            !args.wait || online || timed_out(started, args)
        };
        if args.json {
            if finished {
                let doc = StatusJson {
                    version: 1,
                    all_online: online,
                    instances: &rows,
                };
                let json = serde_json::to_string_pretty(&doc).unwrap_or_default();
                println!("{}", crate::text::json_inert(json));
            }
        } else if finished || args.watch {
            for r in &rows {
                if let Some(old) = seen.insert(r.id.clone(), r.ping) {
                    if old != r.ping {
                        was.insert(r.id.clone(), old);
                    }
                }
            }
            let lines = render(&rows, &was, unix_now());
            let mut out = std::io::stdout().lock();
            if args.watch && tty && drawn > 0 {
                // Redraw in place: up over the last table, clear to the end.
                let _ = write!(out, "\x1b[{drawn}A\x1b[J");
            }
            for l in &lines {
                let _ = writeln!(out, "{l}");
            }
            let _ = out.flush();
            drawn = lines.len();
        }
        if finished {
            if args.wait && !online {
                let waiting: Vec<String> = rows
                    .iter()
                    .filter(|r| r.ping != Ping::Online)
                    .map(|r| format!("{} ({})", sanitize(&r.id), r.ping.label()))
                    .collect();
                eprintln!(
                    "error: timed out after {} waiting for: {}",
                    humantime::format_duration(Duration::from(args.timeout)),
                    waiting.join(", ")
                );
            }
            return Ok(if online { 0 } else { NOT_ALL_ONLINE });
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff.after(throttled)) => {}
            n = signals.recv() => return Err(signals::as_error(n)),
        }
    }
}

fn timed_out(started: Instant, args: &StatusArgs) -> bool {
    started.elapsed() >= Duration::from(args.timeout)
}

/// Every call failed only because AWS throttled it.
fn throttled_only(e: &fleet::FetchError) -> bool {
    !e.errors.is_empty() && e.errors.iter().all(|e| e.kind == AwsErrorKind::Throttled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(id: &str, name: &str, ping: Ping) -> Instance {
        Instance {
            id: id.into(),
            name: Some(name.into()),
            ping,
            ..Instance::default()
        }
    }

    #[test]
    fn rows_follow_the_targets_and_all_online_needs_every_one() {
        let fleet = [
            inst("i-01", "web-1", Ping::Online),
            inst("i-02", "web-2", Ping::ConnectionLost),
            inst("i-03", "plain", Ping::NotManaged),
        ];
        let all = rows(&fleet, &[]).unwrap();
        assert_eq!(all.len(), 2, "unmanaged instances are not asked about");
        assert!(!all_online(&all));
        let one = rows(&fleet, &["web-1".into(), "i-01".into()]).unwrap();
        assert_eq!(one.len(), 1, "the same instance twice is one row");
        assert!(all_online(&one));
        assert!(!all_online(&[]));
        assert!(rows(&fleet, &["nope".into()]).is_err());
    }

    #[test]
    fn transitions_are_marked() {
        let r = vec![Row::of(&inst("i-01", "web-1", Ping::Online))];
        let before = HashMap::from([("i-01".to_string(), Ping::ConnectionLost)]);
        let lines = render(&r, &before, 0);
        assert!(
            lines[1].contains("Online (was ConnectionLost)"),
            "{}",
            lines[1]
        );
        assert!(!render(&r, &HashMap::new(), 0)[1].contains("was"));
    }
}
