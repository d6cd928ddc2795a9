//! `ec2ssh proxy TARGET PORT`: an OpenSSH ProxyCommand. Starts an `AWS-StartSSHSession`
//! session and bridges stdin/stdout to it byte-exactly, with ec2ssh's own data-channel
//! client or, on request, Amazon's session-manager-plugin. Whatever happens, the
//! session is terminated before the process exits.

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::aws::{AwsContext, AwsErrorKind};
use crate::cli::ProxyArgs;
use crate::config::Transport;
use crate::eice;
use crate::error::{tunnel_error, AppError};
use crate::fleet::{reach, Reach, Via};
use crate::session::api::{Session, SessionApi, Started, SSH_DOCUMENT};
use crate::session::driver::{self, Dial, DriverConfig, Finish, Input};
use crate::session::stdin::StdinReader;
use crate::signals::{self, Signals};
use crate::transfer::progress::{self, Counters, CountingWriter};

/// How the proxy's bytes travel, decided before any is read.
#[derive(Debug, Clone)]
pub enum Path {
    /// A Session Manager session (`AWS-StartSSHSession`).
    Ssm,
    /// An EC2 Instance Connect Endpoint tunnel.
    Eice(eice::Target),
    /// `--via auto` with nothing known: Session Manager, and if its agent is not
    /// connected, the endpoint `auto` gives the instance once it is looked up. An
    /// Online instance costs no call more than before.
    SsmThenEice,
}

/// What `ec2ssh proxy` is asked: the path (`--via`) and the tunnel's life.
#[derive(Debug, Clone, Copy)]
pub struct ProxyOptions {
    pub transport: Transport,
    pub via: Via,
    /// Seconds an EICE tunnel may live (1..=3600).
    pub max_duration: u32,
}

/// `cache`: the fleet last listed for this run's profiles, where the id's owner is
/// looked up first (see [`crate::owner`]).
pub async fn run(
    ctx: &AwsContext,
    cache: Option<&crate::fleet::Cache>,
    args: &ProxyArgs,
    opts: ProxyOptions,
) -> Result<u8, AppError> {
    // Before anything else, so that a signal can never skip the cleanup below.
    let mut signals = Signals::install();
    let counters = Counters::default();
    let max = args.max_tunnel_duration.unwrap_or(opts.max_duration);
    // The profile and region that own the id act from here on.
    let owner = match validate_target(&args.target) {
        Ok(target) => crate::owner::locate(ctx, cache, target).await,
        Err(e) => Err(e),
    };
    let result = match owner {
        Err(e) => Err(e),
        Ok(owner) => via_path(&owner, args, opts, max, &mut signals, &counters).await,
    };
    if let Some(path) = &args.progress {
        progress::report_final(path, &counters).await;
    }
    result
}

/// The tunnel over the path `opts.via` gives (`ctx`: the id's owner).
async fn via_path(
    ctx: &AwsContext,
    args: &ProxyArgs,
    opts: ProxyOptions,
    max: u32,
    signals: &mut Signals,
    counters: &Counters,
) -> Result<u8, AppError> {
    match path_for(ctx, args, opts.via).await {
        Ok(Path::Ssm) => run_proxy(ctx, args, opts.transport, signals, counters).await,
        Ok(Path::Eice(target)) => run_eice(ctx, args, &target, max, true, signals, counters).await,
        Ok(Path::SsmThenEice) => {
            match run_proxy(ctx, args, opts.transport, signals, counters).await {
                Err(AppError::Aws(e)) if e.kind == AwsErrorKind::TargetNotConnected => {
                    match eice_fallback(ctx, args).await {
                        // The key (if any) was pushed before StartSession.
                        Some(target) => {
                            tracing::info!(endpoint = %target.endpoint_id, "the agent is not connected; using the endpoint");
                            run_eice(ctx, args, &target, max, false, signals, counters).await
                        }
                        None => Err(AppError::Aws(e)),
                    }
                }
                other => other,
            }
        }
        Err(e) => Err(e),
    }
}

async fn run_proxy(
    ctx: &AwsContext,
    args: &ProxyArgs,
    transport: Transport,
    signals: &mut Signals,
    counters: &Counters,
) -> Result<u8, AppError> {
    let target = validate_target(&args.target)?;
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
        session.end(crate::terminal::say).await;
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
    let (tx, input) = mpsc::channel(4);
    let up = counters.clone();
    let reader = StdinReader::spawn(tx, 32 * 1024, move |bytes| {
        up.add_up(bytes.len());
        true
    });
    let output = CountingWriter::new(tokio::io::stdout(), counters.clone());
    let result = driver::run(
        dial,
        input,
        output,
        None,
        session,
        &DriverConfig {
            tell: crate::terminal::say,
            ..DriverConfig::default()
        },
    )
    .await
    .map_err(|e| tunnel_error(e, &args.target));
    drop(reader);
    if let Some(task) = reporter {
        task.abort();
    }
    result
}

