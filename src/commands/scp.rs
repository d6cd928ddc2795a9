//! `ec2ssh scp`: copy files to or from one or many instances with the system's scp
//! through the tunnel, a fresh pushed key per host. Progress bars on a terminal, a
//! result line per host, `--json` for scripts; exit 0 only if every host succeeded.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use tokio::sync::{mpsc, watch};

use crate::cli::ScpArgs;
use crate::connect::Connector;
use crate::error::AppError;
use crate::fleet::{self, Instance};
use crate::select;
use crate::signals::{self, Signals};
use crate::text::{fit, human_bytes, human_duration, sanitize};
use crate::transfer::{self, CopySpec, Direction, HostResult, Request, Update};

/// Hosts at once when neither `--parallel` nor the config says.
pub const DEFAULT_PARALLEL: u16 = 8;

pub async fn run(
    mut connector: Connector,
    args: &ScpArgs,
    config_parallel: Option<u16>,
) -> Result<u8, AppError> {
    let mut signals = Signals::install();
    let spec =
        CopySpec::parse(&args.operands).map_err(|e| AppError::other(e.to_string(), e.fix()))?;
    connector.set_login(args.user.clone().or(spec.user.clone()), args.key.clone())?;
    hosts_named(&spec, &args.targets)?;
    if args.mkdir && spec.direction == Direction::Pull {
        return Err(AppError::other(
            "--mkdir creates the remote directory of a push; this is a pull",
            "create the local directory yourself (`mkdir -p DIR`), or drop --mkdir",
        ));
    }
    let total = match spec.direction {
        Direction::Push => Some(transfer::local_size(&spec.sources, args.recursive).map_err(
            |e| {
                AppError::other(
                    format!("cannot copy {}: {e}", spec.sources.join(", ")),
                    "check the local paths; a directory needs -r",
                )
            },
        )?),
        Direction::Pull => None,
    };

    let inventory = fleet::fetch(&connector.ctx).await?;
    let hosts = hosts(&inventory.instances, &spec, &args.targets)?;
    if spec.direction == Direction::Pull && hosts.len() > 1 {
        std::fs::create_dir_all(&spec.dest).map_err(|e| {
            AppError::other(
                format!("cannot create {}: {e}", spec.dest),
                "fetching from several hosts needs a local directory (each host's files go into DEST/<instance-id>/)",
            )
        })?;
    }
    let req = Request {
        spec,
        recursive: args.recursive,
        preserve: args.preserve,
        mkdir: args.mkdir,
        parallel: args
            .parallel
            .or(config_parallel)
            .unwrap_or(DEFAULT_PARALLEL)
            .into(),
    };

    let (tx, rx) = mpsc::unbounded_channel();
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let show = (std::io::stderr().is_terminal()).then(|| Bars::new(&hosts, total));
    let display = tokio::spawn(follow(rx, show));
    let work = crate::connect::many::copy_many(&connector, &hosts, &req, tx, cancel_rx);
    tokio::pin!(work);
    let mut interrupted = None;
    let results = loop {
        tokio::select! {
            results = &mut work => break results,
            n = signals.recv(), if interrupted.is_none() => {
                interrupted = Some(n);
                let _ = cancel_tx.send(true);
            }
        }
    };
    let _ = display.await;

    if args.json {
        let doc = ScpJson {
            version: 1,
            ok: results.iter().all(|r| r.ok),
            direction: req.spec.direction,
            results: &results,
        };
        let json = serde_json::to_string_pretty(&doc).unwrap_or_default();
        println!("{}", crate::text::json_inert(json));
    } else {
        for line in summary(&results) {
            println!("{line}");
        }
    }
    if let Some(n) = interrupted {
        return Err(signals::as_error(n));
    }
    Ok(if results.iter().all(|r| r.ok) { 0 } else { 1 })
}

#[derive(Serialize)]
struct ScpJson<'a> {
    version: u32,
    ok: bool,
    direction: Direction,
    results: &'a [HostResult],
}

/// Hosts come from `HOST:PATH` or from `--target` with `:PATH`: exactly one way.
fn hosts_named(spec: &CopySpec, targets: &[String]) -> Result<(), AppError> {
    match (&spec.host, targets.is_empty()) {
        (Some(h), false) => Err(AppError::other(
            format!("both {:?}: and --target name hosts", sanitize(h)),
            "name the hosts one way: `HOST:PATH`, or `--target QUERY` with `:PATH`",
        )),
        (None, true) => Err(AppError::other(
            "`:PATH` copies to the --target hosts, but none were given",
            "add --target QUERY (an id, IP, Name, tag:KEY=VALUE or fuzzy query), or write HOST:PATH",
        )),
        _ => Ok(()),
    }
}

/// The hosts the operands and `--target` name: `HOST:` is one host (as `ec2ssh ssh`
/// finds it), `:PATH` takes every host the `--target` queries select.
fn hosts(
    instances: &[Instance],
    spec: &CopySpec,
    targets: &[String],
) -> Result<Vec<Instance>, AppError> {
    hosts_named(spec, targets)?;
    let chosen: Vec<&Instance> = match &spec.host {
        Some(h) => vec![select::find(instances, h)?],
        None => select::select_all(instances, targets)?,
    };
    Ok(chosen.into_iter().cloned().collect())
}

