//! A native Session Manager shell (`ec2ssh shell`, the picker's Ctrl-o): StartSession
//! with the account's shell document, the terminal in raw mode bridged to the data
//! channel (window sizes on start and on SIGWINCH), and the session terminated and the
//! terminal restored on every way out. No ssh, no key push: what accounts that require
//! audited Session Manager shells allow, and it serves Windows (PowerShell) alike.

use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::{mpsc, Notify};

use crate::aws::AwsContext;
use crate::error::AppError;
use crate::fleet::Instance;
use crate::session::api::{Session, SessionApi, Started};
use crate::session::codec::MAX_STREAM_PAYLOAD;
use crate::session::driver::{self, Dial, DriverConfig, Finish, Input, Notice, TunnelError};
use crate::signals::{self, Signals};
use crate::tui::terminal::RawMode;

/// How often the stdin reader looks whether it should stop.
const STDIN_POLL: Duration = Duration::from_millis(50);
/// Ctrl-C as the raw terminal delivers it.
const CTRL_C: u8 = 0x03;

/// How a shell session ended.
#[derive(Debug, Clone)]
pub struct ShellFinished {
    /// 0, or the `EXIT_CODE: n` a NonInteractiveCommands document reported.
    pub code: i32,
    pub elapsed: Duration,
    pub instance: String,
}

impl ShellFinished {
    /// `web-1: shell closed after 12.0s`.
    pub fn summary(&self, name: &str) -> String {
        format!(
            "{name}: shell closed after {}",
            crate::text::human_duration(self.elapsed)
        )
    }
}

/// Opens a shell on `instance` (which must be Online) with `document`, or the
/// account's default shell document, and bridges the terminal to it until the
/// session closes. The session is terminated on every exit the service did not cause;
/// SIGINT/SIGTERM/SIGHUP from outside end it (Ctrl-C typed in the shell is a byte for
/// the remote side, not a signal).
pub async fn run(
    ctx: &AwsContext,
    instance: &Instance,
    document: Option<&str>,
    signals: &mut Signals,
) -> Result<ShellFinished, AppError> {
    if !std::io::stdin().is_terminal() {
        return Err(AppError::other(
            "`ec2ssh shell` needs an interactive terminal on stdin",
            "run it in a terminal; to run commands from a script use `ec2ssh ssh TARGET -- COMMAND`",
        ));
    }
    let api = SessionApi::new(
        ctx.for_instance(instance)?.ssm(&instance.region),
        &instance.region,
    );
    let started = api.start_shell(&instance.id, document).await?;
    tracing::info!(session = %started.session_id, instance = %instance.id, "shell session started");
    let session = Session {
        api: &api,
        id: started.session_id.clone(),
    };
    let begun = Instant::now();
    // A signal during StartSession is acted on here, after the session exists, so
    // that it is terminated too.
    let outcome = match signals.pending() {
        Some(n) => Err(Failure::App(signals::as_error(n))),
        None => bridge(&started, &session, signals).await,
    };
    if !matches!(outcome, Ok((Finish::Closed { .. }, _))) {
        session.terminate().await;
    }
    let (finish, code) = outcome.map_err(|e| match e {
        Failure::Tunnel(e) => shell_error(e, instance),
        Failure::App(e) => e,
    })?;
    if let Finish::Closed { reason } = &finish {
        if !reason.trim().is_empty() {
            eprintln!(
                "ec2ssh: session closed: {}",
                crate::text::sanitize(reason.trim())
            );
        }
    }
    Ok(ShellFinished {
        code: code.unwrap_or(0),
        elapsed: begun.elapsed(),
        instance: instance.id.clone(),
    })
}

enum Failure {
    Tunnel(TunnelError),
    App(AppError),
}