/// The path for `args.target`: explicit endpoint, IP and id on the command line (what
/// ec2ssh's own ssh runs pass: no AWS call), `--via ssm`, or the instance looked up
/// and given the path `via` gives it.
async fn path_for(ctx: &AwsContext, args: &ProxyArgs, via: Via) -> Result<Path, AppError> {
    let target = validate_target(&args.target)?;
    if via == Via::Ssm {
        return Ok(Path::Ssm);
    }
    if let (Some(id), Some(host), Some(ip)) = (&args.eice_id, &args.eice_host, args.ip) {
        if !crate::names::is_eice_id(id) || !crate::names::is_dns_name(host) {
            return Err(AppError::other(
                format!(
                    "{:?} / {:?} is not an EC2 Instance Connect Endpoint id / DNS name",
                    crate::text::sanitize(id),
                    crate::text::sanitize(host)
                ),
                "pass --eice-id eice-… and --eice-host with its DnsName (`ec2ssh list --json` shows both), or leave both out",
            ));
        }
        let region = ctx.regions.first().cloned().unwrap_or_default();
        return Ok(Path::Eice(eice::Target {
            instance: target.to_string(),
            region,
            endpoint_id: id.clone(),
            dns_name: host.clone(),
            ip,
        }));
    }
    if via == Via::Auto {
        return Ok(if target.starts_with("mi-") {
            Path::Ssm
        } else {
            Path::SsmThenEice
        });
    }
    let instance = crate::fleet::inventory::lookup(ctx, target)
        .await?
        .ok_or_else(|| {
            AppError::other(
                format!("EC2 does not know {target} in {}", ctx.regions.join(", ")),
                "pass its region with --region (`ec2ssh list` shows where it is)",
            )
        })?;
    eice_path(&instance, via, args.ip)
}

/// After Session Manager said the agent is not connected: the endpoint `auto` gives
/// the instance, if it has one (a lookup that fails is as good as none).
async fn eice_fallback(ctx: &AwsContext, args: &ProxyArgs) -> Option<eice::Target> {
    let instance = crate::fleet::inventory::lookup(ctx, &args.target)
        .await
        .ok()??;
    match eice_path(&instance, Via::Auto, args.ip) {
        Ok(Path::Eice(t)) => Some(t),
        _ => None,
    }
}

/// The path `via` gives a looked-up instance (`ip` overrides its private IP).
fn eice_path(
    i: &crate::fleet::Instance,
    via: Via,
    ip: Option<std::net::IpAddr>,
) -> Result<Path, AppError> {
    match reach::reach(i, via) {
        Reach::Ssm => Ok(Path::Ssm),
        Reach::Eice(e) => Ok(Path::Eice(eice::Target::for_row(i, &e, ip)?)),
        Reach::None(why) => Err(AppError::other(
            format!("no way to reach {}: {why}", i.id),
            format!("`ec2ssh doctor {}` says what to fix", i.id),
        )),
    }
}

/// The proxy over an EC2 Instance Connect Endpoint: push the key if asked, open the
/// tunnel (presigned now), carry stdin/stdout until either side ends or the tunnel's
/// time is up. Nothing to clean up at the service: the tunnel ends with its socket.
async fn run_eice(
    ctx: &AwsContext,
    args: &ProxyArgs,
    target: &eice::Target,
    max: u32,
    push: bool,
    signals: &mut Signals,
    counters: &Counters,
) -> Result<u8, AppError> {
    if let Some(user) = args.push_key.as_ref().filter(|_| push) {
        push_managed_key(ctx, &target.instance, &target.region, user).await?;
    }
    let opener = target.opener(ctx, args.port, max)?;
    let creds = ctx.credentials().await?;
    let fail = |e: eice::EiceError| e.into_app(&target.instance, &target.endpoint_id);
    let ws = tokio::select! {
        ws = opener.open(&creds) => ws.map_err(fail)?,
        n = signals.recv() => return Err(signals::as_error(n)),
    };
    tracing::info!(instance = %target.instance, endpoint = %target.endpoint_id, ip = %target.ip, "tunnel open");
    let reporter = args
        .progress
        .as_ref()
        .map(|p| progress::report(p.clone(), counters.clone()));
    let (tx, mut chunks) = mpsc::channel(4);
    let up = counters.clone();
    let reader = StdinReader::spawn(tx, eice::tunnel::MAX_MESSAGE, move |bytes| {
        up.add_up(bytes.len());
        true
    });
    // The tunnel carries bytes only.
    let (bytes_tx, input) = mpsc::channel(4);
    let bytes = tokio::spawn(async move {
        while let Some(chunk) = chunks.recv().await {
            if let Input::Data(data) = chunk {
                if bytes_tx.send(data).await.is_err() {
                    break;
                }
            }
        }
    });
    let output = CountingWriter::new(tokio::io::stdout(), counters.clone());
    let limit = Duration::from_secs(u64::from(max));
    let result = tokio::select! {
        r = eice::tunnel::pipe(ws, input, output, limit) => r.map(|_| 0).map_err(fail),
        n = signals.recv() => Err(signals::as_error(n)),
    };
    drop(reader);
    bytes.abort();
    if let Some(task) = reporter {
        task.abort();
    }
    result
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
    let paths = crate::config::Paths::detect().ok_or_else(AppError::no_data_dir)?;
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
    crate::config::find_program(NAME).ok_or_else(|| AppError::other(
            "--transport plugin needs Amazon's session-manager-plugin, which is not on PATH",
            "install it (https://docs.aws.amazon.com/systems-manager/latest/userguide/session-manager-working-with-install-plugin.html), or use the built-in client: drop --transport plugin / set transport = \"native\"",
        ))
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
