//! The full-screen picker: state (`app`), keymap (`keys`), drawing (`view`), terminal
//! ownership (`terminal`) and the event loop below, which turns key presses,
//! refresh results, ticks and signals into actions and carries out the effects.

pub mod app;
pub mod columns;
pub mod keys;
pub mod push;
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
use crate::terminal::{self, TerminalGuard};
use crate::time::unix_now;
use crate::transfer::{self, CopySpec, Direction, Request, Update};
use app::{Action, App, Effect, Source};
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
    /// Which path reaches a row (shown in the table and the detail pane).
    pub via: crate::fleet::Via,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Picked(String),
    /// `once`: the ssh session ended with this exit code.
    Connected(i32),
    Cancelled,
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

/// Rows of the cached fleet decoded for the first frame: more than a screen holds.
const PREVIEW_ROWS: usize = 200;

/// Runs the picker. `account` is awaited only after the cached fleet is on screen:
/// loading the AWS configuration (its credential chain reads the system's CA
/// certificates) should run meanwhile, e.g. in a spawned task. Cached rows of another
/// account view than the loaded one are taken off again at once.
///
/// The first frame needs only a screenful: without a query it shows the head of the
/// cache and the fleet's summary (`Cache::read_head`); the whole cache is decoded and
/// indexed right after, before the first key is read.
pub async fn run(
    account: impl std::future::Future<Output = Result<Account, AppError>>,
    cache: Option<Cache>,
    opts: PickOptions,
) -> Result<Outcome, AppError> {
    let mut app = App::new(unix_now());
    app.online_only = opts.online_only;
    app.via = opts.via;
    app.details = opts.details;
    let query = opts.query.clone().unwrap_or_default();
    let head = match &cache {
        Some(c) if query.trim().is_empty() => c.read_head(PREVIEW_ROWS, opts.online_only),
        _ => None,
    };
    let theme = Theme { color: opts.color };
    let mut guard = TerminalGuard::enter().map_err(|e| {
        AppError::other(
            format!("cannot open the terminal: {e}"),
            "run ec2ssh in an interactive terminal, or use `ec2ssh list` in scripts",
        )
    })?;
    let mut marks = Marks::default();
    if let Some(head) = head.filter(|h| !h.rows.is_empty()) {
        app.preview(head);
        draw(&mut app, &mut guard, theme)?;
        marks.note("first frame");
    }
    let cached_for = load_cached(&mut app, cache.as_ref());
    for ch in query.chars() {
        app.update(Action::Char(ch));
    }
    if !app.instances.is_empty() {
        draw(&mut app, &mut guard, theme)?;
        marks.note("whole cache");
    }
    if opts.exit_after_first_frame && marks.first_frame() {
        return Ok(marks.end());
    }
    let (ctx, connector) = account.await?;
    if cached_for.is_some_and(|k| k != ctx.cache_key) {
        app.set_instances(Vec::new(), Source::Nothing);
    }
    let (tx, rx) = mpsc::unbounded_channel();
    app.loading = true;
    spawn_refresh(&ctx, &tx);
    app.login = connector.as_ref().map(|c| c.rules.clone());
    app.notice = opts.notice.clone();
    let throttled_at_check = ctx.throttle.count();
    let mut picker = Picker {
        app,
        guard,
        theme,
        opts,
        ctx,
        connector,
        cache,
        tx,
        rx,
        events: Some(EventStream::new()),
        signals: Signals::install(),
        pushing: None,
        throttled_at_check,
        marks,
    };
    picker.event_loop().await
}

/// The whole cached fleet into the picker (or nothing, replacing a preview, when the
/// file is gone or damaged); returns the account view it was listed for.
fn load_cached(app: &mut App, cache: Option<&Cache>) -> Option<String> {
    let file = cache.and_then(Cache::read);
    let cached_for = file.as_ref().map(|f| f.key().to_string());
    match file.map(fleet::CacheFile::into_cached) {
        Some(c) => app.set_instances(
            c.instances,
            Source::Cached {
                saved_at: c.saved_at,
            },
        ),
        None if app.preview.is_some() => app.set_instances(Vec::new(), Source::Nothing),
        None => {}
    }
    cached_for
}