/// Raw mode, stdin and window sizes in, the session's output to stdout. Returns how
/// the driver finished and the exit code the agent reported, if any. The terminal is
/// restored and the stdin reader stopped before this returns.
async fn bridge(
    started: &Started,
    session: &Session<'_>,
    signals: &mut Signals,
) -> Result<(Finish, Option<i32>), Failure> {
    let raw = RawMode::enter().map_err(|e| {
        Failure::App(AppError::other(
            format!("cannot put the terminal into raw mode: {e}"),
            "run ec2ssh in an interactive terminal",
        ))
    })?;
    let (tx, rx) = mpsc::channel::<Input>(16);
    let (cols, rows) = window_size();
    let _ = tx.try_send(Input::Size { cols, rows });
    // Sizes must not keep the input open: the stdin reader owns the only strong sender.
    let sizes = tx.downgrade();
    // Until the agent answers, Ctrl-C (a byte in raw mode) gives up instead of going
    // to a remote shell that does not exist yet.
    let gate = Arc::new(Gate::default());
    // Declared before the driver so that it is dropped after it: its thread may wait
    // on a full channel until the driver's receiver goes away.
    let reader = StdinReader::spawn(tx, gate.clone());
    let (notice_tx, mut notice_rx) = mpsc::unbounded_channel();
    let mut code = None;
    let mut winch = signal(SignalKind::window_change())
        .inspect_err(|e| tracing::warn!(error = %e, "cannot watch window size changes"))
        .ok();
    let dial = Dial {
        stream_url: started.stream_url.clone(),
        token: started.token.clone(),
    };
    let config = DriverConfig::shell();
    let result = {
        let driver = driver::run(
            dial,
            rx,
            tokio::io::stdout(),
            Some(notice_tx),
            session,
            &config,
        );
        tokio::pin!(driver);
        loop {
            tokio::select! {
                r = &mut driver => break r.map_err(Failure::Tunnel),
                n = signals.recv() => break Err(Failure::App(signals::as_error(n))),
                () = gate.interrupted.notified() => break Err(Failure::App(AppError::Interrupted)),
                Some(notice) = notice_rx.recv() => match notice {
                    Notice::Established { .. } => gate.established.store(true, Ordering::SeqCst),
                    Notice::ExitCode(text) => code = parse_exit_code(&text).or(code),
                    Notice::Flag(_) => {}
                },
                Some(()) = next_winch(&mut winch) => {
                    if let Some(tx) = sizes.upgrade() {
                        let (cols, rows) = window_size();
                        // Never wait here: the driver that empties the channel runs in
                        // this loop.
                        if let Err(mpsc::error::TrySendError::Full(size)) = tx.try_send(Input::Size { cols, rows }) {
                            tokio::spawn(async move { let _ = tx.send(size).await; });
                        }
                    }
                }
            }
        }
    };
    drop(reader);
    drop(raw);
    while let Ok(notice) = notice_rx.try_recv() {
        if let Notice::ExitCode(text) = notice {
            code = parse_exit_code(&text).or(code);
        }
    }
    result.map(|finish| (finish, code))
}

