//! Connecting to an instance: resolve the login user, make a one-time key, push it
//! with EC2 Instance Connect, and run the system's OpenSSH `ssh` with `ec2ssh proxy`
//! as its ProxyCommand, host keys pinned per instance id in ec2ssh's own known_hosts.
//! The key's directory is removed when the connection ends, however it ends.

pub mod copy;
pub mod key;
pub mod push;
pub mod shell;
pub mod ssh;
pub mod ssh_escape;
pub mod user;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::aws::AwsContext;
use crate::config::{Config, Paths};
use crate::error::AppError;
use crate::fleet::Instance;
use crate::signals::{self, Signals};
use key::ConnectionKey;
use user::{Remembered, Resolved, UserRules};

/// How one ssh run ended.
#[derive(Debug, Clone)]
pub struct Finished {
    /// ssh's exit code (128 + n if it died of signal n).
    pub code: i32,
    pub elapsed: Duration,
    pub user: Resolved,
    pub instance: String,
}

impl Finished {
    /// What to tell the user when ssh failed to connect or log in (it exits 255).
    pub fn hint(&self) -> Option<String> {
        (self.code == 255).then(|| {
            let instance = crate::text::sanitize(&self.instance);
            format!(
                "ssh could not log in to {} as {} ({}). Likely causes: the wrong OS user (pass --user, or tag the instance ec2ssh:user=NAME), the instance lacks the ec2-instance-connect package (Amazon Linux 2+ and Ubuntu 20.04+ have it), or a changed host key (`ec2ssh forget {}`).",
                instance,
                self.user.user,
                self.user.source.label(),
                instance
            )
        })
    }

    /// `web-1: ssh exited 0 after 3m12s`.
    pub fn summary(&self, name: &str) -> String {
        format!(
            "{name}: ssh exited {} after {}",
            self.code,
            crate::text::human_duration(self.elapsed)
        )
    }
}

/// What connecting needs, shared by the picker and `ec2ssh ssh`.
#[derive(Debug, Clone)]
pub struct Connector {
    pub ctx: AwsContext,
    pub paths: Option<Paths>,
    /// How the login user is chosen.
    pub rules: UserRules,
    /// `--key PATH`: the user's own key instead of a one-time one.
    pub key: Option<PathBuf>,
    /// Extra ssh options, before the destination.
    pub ssh_options: Vec<String>,
    pub ssh_program: PathBuf,
    /// Environment changes for ssh and so for the proxy it runs (`None` removes).
    pub child_env: Vec<(String, Option<String>)>,
}

impl Connector {
    pub fn new(ctx: AwsContext, config: &Config, paths: Option<Paths>) -> Self {
        let remembered = Remembered::load(paths.as_ref().map(|p| p.state_dir.as_path()));
        Connector {
            ctx,
            paths,
            rules: UserRules {
                explicit: None,
                config: config.users.clone(),
                remembered,
            },
            key: None,
            ssh_options: Vec::new(),
            ssh_program: ssh::default_program(),
            child_env: Vec::new(),
        }
    }

    /// `--user`/`user@` and `--key` from the command line; a malformed login is
    /// refused before anything is sent.
    pub fn set_login(
        &mut self,
        user: Option<String>,
        key: Option<PathBuf>,
    ) -> Result<(), AppError> {
        if let Some(u) = &user {
            if !crate::names::valid_login(u) {
                return Err(AppError::other(
                    format!("{:?} is not a valid login name", crate::text::sanitize(u)),
                    "use letters, digits, '.', '_', '-' (e.g. ec2-user)",
                ));
            }
        }
        if user.is_some() {
            self.rules.explicit = user;
        }
        self.key = key;
        Ok(())
    }

    /// Whether connecting pushes a key with Instance Connect: always, except the
    /// user's own key (`--key`) to a hybrid node, which Instance Connect cannot serve
    /// (the key must already be trusted there).
    pub fn pushes_key(&self, instance: &Instance) -> bool {
        !(instance.is_hybrid() && self.key.is_some())
    }

