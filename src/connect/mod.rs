//! Connecting to an instance: resolve the login user, make a one-time key, push it
//! with EC2 Instance Connect, and run the system's OpenSSH `ssh` with `ec2ssh proxy`
//! as its ProxyCommand, host keys pinned per instance id in ec2ssh's own known_hosts.
//! The key's directory is removed when the connection ends, however it ends.

pub mod key;
pub mod push;
pub mod ssh;
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
            format!(
                "ssh could not log in to {} as {} ({}). Likely causes: the wrong OS user (pass --user, or tag the instance ec2ssh:user=NAME), the instance lacks the ec2-instance-connect package (Amazon Linux 2+ and Ubuntu 20.04+ have it), or a changed host key (`ec2ssh forget {}`).",
                self.instance,
                self.user.user,
                self.user.source.label(),
                self.instance
            )
        })
    }

    /// `web-1: ssh exited 0 after 3m12s`.
    pub fn summary(&self, name: &str) -> String {
        let secs = self.elapsed.as_secs();
        let took = if secs >= 60 {
            format!("{}m{:02}s", secs / 60, secs % 60)
        } else {
            format!("{:.1}s", self.elapsed.as_secs_f64())
        };
        format!("{name}: ssh exited {} after {took}", self.code)
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

    pub fn user_for(&self, instance: &Instance) -> Resolved {
        self.rules.resolve(instance)
    }

    fn known_hosts(&self) -> Result<PathBuf, AppError> {
        let paths = self.paths.as_ref().ok_or_else(no_home)?;
        create_private_dir(&paths.data_dir)?;
        Ok(paths.known_hosts())
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
        let user = self.user_for(instance);
        let key = match &self.key {
            Some(path) => ConnectionKey::existing(path),
            None => {
                let base =
                    key::base_dir(self.paths.as_ref().and_then(|p| p.runtime_dir.as_deref()));
                ConnectionKey::ephemeral(&base, &format!("ec2ssh {}", instance.id))
            }
        }
        .map_err(|e| {
            AppError::other(
                e.to_string(),
                "check the permissions of the directory named above",
            )
        })?;
        if instance.is_hybrid() && !key.is_ephemeral() {
            // Instance Connect cannot serve hybrid nodes; the user's own key must
            // already be trusted there.
            tracing::info!(instance = %instance.id, "hybrid node: using --key without a push");
        } else {
            push::push(&self.ctx, instance, &user.user, &key.public).await?;
        }
        let known_hosts = self.known_hosts()?;
        let exe = std::env::current_exe().map_err(|e| {
            AppError::other(
                format!("cannot find the ec2ssh executable: {e}"),
                "run ec2ssh by its full path",
            )
        })?;
        let spec = ssh::SshSpec {
            program: &self.ssh_program,
            key: &key.private,
            user: &user.user,
            instance: &instance.id,
            region: &instance.region,
            profile: self.ctx.profile.as_deref(),
            known_hosts: &known_hosts,
            exe: &exe,
            options: &self.ssh_options,
            command,
        };
        tracing::info!(instance = %instance.id, user = %user.user, "running ssh");
        let started = Instant::now();
        let mut cmd = tokio::process::Command::new(spec.program);
        for (k, v) in &self.child_env {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        let mut child = cmd
            .args(ssh::args(&spec))
            .stdin(Stdio::inherit())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
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
        use std::os::unix::process::ExitStatusExt;
        let code = status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
        if code != 255 {
            self.rules.remembered.remember(&instance.id, &user.user);
        }
        drop(key);
        Ok(Finished {
            code,
            elapsed: started.elapsed(),
            user,
            instance: instance.id.clone(),
        })
    }
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