async fn next_winch(winch: &mut Option<Signal>) -> Option<()> {
    match winch {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

/// The terminal's size; the reference plugin's 300×100 when it cannot be read.
fn window_size() -> (u32, u32) {
    match crossterm::terminal::size() {
        Ok((cols, rows)) if cols > 0 && rows > 0 => (cols.into(), rows.into()),
        _ => (300, 100),
    }
}

/// `EXIT_CODE: 3` → 3.
fn parse_exit_code(text: &str) -> Option<i32> {
    text.trim().strip_prefix("EXIT_CODE:")?.trim().parse().ok()
}

/// What the user sees when the driver fails; KMS-encrypted sessions get their own
/// explanation, since the fix is a setting of the account, not the instance.
fn shell_error(e: TunnelError, instance: &Instance) -> AppError {
    match &e {
        TunnelError::Handshake(why) if why.contains("KMSEncryption") => AppError::other(
            format!(
                "Session Manager preferences: KMS encryption is enabled for this account/region ({}); ec2ssh does not support KMS-encrypted shell sessions yet",
                instance.region
            ),
            format!(
                "use `ec2ssh ssh {id}` (its port sessions are never KMS-encrypted), or Amazon's plugin: `aws ssm start-session --target {id}`",
                id = instance.id
            ),
        ),
        _ => crate::commands::proxy::tunnel_error(e, &instance.id),
    }
}

/// Reads stdin on a plain thread in chunks of at most one payload, polling so that it
/// can be stopped: a reader left blocked would steal the next key from the picker.
struct StdinReader {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Between the stdin reader and the bridge: whether the session is established, and
/// Ctrl-C typed before it was.
#[derive(Default)]
struct Gate {
    established: AtomicBool,
    interrupted: Notify,
}

impl Gate {
    /// Whether `bytes` read from the terminal mean "give up" rather than input.
    fn gives_up(&self, bytes: &[u8]) -> bool {
        !self.established.load(Ordering::SeqCst) && bytes.contains(&CTRL_C)
    }
}

impl StdinReader {
    fn spawn(tx: mpsc::Sender<Input>, gate: Arc<Gate>) -> StdinReader {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || read_stdin(&tx, &flag, &gate));
        StdinReader {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for StdinReader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn read_stdin(tx: &mpsc::Sender<Input>, stop: &AtomicBool, gate: &Gate) {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    use rustix::io::Errno;
    let stdin = std::io::stdin();
    let fd = stdin.as_fd();
    let mut buf = vec![0u8; MAX_STREAM_PAYLOAD];
    let tick = Timespec {
        tv_sec: 0,
        tv_nsec: STDIN_POLL.as_nanos() as _,
    };
    while !stop.load(Ordering::SeqCst) {
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        match poll(&mut fds, Some(&tick)) {
            Ok(0) | Err(Errno::INTR) => continue,
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(error = %e, "stdin: poll failed");
                break;
            }
        }
        match rustix::io::read(fd, &mut buf) {
            Ok(0) => {
                tracing::debug!("stdin: end of file");
                break;
            }
            Ok(n) if gate.gives_up(&buf[..n]) => {
                gate.interrupted.notify_one();
                break;
            }
            Ok(n) => {
                if tx.blocking_send(Input::Data(buf[..n].to_vec())).is_err() {
                    break;
                }
            }
            Err(Errno::INTR | Errno::AGAIN) => continue,
            Err(e) => {
                tracing::debug!(error = %e, "stdin: read failed");
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_read_from_the_agents_text() {
        assert_eq!(parse_exit_code("EXIT_CODE: 3"), Some(3));
        assert_eq!(parse_exit_code("EXIT_CODE:0\n"), Some(0));
        assert_eq!(parse_exit_code("exit 3"), None);
        assert_eq!(parse_exit_code("EXIT_CODE: x"), None);
    }

    #[test]
    fn a_kms_handshake_failure_names_the_setting_and_the_alternatives() {
        let instance = Instance {
            id: "i-0123456789abcdef0".into(),
            region: "eu-west-1".into(),
            ..Default::default()
        };
        let e = shell_error(
            TunnelError::Handshake("KMSEncryption is not supported by ec2ssh".into()),
            &instance,
        );
        let (what, fix) = e.explain().remove(0);
        assert!(what.contains("KMS encryption is enabled"), "{what}");
        assert!(what.contains("eu-west-1"), "{what}");
        let fix = fix.unwrap();
        assert!(fix.contains("ec2ssh ssh i-0123456789abcdef0"), "{fix}");
        // Other handshake failures keep the agent advice.
        let e = shell_error(TunnelError::Handshake("odd".into()), &instance);
        assert!(e.explain()[0].1.as_deref().unwrap().contains("SSM agent"));
    }

    #[test]
    fn ctrl_c_gives_up_only_until_the_session_is_established() {
        let gate = Gate::default();
        assert!(gate.gives_up(b"\x03"));
        assert!(gate.gives_up(b"ls\x03"));
        assert!(!gate.gives_up(b"ls\r"));
        gate.established.store(true, Ordering::SeqCst);
        assert!(!gate.gives_up(b"\x03"), "then it is the remote shell's");
    }

    #[test]
    fn shells_wait_for_the_agent_without_a_deadline() {
        let config = DriverConfig::shell();
        assert_eq!(config.handshake_timeout, None);
        assert!(config.waiting_notice.is_some());
    }

    #[test]
    fn the_summary_says_how_long_the_shell_lasted() {
        let done = ShellFinished {
            code: 0,
            elapsed: Duration::from_secs(12),
            instance: "i-1".into(),
        };
        assert_eq!(done.summary("web-1"), "web-1: shell closed after 12.0s");
    }
}
