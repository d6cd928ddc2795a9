//! `ec2ssh proxy TARGET PORT`: an OpenSSH ProxyCommand. Starts an `AWS-StartSSHSession`
//! session and bridges stdin/stdout to it byte-exactly, with ec2ssh's own data-channel
//! client or, on request, Amazon's session-manager-plugin. Whatever happens, the
//! session is terminated before the process exits.

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::aws::AwsContext;
use crate::cli::ProxyArgs;
use crate::config::Transport;
use crate::error::AppError;
use crate::session::api::{Session, SessionApi, Started, SSH_DOCUMENT};
use crate::session::driver::{self, Dial, DriverConfig, Finish, Input, TunnelError};
use crate::signals::{self, Signals};
use crate::transfer::progress::{self, Counters, CountingWriter};

/// `cache`: the fleet last listed for this run's profiles, where the id's owner is
/// looked up first (see [`crate::fleet::owner`]).
pub async fn run(
    ctx: &AwsContext,
    cache: Option<&crate::fleet::Cache>,
    args: &ProxyArgs,
    transport: Transport,
) -> Result<u8, AppError> {
    // Before anything else, so that a signal can never skip the cleanup below.
    let mut signals = Signals::install();
    let counters = Counters::default();
    let result = run_proxy(ctx, cache, args, transport, &mut signals, &counters).await;
    if let Some(path) = &args.progress {
        progress::report_final(path, &counters).await;
    }
    result
}

async fn run_proxy(
    ctx: &AwsContext,
    cache: Option<&crate::fleet::Cache>,
    args: &ProxyArgs,
    transport: Transport,
    signals: &mut Signals,
    counters: &Counters,
) -> Result<u8, AppError> {
    let target = validate_target(&args.target)?;
    // The profile and region that own the id act from here on.
    let owner = crate::fleet::owner::locate(ctx, cache, target).await?;
    let ctx = &owner;
    let region = ctx.regions[0].clone();
    let api = SessionApi::new(ctx.ssm(&region), &region);
    // Before any session exists: a plugin that cannot be used is an error, not a
    // downgrade to passing the token where `ps` shows it.
    let plugin = match transport {
        Transport::Plugin => Some(Plugin::probe(find_plugin()?).await?),
        Transport::Native => None,
    };

    if let Some(user) = &args.push_key {
        push_managed_key(ctx, target, &region, user).await?;
    }
    let started = api.start_ssh(target, args.port).await?;
    tracing::info!(session = %started.session_id, %region, "session started");
    let session = Session {
        api: &api,
        id: started.session_id.clone(),
    };

    // From here on every path ends with the session terminated. StartSession itself is
    // never cancelled half-way: a signal during it is acted on here.
    let outcome = match signals.pending() {
        Some(n) => Err(signals::as_error(n)),
        None => tokio::select! {
            r = tunnel(&session, &started, args, plugin, ctx, counters) => r,
            n = signals.recv() => Err(signals::as_error(n)),
        },
    };
    let closed_by_service = matches!(outcome, Ok(Finish::Closed { .. }));
    if !closed_by_service {
        session.terminate().await;
    }
    match outcome {
        Ok(Finish::Closed { reason }) => {
            if !reason.is_empty() {
                tracing::info!(%reason, "session closed by the service");
            }
            Ok(0)
        }
        Ok(Finish::InputDone { drained, .. }) => {
            if !drained {
                eprintln!("ec2ssh: warning: the instance did not acknowledge the last bytes before the session ended");
            }
            Ok(0)
        }
        Ok(Finish::OutputClosed) => Ok(0),
        Err(e) => Err(e),
    }
}

async fn tunnel(
    session: &Session<'_>,
    started: &Started,
    args: &ProxyArgs,
    plugin: Option<Plugin>,
    ctx: &AwsContext,
    counters: &Counters,
) -> Result<Finish, AppError> {
    if let Some(plugin) = plugin {
        let (target, port) = (args.target.as_str(), args.port);
        return run_plugin(&plugin, started, target, port, session.api.region(), ctx).await;
    }
    let dial = Dial {
        stream_url: started.stream_url.clone(),
        token: started.token.clone(),
    };
    let reporter = args
        .progress
        .as_ref()
        .map(|p| progress::report(p.clone(), counters.clone()));
    let input = stdin_chunks(counters.clone());
    let output = CountingWriter::new(tokio::io::stdout(), counters.clone());
    let result = driver::run(dial, input, output, None, session, &DriverConfig::default())
        .await
        .map_err(|e| tunnel_error(e, &args.target));
    if let Some(task) = reporter {
        task.abort();
    }
    result
}