/// Benchmark hook (`--exit-after-first-frame`): when the frames that matter were
/// drawn, told on stderr once the terminal is restored.
#[derive(Default)]
struct Marks(Vec<(&'static str, std::time::SystemTime)>);

impl Marks {
    fn note(&mut self, what: &'static str) {
        let what = if self.0.is_empty() {
            "first frame"
        } else {
            what
        };
        self.0.push((what, std::time::SystemTime::now()));
    }

    fn first_frame(&self) -> bool {
        !self.0.is_empty()
    }

    /// Restores the terminal and prints each mark as Unix seconds.
    fn end(&self) -> Outcome {
        terminal::restore();
        for (what, at) in &self.0 {
            let at = at.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            eprintln!("{what} at {:.6}", at.as_secs_f64());
        }
        Outcome::Cancelled
    }
}

/// The running picker: its state, the terminal, and what acts for it.
struct Picker {
    app: App,
    guard: TerminalGuard,
    theme: Theme,
    opts: PickOptions,
    ctx: AwsContext,
    connector: Option<Connector>,
    cache: Option<Cache>,
    tx: mpsc::UnboundedSender<Action>,
    rx: mpsc::UnboundedReceiver<Action>,
    /// Terminal input; `None` while ssh or a shell has the terminal.
    events: Option<EventStream>,
    signals: Signals,
    pushing: Option<Pushing>,
    /// AWS's throttled-call count when the last ping check started.
    throttled_at_check: u64,
    marks: Marks,
}

impl Picker {
    /// Keys, results and ticks become actions; `App::update` turns them into effects,
    /// which this carries out; until the user quits, picks, or a signal arrives.
    async fn event_loop(&mut self) -> Result<Outcome, AppError> {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let mut ping_tick = self.opts.ping_refresh.map(ping_interval);
        // A ping check AWS throttled stretches the wait before the next one.
        let mut ping_backoff = self.opts.ping_refresh.map(fleet::ping::Backoff::new);
        let mut dirty = true;
        let mut last_second = self.app.now;
        loop {
            if dirty {
                let shown_before = !self.app.instances.is_empty();
                draw(&mut self.app, &mut self.guard, self.theme)?;
                dirty = false;
                if self.opts.exit_after_first_frame
                    && !shown_before
                    && !self.app.instances.is_empty()
                {
                    self.marks.note("first frame");
                    return Ok(self.marks.end());
                }
            }
            let mut effect = None;
            let action = tokio::select! {
                ev = next_event(&mut self.events) => match ev {
                    Some(Ok(Event::Key(key))) if self.app.push.is_some() => {
                        // The push dialog or the transfers view has the keyboard.
                        dirty = true;
                        effect = keys::dialog_key(key).and_then(|k| self.app.push_key(k, &push::Disk));
                        None
                    }
                    Some(Ok(Event::Key(key))) => keys::action_for(key),
                    Some(Ok(Event::Resize(..))) => { dirty = true; None }
                    Some(Ok(_)) => None,
                    Some(Err(e)) => return Err(io_error(e)),
                    None => return Ok(Outcome::Cancelled),
                },
                Some(action) = self.rx.recv() => {
                    if let (Action::Pings { .. }, Some(backoff)) = (&action, ping_backoff.as_mut()) {
                        let throttled = self.ctx.throttle.count() != self.throttled_at_check;
                        let wait = backoff.after(throttled);
                        if ping_tick.as_ref().is_some_and(|t| t.period() != wait) {
                            ping_tick = Some(ping_interval(wait));
                        }
                    }
                    Some(action)
                }
                _ = tick.tick() => {
                    let now = unix_now();
                    let busy = self.app.loading || self.app.pings_in_flight > 0;
                    let throttled = busy && self.ctx.throttle.recently(THROTTLE_SHOWN_FOR);
                    let changed = throttled != self.app.throttled;
                    self.app.throttled = throttled;
                    (self.app.loading || changed || now != last_second).then(|| { last_second = now; Action::Tick(now) })
                }
                _ = next_tick(&mut ping_tick) => Some(Action::CheckPings),
                n = self.signals.recv() => {
                    if let Some(p) = self.pushing.take() {
                        p.cancel().await;
                    }
                    return Err(signals::as_error(n));
                }
            };
            let effect = match action {
                Some(action) => {
                    dirty = true;
                    self.before_update(&action);
                    let loaded = matches!(action, Action::Loaded(Ok(_), _));
                    let effect = self.app.update(action);
                    if loaded {
                        // The fleet it replaced and the listing's pages are free now.
                        crate::alloc::release_free();
                    }
                    effect
                }
                None if effect.is_some() => effect,
                None => continue,
            };
            if let Some(effect) = effect {
                if let Some(done) = self.carry_out(effect).await? {
                    return Ok(done);
                }
            }
        }
    }

    /// What an action means beyond the picker's state: a finished copy is evidence,
    /// a fresh listing goes to the cache.
    fn before_update(&mut self, action: &Action) {
        if let (Action::Transfer(Update::Done(n, r), _), Some(p), Some(c)) =
            (action, &self.pushing, &self.connector)
        {
            if let Some(host) = p.hosts.get(*n).filter(|_| r.ok) {
                self.app.evidence.copied(host, c.pushes_key(host));
            }
        }
        if let (Action::Loaded(Ok(inv), now), Some(cache)) = (action, &self.cache) {
            if let Err(e) = cache.store(&self.ctx.cache_key, *now, &inv.instances) {
                tracing::warn!(dir = %cache.dir().display(), error = %e, "cannot write the inventory cache");
            }
        }
    }

    /// Carries out one effect; `Some` when the picker is done.
    async fn carry_out(&mut self, effect: Effect) -> Result<Option<Outcome>, AppError> {
        match effect {
            Effect::Quit => return Ok(Some(Outcome::Cancelled)),
            Effect::Select(id) => return self.connect(id).await,
            Effect::Shell(id) => return self.shell(id).await,
            Effect::Diagnose(id) => self.diagnose(id),
            Effect::Refresh => spawn_refresh(&self.ctx, &self.tx),
            Effect::CheckPings(only) => {
                self.throttled_at_check = self.ctx.throttle.count();
                spawn_ping_check(&self.ctx, &self.tx, only);
            }
            Effect::StartPush { hosts, job } => self.start_push(hosts, job),
            Effect::CancelPush => {
                if let Some(p) = &self.pushing {
                    let _ = p.cancel.send(true);
                }
            }
        }
        Ok(None)
    }

    /// Enter: ssh to the row with the terminal handed over, taken back when it exits
    /// (without a connector, the picked id is the outcome).
    async fn connect(&mut self, id: String) -> Result<Option<Outcome>, AppError> {
        let Some(connector) = self.connector.as_mut() else {
            return Ok(Some(Outcome::Picked(id)));
        };
        let Some((instance, name)) = reachable(&mut self.app, &id, "connect", true) else {
            return Ok(None);
        };
        // Hand keyboard and screen to ssh; take them back when it exits.
        self.events = None;
        self.guard.suspend();
        let login = connector.user_for(&instance);
        let path = match fleet::reach::reach(&instance, self.app.via) {
            fleet::Reach::Eice(e) => format!(
                " through EC2 Instance Connect Endpoint {}",
                crate::text::sanitize(&e.id)
            ),
            _ => String::new(),
        };
        eprintln!(
            "ec2ssh: connecting to {name} ({}) as {} ({}){path}",
            crate::text::sanitize(&instance.id),
            login.user,
            login.source.label()
        );
        let result = connector.connect(&instance, &[], &mut self.signals).await;
        if let Ok(done) = &result {
            let pushed = connector.pushes_key(&instance);
            self.app.evidence.connected(&instance, pushed, done.code);
        }
        // Ctrl-C during the session was the remote side's, not ours.
        while self.signals.pending().is_some() {}
        if let Err(e) = &result {
            crate::error::report(e);
        }
        if self.opts.once {
            return result.map(|done| {
                if let Some(hint) = done.hint() {
                    eprintln!("ec2ssh: {hint}");
                }
                Some(Outcome::Connected(done.code))
            });
        }
        let rules = connector.rules.clone();
        self.take_terminal_back()?;
        self.app.login = Some(rules);
        self.app.notice = Some(outcome_notice(
            result.map(|done| match done.hint() {
                Some(hint) => format!("{} · {hint} · F2 diagnoses", done.summary(&name)),
                None => done.summary(&name),
            }),
            &name,
        )?);
        Ok(None)
    }

    /// Ctrl-o: a Session Manager shell on the row, the terminal its until it closes.
    async fn shell(&mut self, id: String) -> Result<Option<Outcome>, AppError> {
        let Some((instance, name)) = reachable(&mut self.app, &id, "open a shell", false) else {
            return Ok(None);
        };
        self.events = None;
        self.guard.suspend();
        eprintln!(
            "ec2ssh: opening a Session Manager shell on {name} ({})",
            crate::text::sanitize(&instance.id)
        );
        let result = crate::shell::run(&self.ctx, &instance, None, &mut self.signals).await;
        if result.is_ok() {
            self.app.evidence.shell_opened(&instance);
        }
        if let Err(e) = &result {
            crate::error::report(e);
        }
        if self.opts.once {
            return result.map(|done| Some(Outcome::Connected(done.code)));
        }
        self.take_terminal_back()?;
        self.app.notice = Some(outcome_notice(
            result.map(|done| done.summary(&name)),
            &name,
        )?);
        Ok(None)
    }

    /// After ssh or a shell: the picker's screen and keyboard again.
    fn take_terminal_back(&mut self) -> Result<(), AppError> {
        self.guard.resume().map_err(io_error)?;
        self.events = Some(EventStream::new());
        Ok(())
    }

    /// F2: the diagnosis of a row, gathered in the background, with what this run
    /// already proved.
    fn diagnose(&mut self, id: String) {
        let (ctx, tx) = (self.ctx.clone(), self.tx.clone());
        let name = self
            .app
            .instances
            .iter()
            .find(|i| i.id == id)
            .map(|i| match i.display_name() {
                "" => i.id.clone(),
                n => crate::text::sanitize(n).into_owned(),
            })
            .unwrap_or_else(|| id.clone());
        let evidence = self.app.evidence.clone();
        tokio::spawn(async move {
            let checks = crate::doctor::diagnose(&ctx, Some(&id), &evidence).await;
            let _ = tx.send(Action::Diagnosed(name, checks));
        });
    }

    /// The push dialog's job, to the marked rows, in the background.
    fn start_push(&mut self, hosts: Vec<fleet::Instance>, job: push::Job) {
        match transfer::local_size(&job.sources, job.recursive) {
            Err(e) => self
                .app
                .push_refused(format!("cannot read {}: {e}", job.sources.join(" "))),
            Ok(total) => {
                let Some(connector) = self.connector.clone() else {
                    return;
                };
                self.app.start_transfers(&hosts, total, job.clone());
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
                    parallel: self.opts.parallel.max(1),
                    mkdir: job.mkdir,
                };
                self.pushing = Some(Pushing::start(connector, hosts, req, &self.tx));
            }
        }
    }
}

/// The next terminal event; never, while the terminal is handed over.
async fn next_event(events: &mut Option<EventStream>) -> Option<Result<Event, std::io::Error>> {
    match events {
        Some(e) => e.next().await,
        None => std::future::pending().await,
    }
}

/// The instance `id` and its display name, if ssh (any path, with `ssh`) or a shell
/// (Session Manager only) can reach it; else the status line says why (and how to
/// find out more) and there is nothing to do.
fn reachable(app: &mut App, id: &str, doing: &str, ssh: bool) -> Option<(fleet::Instance, String)> {
    let instance = app.instances.iter().find(|i| i.id == id).cloned()?;
    let name = match instance.display_name() {
        "" => crate::text::sanitize(&instance.id).into_owned(),
        n => crate::text::sanitize(n).into_owned(),
    };
    if ssh {
        if let fleet::Reach::None(why) = fleet::reach::reach(&instance, app.via) {
            app.notice = Some(format!(
                "{name}: no path: {}; cannot {doing} · F2 diagnoses",
                crate::text::sanitize(&why)
            ));
            return None;
        }
    } else if instance.ping != fleet::Ping::Online {
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
                crate::connect::many::copy_many(&connector, &hosts, &req, utx, cancelled).await;
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