    pub fn user_for(&self, instance: &Instance) -> Resolved {
        self.rules.resolve(instance)
    }

    fn known_hosts(&self) -> Result<PathBuf, AppError> {
        let paths = self.paths.as_ref().ok_or_else(no_home)?;
        create_private_dir(&paths.data_dir)?;
        Ok(paths.known_hosts())
    }

    /// Resolves the login, makes (or loads) the key and pushes it: what every ssh or
    /// scp run needs first.
    async fn prepare(&self, instance: &Instance) -> Result<Prepared, AppError> {
        let user = self.user_for(instance);
        let key = match &self.key {
            Some(path) => ConnectionKey::existing(path),
            None => {
                let base =
                    key::base_dir(self.paths.as_ref().and_then(|p| p.runtime_dir.as_deref()));
                ConnectionKey::ephemeral(&base, &format!("ec2ssh {}", instance.id))
            }
        }
        .map_err(|e| AppError::other(e.to_string(), e.fix()))?;
        if self.pushes_key(instance) {
            push::push(&self.ctx, instance, &user.user, &key.public).await?;
        } else {
            tracing::info!(instance = %instance.id, "hybrid node: using --key without a push");
        }
        let known_hosts = self.known_hosts()?;
        let exe = std::env::current_exe().map_err(|e| {
            AppError::other(
                format!("cannot find the ec2ssh executable: {e}"),
                "run ec2ssh by its full path",
            )
        })?;
        Ok(Prepared {
            user,
            key,
            known_hosts,
            exe,
        })
    }

    fn command(&self, program: &std::path::Path) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(program);
        for (k, v) in &self.child_env {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        cmd.kill_on_drop(true);
        cmd
    }