/// Reads stdin on a plain thread (a blocked read must not hold up the runtime's exit)
/// and hands the chunks over; the channel closes at end of input.
fn stdin_chunks(counters: Counters) -> mpsc::Receiver<Input> {
    let (tx, rx) = mpsc::channel(4);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) => {
                    tracing::debug!("stdin: end of file");
                    break;
                }
                Ok(n) => {
                    counters.add_up(n);
                    if tx.blocking_send(Input::Data(buf[..n].to_vec())).is_err() {
                        tracing::debug!("stdin: the tunnel no longer takes input");
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::debug!(error = %e, "stdin read failed; treating as end of input");
                    break;
                }
            }
        }
    });
    rx
}

pub(crate) fn tunnel_error(e: TunnelError, target: &str) -> AppError {
    let fix = match &e {
        TunnelError::Connect { .. } => "the ssmmessages endpoint must be reachable from here (check proxies and firewalls; from a private VPC you need its ssmmessages interface endpoint)".to_string(),
        TunnelError::HandshakeTimeout(_) | TunnelError::Handshake(_) => format!("check the SSM agent on {target} (`ec2ssh list` shows its version; update it with the AWS-UpdateSSMAgent document)"),
        TunnelError::Lost(_) | TunnelError::Expired | TunnelError::Unacknowledged(_) => "the network to AWS dropped for too long; connect again".to_string(),
        TunnelError::Resume(err) => return AppError::Aws(err.clone()),
        TunnelError::Proxy(err) => err.fix(),
        TunnelError::Output(_) => "the program reading the tunnel (ssh) went away".to_string(),
    };
    AppError::other(e.to_string(), fix)
}

/// The target ssh passed (`%h`), refused unless it is an instance or node id: it may
/// come from anywhere a host name can (a script, a repository URL).
fn validate_target(target: &str) -> Result<&str, AppError> {
    if crate::names::is_instance_id(target) {
        Ok(target)
    } else {
        Err(AppError::other(
            format!("{:?} is not an instance id", crate::text::sanitize(target)),
            "pass an id like i-0123456789abcdef0 or mi-0123456789abcdef0 (in ~/.ssh/config: `Host i-* mi-*` with `ProxyCommand ec2ssh proxy %h %p`)",
        ))
    }
}

/// `--push-key USER`: pushes ec2ssh's managed key (what `ec2ssh ssh-config` names as
/// IdentityFile) so the ssh that runs this proxy can log in.
async fn push_managed_key(
    ctx: &AwsContext,
    target: &str,
    region: &str,
    user: &str,
) -> Result<(), AppError> {
    if !crate::names::valid_login(user) {
        return Err(AppError::other(
            format!(
                "{:?} is not a valid login name",
                crate::text::sanitize(user)
            ),
            "set `User` in ~/.ssh/config or pass user@ to ssh",
        ));
    }
    let paths = crate::config::Paths::detect().ok_or_else(|| {
        AppError::other(
            "cannot find ec2ssh's data directory",
            "set HOME (or XDG_DATA_HOME)",
        )
    })?;
    let key = crate::connect::key::managed(&paths.data_dir)
        .map_err(|e| AppError::other(e.to_string(), e.fix()))?;
    let instance = crate::fleet::Instance {
        id: target.to_string(),
        region: region.to_string(),
        profile: ctx.profile_info().map(|p| p.name.clone()),
        state: Some("running".into()),
        ..Default::default()
    };
    crate::connect::push::push(ctx, &instance, user, &key.public).await
}

