//! The full-screen picker: state (`app`), keymap (`keys`), drawing (`view`), terminal
//! ownership (`terminal`) and the event loop below, which turns key presses,
//! refresh results, ticks and signals into actions and carries out the effects.

pub mod app;
pub mod columns;
pub mod keys;
pub mod push;
pub mod terminal;
pub mod view;

use std::time::{Duration, Instant};

use crossterm::event::{Event, EventStream};
use futures::StreamExt;
use tokio::sync::{mpsc, watch};

use crate::aws::AwsContext;
use crate::connect::Connector;
use crate::error::AppError;
use crate::fleet::{self, Cache};
use crate::signals::{self, Signals};
use crate::transfer::{self, CopySpec, Direction, Request, Update};
use app::{Action, App, Effect, Source};
use terminal::TerminalGuard;
use view::Theme;

/// How the picker starts.
#[derive(Debug, Clone, Default)]
pub struct PickOptions {
    pub query: Option<String>,
    pub online_only: bool,
    pub details: bool,
    pub color: bool,
    /// Benchmark hook: stop after the first frame that shows rows.
    pub exit_after_first_frame: bool,
    /// Exit after the ssh session, with its exit code, instead of coming back.
    pub once: bool,
    /// A first line for the status bar.
    pub notice: Option<String>,
    /// How often to re-check the ping column with SSM; `None` never.
    pub ping_refresh: Option<Duration>,
    /// Hosts a push copies to at once.
    pub parallel: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Picked(String),
    /// `once`: the ssh session ended with this exit code.
    Connected(i32),
    Cancelled,
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn spawn_refresh(ctx: &AwsContext, tx: &mpsc::UnboundedSender<Action>) {
    let (ctx, tx) = (ctx.clone(), tx.clone());
    tokio::spawn(async move {
        let result = fleet::fetch(&ctx).await;
        let _ = tx.send(Action::Loaded(result, unix_now()));
    });
}

fn spawn_ping_check(
    ctx: &AwsContext,
    tx: &mpsc::UnboundedSender<Action>,
    only: Option<fleet::ping::Targets>,
) {
    let (ctx, tx) = (ctx.clone(), tx.clone());
    tokio::spawn(async move {
        let rechecked = only.as_ref().map(|t| t.values().map(Vec::len).sum());
        let report = fleet::ping::fetch_pings(&ctx, only.as_ref()).await;
        let _ = tx.send(Action::Pings { report, rechecked });
    });
}

/// Draws the state, sizing the list to the screen first.
fn draw(app: &mut App, guard: &mut TerminalGuard, theme: Theme) -> Result<(), AppError> {
    let size = guard.terminal.size().map_err(io_error)?;
    let list_rows = view::areas(app, size.into()).list.height as usize;
    if list_rows != app.viewport {
        app.update(Action::Viewport(list_rows));
    }
    guard
        .terminal
        .draw(|f| view::render(f, app, theme))
        .map_err(io_error)?;
    Ok(())
}

/// How long after a throttled attempt the status line still says so.
const THROTTLE_SHOWN_FOR: Duration = Duration::from_secs(5);

/// The ping refresh's clock: first tick one period from now.
fn ping_interval(every: Duration) -> tokio::time::Interval {
    let mut i = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    // After an ssh session, one check now rather than a burst of missed ones.
    i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    i
}

/// The next tick of `interval`, or never without one.
async fn next_tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// The AWS context, and the connector Enter uses (none: Enter prints the picked id).
pub type Account = (AwsContext, Option<Connector>);

/// Runs the picker. `account` is awaited only after the cached fleet is on screen:
/// loading the AWS configuration (its credential chain reads the system's CA
/// certificates) should run meanwhile, e.g. in a spawned task. Cached rows of another
/// account view than the loaded one are taken off again at once.
pub async fn run(
    account: impl std::future::Future<Output = Result<Account, AppError>>,
    cache: Option<Cache>,
    opts: PickOptions,
) -> Result<Outcome, AppError> {
    let mut app = App::new(unix_now());
    app.online_only = opts.online_only;
    app.details = opts.details;
    let file = cache.as_ref().and_then(Cache::read);
    let cached_for = file.as_ref().map(|f| f.key().to_string());
    if let Some(c) = file.map(fleet::CacheFile::into_cached) {
        app.set_instances(
            c.instances,
            Source::Cached {
                saved_at: c.saved_at,
            },
        );
    }
    for ch in opts.query.as_deref().unwrap_or_default().chars() {
        app.update(Action::Char(ch));
    }

    let theme = Theme { color: opts.color };
    let mut guard = TerminalGuard::enter().map_err(|e| {
        AppError::other(
            format!("cannot open the terminal: {e}"),
            "run ec2ssh in an interactive terminal, or use `ec2ssh list` in scripts",
        )
    })?;
    let first_frame =
        |app: &mut App, guard: &mut TerminalGuard| -> Result<Option<Outcome>, AppError> {
            draw(app, guard, theme)?;
            if !opts.exit_after_first_frame {
                return Ok(None);
            }
            // When the frame was drawn, for the benchmark to count from the exec.
            let at = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            terminal::restore();
            eprintln!("first frame at {:.6}", at.as_secs_f64());
            Ok(Some(Outcome::Cancelled))
        };
    if !app.instances.is_empty() {
        if let Some(done) = first_frame(&mut app, &mut guard)? {
            return Ok(done);
        }
    }
    let (ctx, mut connector) = account.await?;
    if cached_for.is_some_and(|k| k != ctx.cache_key) {
        app.set_instances(Vec::new(), Source::Nothing);
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    app.loading = true;
    spawn_refresh(&ctx, &tx);

    let mut events = EventStream::new();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut ping_tick = opts.ping_refresh.map(ping_interval);
    // A ping check AWS throttled stretches the wait before the next one.
    let mut ping_backoff = opts.ping_refresh.map(fleet::ping::Backoff::new);
    let mut throttled_at_check = ctx.throttle.count();
    let mut signals = Signals::install();
    app.login = connector.as_ref().map(|c| c.rules.clone());
    app.notice = opts.notice.clone();
    let mut dirty = true;
    let mut last_second = app.now;
    let mut pushing: Option<Pushing> = None;

    loop {
        if dirty {
            let shown_before = !app.instances.is_empty();
            draw(&mut app, &mut guard, theme)?;
            dirty = false;
            if opts.exit_after_first_frame && !shown_before && !app.instances.is_empty() {
                if let Some(done) = first_frame(&mut app, &mut guard)? {
                    return Ok(done);
                }
            }
        }
        let mut effect = None;
        let action = tokio::select! {
            ev = events.next() => match ev {
                Some(Ok(Event::Key(key))) if app.push.is_some() => {
                    // The push dialog or the transfers view has the keyboard.
                    dirty = true;
                    effect = keys::dialog_key(key).and_then(|k| app.push_key(k, &push::Disk));
                    None
                }
                Some(Ok(Event::Key(key))) => keys::action_for(key),
                Some(Ok(Event::Resize(..))) => { dirty = true; None }
                Some(Ok(_)) => None,
                Some(Err(e)) => return Err(io_error(e)),
                None => return Ok(Outcome::Cancelled),
            },
            Some(action) = rx.recv() => {
                if let (Action::Pings { .. }, Some(backoff)) = (&action, ping_backoff.as_mut()) {
                    let throttled = ctx.throttle.count() != throttled_at_check;
                    let wait = backoff.after(throttled);
                    if ping_tick.as_ref().is_some_and(|t| t.period() != wait) {
                        ping_tick = Some(ping_interval(wait));
                    }
                }
                Some(action)
            }
            _ = tick.tick() => {
                let now = unix_now();
                let busy = app.loading || app.pings_in_flight > 0;
                let throttled = busy && ctx.throttle.recently(THROTTLE_SHOWN_FOR);
                let changed = throttled != app.throttled;
                app.throttled = throttled;
                (app.loading || changed || now != last_second).then(|| { last_second = now; Action::Tick(now) })
            }
            _ = next_tick(&mut ping_tick) => Some(Action::CheckPings),
            n = signals.recv() => {
                if let Some(p) = pushing.take() {
                    p.cancel().await;
                }
                return Err(signals::as_error(n));
            }
        };
        let effect = match action {
            Some(action) => {
                dirty = true;
                if let (Action::Transfer(Update::Done(n, r), _), Some(p), Some(c)) =
                    (&action, &pushing, &connector)
                {
                    if let Some(host) = p.hosts.get(*n).filter(|_| r.ok) {
                        app.evidence.copied(host, c.pushes_key(host));
                    }
                }
                if let (Action::Loaded(Ok(inv), now), Some(cache)) = (&action, &cache) {
                    if let Err(e) = cache.store(&ctx.cache_key, *now, &inv.instances) {
                        tracing::warn!(dir = %cache.dir().display(), error = %e, "cannot write the inventory cache");
                    }
                }
                let loaded = matches!(action, Action::Loaded(Ok(_), _));
                let effect = app.update(action);
                if loaded {
                    // The fleet it replaced and the listing's pages are free now.
                    crate::alloc::release_free();
                }
                effect
            }
            None if effect.is_some() => effect,
            None => continue,
        };
        match effect {
            Some(Effect::Quit) => return Ok(Outcome::Cancelled),
            Some(Effect::Select(id)) => {
                let Some(connector) = connector.as_mut() else {
                    return Ok(Outcome::Picked(id));
                };
                let Some((instance, name)) = reachable(&mut app, &id, "connect") else {
                    continue;
                };
                // Hand keyboard and screen to ssh; take them back when it exits.
                drop(events);
                guard.suspend();
                let login = connector.user_for(&instance);
                eprintln!(
                    "ec2ssh: connecting to {name} ({}) as {} ({})",
                    crate::text::sanitize(&instance.id),
                    login.user,
                    login.source.label()
                );
                let result = connector.connect(&instance, &[], &mut signals).await;
                if let Ok(done) = &result {
                    let pushed = connector.pushes_key(&instance);
                    app.evidence.connected(&instance, pushed, done.code);
                }
                // Ctrl-C during the session was the remote side's, not ours.
                while signals.pending().is_some() {}
                if let Err(e) = &result {
                    crate::error::report(e);
                }
                if opts.once {
                    return result.map(|done| {
                        if let Some(hint) = done.hint() {
                            eprintln!("ec2ssh: {hint}");
                        }
                        Outcome::Connected(done.code)
                    });
                }
                guard.resume().map_err(io_error)?;
                events = EventStream::new();
                app.login = Some(connector.rules.clone());
                app.notice = Some(outcome_notice(
                    result.map(|done| match done.hint() {
                        Some(hint) => format!("{} · {hint} · F2 diagnoses", done.summary(&name)),
                        None => done.summary(&name),
                    }),
                    &name,
                )?);
            }
            Some(Effect::Shell(id)) => {
                let Some((instance, name)) = reachable(&mut app, &id, "open a shell") else {
                    continue;
                };
                // As for Enter: the terminal is the shell's until it closes.
                drop(events);
                guard.suspend();
                eprintln!(
                    "ec2ssh: opening a Session Manager shell on {name} ({})",
                    crate::text::sanitize(&instance.id)
                );
                let result = crate::connect::shell::run(&ctx, &instance, None, &mut signals).await;
                if result.is_ok() {
                    app.evidence.shell_opened(&instance);
                }
                if let Err(e) = &result {
                    crate::error::report(e);
                }
                if opts.once {
                    return result.map(|done| Outcome::Connected(done.code));
                }
                guard.resume().map_err(io_error)?;
                events = EventStream::new();
                app.notice = Some(outcome_notice(
                    result.map(|done| done.summary(&name)),
                    &name,
                )?);
            }
            Some(Effect::Diagnose(id)) => {
                let (ctx, tx) = (ctx.clone(), tx.clone());
                let name = app
                    .instances
                    .iter()
                    .find(|i| i.id == id)
                    .map(|i| match i.display_name() {
                        "" => i.id.clone(),
                        n => crate::text::sanitize(n).into_owned(),
                    })
                    .unwrap_or_else(|| id.clone());
                let evidence = app.evidence.clone();
                tokio::spawn(async move {
                    let checks =
                        crate::commands::doctor::diagnose(&ctx, Some(&id), &evidence).await;
                    let _ = tx.send(Action::Diagnosed(name, checks));
                });
            }
            Some(Effect::Refresh) => spawn_refresh(&ctx, &tx),
            Some(Effect::CheckPings(only)) => {
                throttled_at_check = ctx.throttle.count();
                spawn_ping_check(&ctx, &tx, only);
            }
            Some(Effect::StartPush { hosts, job }) => {
                match transfer::local_size(&job.sources, job.recursive) {
                    Err(e) => {
                        app.push_refused(format!("cannot read {}: {e}", job.sources.join(" ")))
                    }
                    Ok(total) => {
                        let Some(connector) = connector.clone() else {
                            continue;
                        };
                        app.start_transfers(&hosts, total, job.clone());
                        let req = Request {
                            spec: CopySpec {
                                direction: Direction::Push,
                                sources: job.sources,
                                dest: job.dest,
                                host: None,
                                user: None,
                            },
                            recursive: job.recursive,
                            preserve: false,
                            parallel: opts.parallel.max(1),
                            mkdir: job.mkdir,
                        };
                        pushing = Some(Pushing::start(connector, hosts, req, &tx));
                    }
                }
            }
            Some(Effect::CancelPush) => {
                if let Some(p) = &pushing {
                    let _ = p.cancel.send(true);
                }
            }
            None => {}
        }
    }
}

/// The instance `id` and its display name, if ssh or a shell can reach it; else the
/// status line says why (and how to find out more) and there is nothing to do.
fn reachable(app: &mut App, id: &str, doing: &str) -> Option<(fleet::Instance, String)> {
    let instance = app.instances.iter().find(|i| i.id == id).cloned()?;
    let name = match instance.display_name() {
        "" => crate::text::sanitize(&instance.id).into_owned(),
        n => crate::text::sanitize(n).into_owned(),
    };
    if instance.ping != fleet::Ping::Online {
        app.notice = Some(format!(
            "{name} is not Online in Systems Manager ({}); cannot {doing} · F2 diagnoses",
            instance.ping.label(),
        ));
        return None;
    }
    Some((instance, name))
}

/// The status line after a session: its summary, or what failed and the fix.
/// A signal that ended the session ends the picker too.
fn outcome_notice(result: Result<String, AppError>, name: &str) -> Result<String, AppError> {
    match result {
        Ok(summary) => Ok(summary),
        Err(e @ (AppError::Signal(_) | AppError::Interrupted)) => Err(e),
        Err(e) => Ok(e
            .explain()
            .into_iter()
            .map(|(what, fix)| match fix {
                Some(fix) => format!("{name}: {what} ({fix})"),
                None => format!("{name}: {what}"),
            })
            .collect::<Vec<_>>()
            .join("; ")
            + " · F2 diagnoses"),
    }
}

/// A push started from the picker: its copies run in a task whose progress comes back
/// as `Action::Transfer`.
struct Pushing {
    cancel: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    /// The hosts, in the order their updates are numbered.
    hosts: Vec<fleet::Instance>,
}

impl Pushing {
    fn start(
        connector: Connector,
        hosts: Vec<fleet::Instance>,
        req: Request,
        tx: &mpsc::UnboundedSender<Action>,
    ) -> Pushing {
        let (cancel, cancelled) = watch::channel(false);
        let (utx, mut urx) = mpsc::unbounded_channel();
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Some(u) = urx.recv().await {
                let _ = tx.send(Action::Transfer(u, Instant::now()));
            }
        });
        let task = {
            let hosts = hosts.clone();
            tokio::spawn(async move {
                transfer::run(&connector, &hosts, &req, utx, cancelled).await;
            })
        };
        Pushing {
            cancel,
            task,
            hosts,
        }
    }

    /// Ends the copies (and so their sessions) before the picker exits.
    async fn cancel(self) {
        let _ = self.cancel.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(8), self.task).await;
    }
}

fn io_error(e: std::io::Error) -> AppError {
    AppError::other(
        format!("terminal error: {e}"),
        "check that the terminal is still open and try again",
    )
}