    /// Pushes a key and runs ssh to `instance` with the terminal handed over, until
    /// ssh exits. SIGINT goes to ssh (the terminal's foreground); SIGTERM/SIGHUP end
    /// ssh and are returned as errors, after cleanup.
    pub async fn connect(
        &mut self,
        instance: &Instance,
        command: &[String],
        signals: &mut Signals,
    ) -> Result<Finished, AppError> {
        let p = self.prepare(instance).await?;
        let spec = p.spec(self, instance, &self.ssh_program, command, None);
        tracing::info!(instance = %instance.id, user = %p.user.user, "running ssh");
        let started = Instant::now();
        let mut child = self
            .command(spec.program)
            .args(ssh::args(&spec).map_err(ssh::unusable)?)
            .stdin(Stdio::inherit())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| {
                AppError::other(
                    format!("cannot run {}: {e}", spec.program.display()),
                    "install OpenSSH's client (Debian/Ubuntu: apt install openssh-client)",
                )
            })?;
        let status = loop {
            tokio::select! {
                status = child.wait() => break status,
                n = signals.recv() => {
                    // Ctrl-C belongs to ssh and the remote side; other signals end us.
                    if n != 2 {
                        let _ = child.kill().await;
                        return Err(signals::as_error(n));
                    }
                }
            }
        }
        .map_err(|e| AppError::other(format!("ssh failed: {e}"), "run again with -v"))?;
        let code = exit_code(status);
        if code != 255 {
            self.rules.remembered.remember(&instance.id, &p.user.user);
        }
        Ok(Finished {
            code,
            elapsed: started.elapsed(),
            user: p.user,
            instance: instance.id.clone(),
        })
    }

    /// Pushes a key and runs scp for `spec` to or from `instance` (a pull into
    /// `local_dest` when given); with `mkdir`, a push first creates the remote
    /// directory it copies into. `bytes` hears the (up, down) totals the tunnel
    /// carried; when `cancel` turns true scp is ended (it ends its ssh, ssh its
    /// proxy, the proxy its session) and the result is `Interrupted`.
    #[allow(clippy::too_many_arguments)]
    pub async fn copy(
        &self,
        instance: &Instance,
        flags: &[&str],
        spec: &crate::transfer::CopySpec,
        local_dest: Option<&str>,
        mkdir: bool,
        bytes: impl Fn(u64, u64),
        mut cancel: tokio::sync::watch::Receiver<bool>,
    ) -> Result<Copied, copy::CopyError> {
        let pushing = spec.direction == crate::transfer::Direction::Push;
        let create = if mkdir && pushing {
            copy::dir_to_create(&spec.dest, spec.sources.len())
                .map_err(|e| AppError::other(e.to_string(), "create it first with `ec2ssh ssh`"))?
        } else {
            None
        };
        let p = self.prepare(instance).await?;
        if let Some(dir) = create {
            // Cancelled meanwhile: dropping the future kills sftp (kill_on_drop).
            tokio::select! {
                made = self.make_dir(instance, &p, &dir) => made?,
                Ok(_) = cancel.wait_for(|c| *c) => return Err(AppError::Interrupted.into()),
            }
        }
        let dir = key::private_dir(
            &key::base_dir(self.paths.as_ref().and_then(|p| p.runtime_dir.as_deref())),
            "xfer-",
        )
        .map_err(|e| AppError::other(e.to_string(), e.fix()))?;
        let listener = crate::transfer::progress::Listener::bind(dir.path()).map_err(|e| {
            AppError::other(
                format!(
                    "cannot listen for progress in {}: {e}",
                    dir.path().display()
                ),
                "check the permissions of the directory named above",
            )
        })?;
        let scp = sibling_program(&self.ssh_program, "scp");
        let ssh = p.spec(self, instance, &scp, &[], Some(&listener.path));
        let operands = spec.operands(&p.user.user, &instance.id, local_dest);
        tracing::info!(instance = %instance.id, user = %p.user.user, ?operands, "running scp");
        let started = Instant::now();
        let args = ssh::scp_args(&ssh, flags, &operands).map_err(ssh::unusable)?;
        let mut child = self.spawn_quiet(&scp, args, Stdio::null())?;
        let stderr = child
            .stderr
            .take()
            .map(|e| tokio::spawn(copy::last_lines(e)));
        let mut carried = (0u64, 0u64);
        let mut proxy_done = false;
        let cancelled = async {
            // A dropped sender is no cancellation: wait for ever.
            if cancel.wait_for(|c| *c).await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        tokio::pin!(cancelled);
        let status = loop {
            tokio::select! {
                status = child.wait() => break status,
                Some(r) = listener.next() => {
                    carried = (r.up, r.down);
                    proxy_done = r.last;
                    bytes(r.up, r.down);
                }
                _ = &mut cancelled => {
                    copy::terminate(&mut child).await;
                    return Err(AppError::Interrupted.into());
                }
            }
        }
        .map_err(|e| AppError::other(format!("scp failed: {e}"), "run again with -v"))?;
        // ssh hangs up on the proxy as it exits; the proxy's final count follows.
        while !proxy_done {
            match tokio::time::timeout(PROXY_LINGER, listener.next()).await {
                Ok(Some(r)) => {
                    carried = (r.up, r.down);
                    proxy_done = r.last;
                    bytes(r.up, r.down);
                }
                _ => break,
            }
        }
        let lines = match stderr {
            Some(task) => task.await.unwrap_or_default(),
            None => Vec::new(),
        };
        let code = exit_code(status);
        if code != 0 {
            return Err(copy::explain(&lines, code, &instance.id, &p.user, pushing));
        }
        Ok(Copied {
            user: p.user.user,
            elapsed: started.elapsed(),
            up: carried.0,
            down: carried.1,
        })
    }

    /// Starts scp or sftp with no terminal: stdout discarded, stderr piped (the reason
    /// of a failure is in its last lines).
    fn spawn_quiet(
        &self,
        program: &std::path::Path,
        args: Vec<std::ffi::OsString>,
        stdin: Stdio,
    ) -> Result<tokio::process::Child, AppError> {
        self.command(program)
            .args(args)
            .stdin(stdin)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                AppError::other(
                    format!("cannot run {}: {e}", program.display()),
                    "install OpenSSH's client (Debian/Ubuntu: apt install openssh-client)",
                )
            })
    }

    /// Creates `dir` (and its parents) on `instance` with `sftp -b -`, over the same
    /// key and tunnel scp uses: no remote shell is involved (see `copy::mkdir_batch`).
    async fn make_dir(&self, instance: &Instance, p: &Prepared, dir: &str) -> Result<(), AppError> {
        let batch = copy::mkdir_batch(dir)
            .map_err(|e| AppError::other(e.to_string(), "create it first with `ec2ssh ssh`"))?;
        let sftp = sibling_program(&self.ssh_program, "sftp");
        let ssh = p.spec(self, instance, &sftp, &[], None);
        let dest = [format!("{}@{}", p.user.user, instance.id)];
        tracing::info!(instance = %instance.id, dir, "creating the destination directory");
        let mut child = self.spawn_quiet(
            &sftp,
            ssh::scp_args(&ssh, &["-b", "-"], &dest).map_err(ssh::unusable)?,
            Stdio::piped(),
        )?;
        if let Some(mut stdin) = child.stdin.take() {
            use tokio::io::AsyncWriteExt;
            // sftp reads the whole batch; a write error shows as its failure below.
            let _ = stdin.write_all(batch.as_bytes()).await;
        }
        let lines = match child.stderr.take() {
            Some(e) => copy::last_lines(e).await,
            None => Vec::new(),
        };
        let status = child
            .wait()
            .await
            .map_err(|e| AppError::other(format!("sftp failed: {e}"), "run again with -v"))?;
        match exit_code(status) {
            0 => Ok(()),
            code => {
                // Not the directory but the connection: say that, as for scp.
                let failure = copy::classify(&lines);
                if matches!(
                    failure,
                    copy::Failure::Proxy { .. }
                        | copy::Failure::KeyRefused
                        | copy::Failure::HostKeyChanged
                ) {
                    return Err(copy::explain(&lines, code, &instance.id, &p.user, true).error);
                }
                Err(copy::explain_mkdir(&lines, dir, &instance.id, &p.user.user))
            }
        }
    }
}