/// `session-manager-plugin` on PATH.
fn find_plugin() -> Result<PathBuf, AppError> {
    const NAME: &str = "session-manager-plugin";
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(NAME))
        .find(|p| is_executable(p))
        .ok_or_else(|| AppError::other(
            "--transport plugin needs Amazon's session-manager-plugin, which is not on PATH",
            "install it (https://docs.aws.amazon.com/systems-manager/latest/userguide/session-manager-working-with-install-plugin.html), or use the built-in client: drop --transport plugin / set transport = \"native\"",
        ))
}

fn is_executable(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The first plugin version that reads the StartSession response from an environment
/// variable named by argv[1] (its release notes, 1.2.536.0), keeping the token out of
/// the process list.
const ENV_RESPONSE_VERSION: &str = "1.2.536.0";
/// How long `session-manager-plugin --version` may take.
const VERSION_TIMEOUT: Duration = Duration::from_secs(5);

/// How the plugin is handed the StartSession response, which holds the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseIn {
    /// In `AWS_SSM_START_SESSION_RESPONSE`, named by argv[1].
    Env,
    /// In argv[1] itself: only for a plugin known to predate the variable.
    Argv { version: String },
}

/// What `--version` answered.
#[derive(Debug)]
pub enum VersionProbe {
    Printed(String),
    Failed(String),
    TimedOut,
}

/// Amazon's session-manager-plugin, found and asked its version.
#[derive(Debug)]
struct Plugin {
    path: PathBuf,
    response_in: ResponseIn,
}

impl Plugin {
    async fn probe(path: PathBuf) -> Result<Plugin, AppError> {
        let run = tokio::process::Command::new(&path)
            .arg("--version")
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        let probe = match tokio::time::timeout(VERSION_TIMEOUT, run).await {
            Err(_) => VersionProbe::TimedOut,
            Ok(Err(e)) => VersionProbe::Failed(e.to_string()),
            Ok(Ok(out)) if !out.status.success() => VersionProbe::Failed(out.status.to_string()),
            Ok(Ok(out)) => VersionProbe::Printed(String::from_utf8_lossy(&out.stdout).into_owned()),
        };
        let response_in = response_in(&probe).map_err(|what| {
            AppError::other(
                format!("cannot use {}: {what}", path.display()),
                "check that `session-manager-plugin --version` prints its version, or use the built-in client: drop --transport plugin",
            )
        })?;
        tracing::debug!(?response_in, "session-manager-plugin");
        Ok(Plugin { path, response_in })
    }
}

/// Where the response goes, from what `--version` answered. Anything but a version
/// known to predate the environment variable gets the variable; an answer that is no
/// version at all is an error (so is no answer), never a fall back to argv.
pub fn response_in(probe: &VersionProbe) -> Result<ResponseIn, String> {
    let printed = match probe {
        VersionProbe::Printed(p) => p.trim(),
        VersionProbe::Failed(why) => return Err(format!("`--version` failed ({why})")),
        VersionProbe::TimedOut => {
            return Err(format!(
                "`--version` did not answer within {}s",
                VERSION_TIMEOUT.as_secs()
            ))
        }
    };
    match (parse_version(printed), parse_version(ENV_RESPONSE_VERSION)) {
        (Some(v), Some(min)) if v < min => Ok(ResponseIn::Argv {
            version: printed.to_string(),
        }),
        (Some(_), _) => Ok(ResponseIn::Env),
        (None, _) => Err(format!(
            "`--version` printed {:?}, which is not a version",
            crate::text::sanitize(&printed.chars().take(80).collect::<String>())
        )),
    }
}

/// `1.2.536.0` as numbers, trailing zeros dropped so that `1.2` equals `1.2.0.0`.
fn parse_version(v: &str) -> Option<Vec<u64>> {
    let mut parts: Vec<u64> = v
        .split('.')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    while parts.last() == Some(&0) {
        parts.pop();
    }
    Some(parts)
}