/// One line per host, then the count: what a script or a human reads last.
pub fn summary(results: &[HostResult]) -> Vec<String> {
    let mut lines = Vec::new();
    for r in results {
        let name = fit(&sanitize(r.name.as_deref().unwrap_or("")), 24);
        if r.ok {
            lines.push(format!(
                "ok      {name}  {}  {} in {}",
                sanitize(&r.id),
                human_bytes(r.bytes),
                human_duration(Duration::from_secs_f64(r.seconds))
            ));
        } else {
            lines.push(format!(
                "failed  {name}  {}  {}",
                sanitize(&r.id),
                sanitize(r.error.as_deref().unwrap_or("failed"))
            ));
            if let Some(fix) = &r.fix {
                lines.push(format!("        fix: {}", sanitize(fix)));
            }
        }
    }
    let failed = results.iter().filter(|r| !r.ok).count();
    lines.push(format!(
        "{} host{}: {} ok, {failed} failed",
        results.len(),
        if results.len() == 1 { "" } else { "s" },
        results.len() - failed
    ));
    lines
}

/// Progress bars on stderr, one per host.
struct Bars {
    multi: MultiProgress,
    bars: Vec<ProgressBar>,
    total: Option<u64>,
}

impl Bars {
    fn new(hosts: &[Instance], total: Option<u64>) -> Bars {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
        let waiting = ProgressStyle::with_template("{prefix}  {msg}").expect("template");
        let bars = hosts
            .iter()
            .map(|h| {
                let label = match h.display_name() {
                    "" => h.id.clone(),
                    n => sanitize(n).into_owned(),
                };
                let bar = multi.add(ProgressBar::new(total.unwrap_or(0)));
                bar.set_style(waiting.clone());
                bar.set_prefix(fit(&label, 24));
                bar.set_message("waiting");
                bar
            })
            .collect();
        Bars { multi, bars, total }
    }

    fn apply(&self, update: Update) {
        match update {
            Update::Started(n) => {
                let template = match self.total {
                    Some(_) => "{prefix}  [{bar:30}] {bytes:>10}/{total_bytes:<10} {binary_bytes_per_sec:>12}  ETA {eta}",
                    None => "{prefix}  {spinner} {bytes:>10}  {binary_bytes_per_sec:>12}",
                };
                let bar = &self.bars[n];
                bar.set_style(
                    ProgressStyle::with_template(template)
                        .expect("template")
                        .progress_chars("=> "),
                );
                bar.enable_steady_tick(Duration::from_millis(200));
            }
            Update::Bytes(n, b) => {
                // ssh's framing makes the tunnel carry a little more than the files.
                let b = self.total.map_or(b, |t| b.min(t));
                self.bars[n].set_position(b);
            }
            Update::Done(n, r) => {
                let bar = &self.bars[n];
                bar.set_style(ProgressStyle::with_template("{prefix}  {msg}").expect("template"));
                if r.ok {
                    bar.finish_with_message(format!(
                        "done  {} in {}",
                        human_bytes(r.bytes),
                        human_duration(Duration::from_secs_f64(r.seconds))
                    ));
                } else {
                    bar.abandon_with_message(format!(
                        "FAILED  {}",
                        r.error.as_deref().unwrap_or("failed")
                    ));
                }
            }
        }
    }
}

async fn follow(mut rx: mpsc::UnboundedReceiver<Update>, bars: Option<Bars>) {
    while let Some(u) = rx.recv().await {
        if let Some(b) = &bars {
            b.apply(u);
        }
    }
    if let Some(b) = bars {
        // Leave the bars as they ended, then the summary below them.
        let _ = b.multi.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(id: &str, name: &str) -> Instance {
        Instance {
            id: id.into(),
            name: Some(name.into()),
            ..Instance::default()
        }
    }

    #[test]
    fn hosts_come_from_the_operand_or_the_targets_never_both() {
        let fleet = [
            inst("i-01", "web-1"),
            inst("i-02", "web-2"),
            inst("i-03", "db"),
        ];
        let spec = |ops: &[&str]| {
            CopySpec::parse(&ops.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
        };
        let ids = |v: Vec<Instance>| v.into_iter().map(|i| i.id).collect::<Vec<_>>();
        assert_eq!(
            ids(hosts(&fleet, &spec(&["f", "web-2:"]), &[]).unwrap()),
            ["i-02"]
        );
        assert_eq!(
            ids(hosts(&fleet, &spec(&["f", ":/tmp"]), &["web".into()]).unwrap()),
            ["i-01", "i-02"]
        );
        assert!(hosts(&fleet, &spec(&["f", "web-2:"]), &["db".into()]).is_err());
        assert!(hosts(&fleet, &spec(&["f", ":"]), &[]).is_err());
        assert!(
            hosts(&fleet, &spec(&["f", "web:"]), &[]).is_err(),
            "ambiguous HOST"
        );
    }

    #[test]
    fn the_summary_names_each_failure_and_counts() {
        let ok = HostResult {
            id: "i-01".into(),
            name: Some("web-1".into()),
            ok: true,
            user: Some("ec2-user".into()),
            bytes: 1 << 20,
            seconds: 1.5,
            error: None,
            fix: None,
            missing_dir: None,
        };
        let bad = HostResult {
            id: "i-02".into(),
            ok: false,
            error: Some("not connected".into()),
            fix: Some("start it".into()),
            bytes: 0,
            ..ok.clone()
        };
        let lines = summary(&[ok, bad]);
        assert!(
            lines[0].starts_with("ok      web-1") && lines[0].ends_with("1.0 MiB in 1.5s"),
            "{}",
            lines[0]
        );
        assert!(lines[1].starts_with("failed  web-1") && lines[1].ends_with("not connected"));
        assert_eq!(lines[2], "        fix: start it");
        assert_eq!(lines[3], "2 hosts: 1 ok, 1 failed");
    }
}