/// How long after scp exits its proxy may take to send the final byte count.
const PROXY_LINGER: Duration = Duration::from_secs(2);

/// What a run needs after `prepare`; dropping it removes a one-time key.
struct Prepared {
    user: Resolved,
    key: ConnectionKey,
    known_hosts: PathBuf,
    exe: PathBuf,
}

impl Prepared {
    fn spec<'a>(
        &'a self,
        c: &'a Connector,
        instance: &'a Instance,
        program: &'a std::path::Path,
        command: &'a [String],
        progress: Option<&'a std::path::Path>,
    ) -> ssh::SshSpec<'a> {
        ssh::SshSpec {
            program,
            key: &self.key.private,
            user: &self.user.user,
            instance: &instance.id,
            region: &instance.region,
            // The row's profile (none: the standard chain, which the proxy inherits).
            profile: instance.profile.as_deref(),
            known_hosts: &self.known_hosts,
            exe: &self.exe,
            options: &c.ssh_options,
            command,
            progress,
        }
    }
}

/// A finished copy to or from one host.
#[derive(Debug, Clone)]
pub struct Copied {
    pub user: String,
    pub elapsed: Duration,
    /// Bytes the tunnel carried each way (ssh's framing included).
    pub up: u64,
    pub down: u64,
}

/// `scp` or `sftp` next to the configured ssh (`/opt/ssh/bin/ssh` →
/// `/opt/ssh/bin/scp`), else that name from PATH.
fn sibling_program(ssh: &std::path::Path, name: &str) -> PathBuf {
    match ssh.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(name),
        _ => PathBuf::from(name),
    }
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

fn no_home() -> AppError {
    AppError::other(
        "cannot find a home directory for ec2ssh's known_hosts",
        "set HOME (or XDG_DATA_HOME)",
    )
}

/// Creates `dir` (and parents) with mode 0700 when missing.
pub fn create_private_dir(dir: &std::path::Path) -> Result<(), AppError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| {
            AppError::other(
                format!("cannot create {}: {e}", dir.display()),
                "check the permissions of its parent directory",
            )
        })
}