/// Runs the plugin exactly as `aws ssm start-session` does: the StartSession response,
/// region, operation, profile, request and endpoint as arguments, stdio inherited.
async fn run_plugin(
    plugin: &Plugin,
    started: &Started,
    target: &str,
    port: u16,
    region: &str,
    ctx: &AwsContext,
) -> Result<Finish, AppError> {
    let response = serde_json::json!({
        "SessionId": started.session_id,
        "TokenValue": started.token,
        "StreamUrl": started.stream_url,
    });
    let request = serde_json::json!({
        "Target": target,
        "DocumentName": SSH_DOCUMENT,
        "Parameters": { "portNumber": [port.to_string()] },
    });
    let endpoint = ctx.ssm_endpoint(region);
    let mut cmd = tokio::process::Command::new(&plugin.path);
    match &plugin.response_in {
        ResponseIn::Env => {
            let env_name = "AWS_SSM_START_SESSION_RESPONSE";
            cmd.arg(env_name).env(env_name, response.to_string());
        }
        ResponseIn::Argv { version } => {
            eprintln!(
                "ec2ssh: warning: session-manager-plugin {} predates {ENV_RESPONSE_VERSION}, so its session token goes on its command line, where other local users can see it; update the plugin",
                crate::text::sanitize(version)
            );
            cmd.arg(response.to_string());
        }
    }
    let mut child = cmd
        .arg(region)
        .arg("StartSession")
        .arg(ctx.profile.as_deref().unwrap_or(""))
        .arg(request.to_string())
        .arg(endpoint)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            AppError::other(
                format!("cannot run {}: {e}", plugin.path.display()),
                "check the session-manager-plugin installation",
            )
        })?;
    let status = child.wait().await.map_err(|e| {
        AppError::other(
            format!("session-manager-plugin failed: {e}"),
            "run again with -v",
        )
    })?;
    if status.success() {
        Ok(Finish::InputDone {
            terminated: false,
            drained: true,
        })
    } else {
        Err(AppError::other(
            format!("session-manager-plugin exited with {status}"),
            "its messages above say why; the built-in client (--transport native) may say more",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_plugin_known_to_be_old_gets_the_token_in_argv() {
        let printed = |v: &str| response_in(&VersionProbe::Printed(v.into()));
        assert_eq!(printed("1.2.536.0\n"), Ok(ResponseIn::Env));
        assert_eq!(printed("1.2.650.0"), Ok(ResponseIn::Env));
        assert_eq!(printed("1.3"), Ok(ResponseIn::Env));
        assert_eq!(
            printed("1.2.497.0"),
            Ok(ResponseIn::Argv {
                version: "1.2.497.0".into()
            })
        );
        assert_eq!(
            printed("1.2.53"),
            Ok(ResponseIn::Argv {
                version: "1.2.53".into()
            })
        );
        for bad in ["", "unknown", "1.2.x", "v1.2.650.0", "\u{1b}[2J"] {
            let e = printed(bad).unwrap_err();
            assert!(
                e.contains("not a version") && !e.contains('\u{1b}'),
                "{bad}: {e}"
            );
        }
        assert!(response_in(&VersionProbe::TimedOut)
            .unwrap_err()
            .contains("within 5s"));
        assert!(response_in(&VersionProbe::Failed("exit status: 1".into()))
            .unwrap_err()
            .contains("exit status: 1"));
    }

    /// What carries a session token never shows it in `{:?}` (logs use it).
    #[test]
    fn tokens_are_redacted_from_debug_output() {
        let token = "AAEAAQ-secret-token-value";
        let dial = Dial {
            stream_url: "wss://ssmmessages.us-east-1.amazonaws.com/v1/data-channel/s".into(),
            token: token.into(),
        };
        let started = Started {
            session_id: "s".into(),
            stream_url: dial.stream_url.clone(),
            token: token.into(),
        };
        for shown in [format!("{dial:?}"), format!("{started:?}")] {
            assert!(
                !shown.contains(token) && shown.contains("redacted"),
                "{shown}"
            );
        }
    }

    #[test]
    fn targets() {
        assert!(validate_target("i-0123456789abcdef0").is_ok());
        assert!(validate_target("i-01234567").is_ok());
        assert!(validate_target("mi-0123456789abcdef0").is_ok());
        for bad in [
            "",
            "i-",
            "i-0123456789abcdef",
            "i-0123456789abcdefg",
            "host.example.com",
            "mi-01234567",
            "i-0123456789abcdef0;rm",
        ] {
            assert!(validate_target(bad).is_err(), "{bad}");
        }
    }
}
