//! `ec2ssh list`: the fleet as an aligned table, ids only (`-q`) or JSON (`--json`).

use std::io::{IsTerminal, Write};

use serde::Serialize;

use crate::aws::{AwsContext, AwsError};
use crate::cli::{ColorChoice, ListArgs};
use crate::error::AppError;
use crate::filter::filter_instances;
use crate::fleet::reach::reach;
use crate::fleet::{self, Cache, Instance, Ping, Via};
use crate::text::{fit, sanitize, width};
use crate::time::unix_now;

/// `--json` output; documented in docs/json.md. Add fields, never rename them.
#[derive(Serialize)]
pub struct ListJson<'a> {
    /// Schema version of this document.
    pub version: u32,
    pub instances: Vec<InstanceJson<'a>>,
    pub warnings: Vec<WarningJson<'a>>,
}

/// An instance and the path that would reach it.
#[derive(Serialize)]
pub struct InstanceJson<'a> {
    #[serde(flatten)]
    pub instance: &'a Instance,
    /// `ssm`, `eice` or `none` (see `fleet::reach`).
    pub reach: &'static str,
}

#[derive(Serialize)]
pub struct WarningJson<'a> {
    #[serde(flatten)]
    pub error: &'a AwsError,
    pub summary: String,
    pub fix: String,
}

pub fn use_color(choice: ColorChoice, is_tty: bool) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => is_tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
    }
}

pub async fn run(
    ctx: &AwsContext,
    cache: Option<&Cache>,
    args: &ListArgs,
    via: Via,
) -> Result<(), AppError> {
    let inv = fleet::fetch(ctx).await?;
    if let Some(cache) = cache {
        if let Err(e) = cache.store(&ctx.cache_key, unix_now(), &inv.instances) {
            tracing::warn!(error = %e, "cannot write the inventory cache");
        }
    }
    let mut shown: Vec<&Instance> = match args.filter.as_deref() {
        Some(q) => filter_instances(&inv.instances, q),
        None => inv.instances.iter().collect(),
    };
    if args.online {
        shown.retain(|i| i.ping == Ping::Online);
    }
    // One write per 64 KiB rather than per line (stdout is line-buffered).
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let written = if args.json {
        let doc = ListJson {
            version: 1,
            instances: shown
                .into_iter()
                .map(|i| InstanceJson {
                    instance: i,
                    reach: reach(i, via).label(),
                })
                .collect(),
            warnings: inv
                .warnings
                .iter()
                .map(|e| WarningJson {
                    error: e,
                    summary: e.summary(),
                    fix: e.fix(),
                })
                .collect(),
        };
        serde_json::to_string_pretty(&doc)
            .map_err(std::io::Error::from)
            .and_then(|json| writeln!(out, "{}", crate::text::json_inert(json)))
    } else {
        for w in &inv.warnings {
            eprintln!("warning: {}\n  fix: {}", w.summary(), w.fix());
        }
        if args.quiet {
            shown
                .iter()
                .try_for_each(|i| writeln!(out, "{}", sanitize(&i.id)))
        } else {
            let color = use_color(args.color, std::io::stdout().is_terminal());
            out.write_all(table(&shown, color).as_bytes())
        }
    };
    let written = written.and_then(|_| out.flush());
    match written {
        // A closed pipe (`| head`) is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(AppError::other(
            format!("cannot write the listing: {e}"),
            "check where stdout goes",
        )),
        Ok(()) => Ok(()),
    }
}

const HEADERS: [&str; 9] = [
    "NAME",
    "ID",
    "PING",
    "STATE",
    "PRIVATE IP",
    "PLATFORM",
    "TYPE",
    "AZ",
    "AGENT",
];

fn row(i: &Instance, account: bool) -> Vec<String> {
    let o = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let mut cells = vec![
        i.name.clone().unwrap_or_else(|| "-".into()),
        i.id.clone(),
        i.ping.label().to_string(),
        o(&i.state),
        o(&i.private_ip),
        i.platform_label(),
        o(&i.instance_type),
        o(&i.availability_zone),
        o(&i.agent_version),
    ];
    if account {
        cells.push(i.account_label());
    }
    cells
        .into_iter()
        .map(|s| sanitize(&s).into_owned())
        .collect()
}

fn paint(s: &str, ping: Ping, color: bool) -> String {
    if !color {
        return s.to_string();
    }
    let code = match ping {
        Ping::Online => "32",
        Ping::ConnectionLost => "33",
        Ping::Inactive => "31",
        Ping::NotManaged | Ping::Unknown => "90",
    };
    format!("\x1b[{code}m{s}\x1b[0m")
}

/// The aligned table: a ping glyph, then columns as wide as their widest cell
/// (names capped at 40 cells), measured in display cells.
pub fn table(instances: &[&Instance], color: bool) -> String {
    // Whose each row is, when there is more than one account.
    let account = fleet::several_accounts(instances.iter().copied());
    let mut headers: Vec<String> = HEADERS.map(String::from).to_vec();
    if account {
        headers.push("ACCOUNT".into());
    }
    let rows: Vec<Vec<String>> = instances.iter().map(|i| row(i, account)).collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| width(h)).collect();
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(width(cell));
        }
    }
    widths[0] = widths[0].min(40);
    let mut out = String::new();
    let line = |glyph: String, cells: &[String]| {
        let mut l = format!("{glyph} ");
        for (n, (c, w)) in cells.iter().zip(widths.iter().copied()).enumerate() {
            if n + 1 == cells.len() {
                l.push_str(c);
            } else {
                l.push_str(&fit(c, w));
                l.push_str("  ");
            }
        }
        l.trim_end().to_string() + "\n"
    };
    out.push_str(&line(" ".into(), &headers));
    for (i, r) in instances.iter().zip(&rows) {
        out.push_str(&line(paint(&i.ping.glyph().to_string(), i.ping, color), r));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(name: &str, ping: Ping) -> Instance {
        Instance {
            id: "i-0123456789abcdef0".into(),
            name: Some(name.into()),
            ping,
            state: Some("running".into()),
            ..Default::default()
        }
    }

    #[test]
    fn table_is_aligned_in_cells_and_inert() {
        let a = inst("web-1", Ping::Online);
        let b = inst("ウェブ\u{1b}[31m", Ping::Inactive);
        let t = table(&[&a, &b], false);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(
            !t.contains('\u{1b}'),
            "escape sequences must not reach the terminal"
        );
        let id_col = |l: &str| width(&l[..l.find("i-0123").unwrap()]);
        assert_eq!(id_col(lines[1]), id_col(lines[2]));
        assert!(lines[1].starts_with("● web-1"));
        assert!(lines[2].starts_with("○ ウェブ␛[31m"));
    }

    #[test]
    fn colour_only_when_asked() {
        let a = inst("web-1", Ping::Online);
        assert!(table(&[&a], true).contains("\x1b[32m●\x1b[0m"));
        assert!(!table(&[&a], false).contains('\x1b'));
        assert!(!use_color(ColorChoice::Auto, false));
        assert!(use_color(ColorChoice::Always, false));
    }
}
