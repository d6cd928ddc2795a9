//! `ec2ssh demo` and the hidden `ec2ssh sim`: the built-in simulator, in process.

use std::collections::HashSet;

use crate::aws::{AccessKey, AwsContext};
use crate::cli::{DemoArgs, FleetSource, SimArgs};
use crate::config::{Config, Paths};
use crate::connect::Connector;
use crate::error::AppError;
use crate::sim::{self, FleetFile, SimOptions};
use crate::tui;

fn fleet(source: &FleetSource) -> Result<FleetFile, AppError> {
    match (&source.fleet, source.generate) {
        (Some(path), _) => FleetFile::load(path).map_err(|e| {
            AppError::other(
                format!("cannot load the fleet file {}: {e:#}", path.display()),
                "check the file against assets/demo-fleet.toml",
            )
        }),
        (None, Some(n)) => Ok(FleetFile::generate(n, source.seed)),
        (None, None) => Ok(FleetFile::demo()),
    }
}

async fn start(source: &FleetSource, opts: SimOptions) -> Result<sim::SimHandle, AppError> {
    let fleet = fleet(source)?;
    sim::start(fleet, opts).await.map_err(|e| {
        AppError::other(
            format!("cannot start the simulator: {e:#}"),
            "check that 127.0.0.1 can be listened on",
        )
    })
}

/// The picker against the simulator, through the real SDK clients. With OpenSSH's
/// server installed, Enter connects for real: a private sshd on loopback plays every
/// instance, reached through the simulated Session Manager tunnel with a key pushed by
/// the simulated Instance Connect.
pub async fn run(args: &DemoArgs) -> Result<u8, AppError> {
    // Everything the demo talks to is this process's own simulator on loopback.
    crate::net::ProxyEnv::use_direct_only();
    let dir = tempfile::Builder::new()
        .prefix("ec2ssh-demo-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .tempdir()
        .map_err(|e| {
            AppError::other(
                format!("cannot create a temporary directory: {e}"),
                "check TMPDIR",
            )
        })?;
    let mut notice = None;
    let sshd = if args.pick.print {
        None
    } else {
        match sim::sshd::find() {
            None => {
                notice = Some("Enter prints the id: install OpenSSH's server (apt install openssh-server) to connect for real".to_string());
                None
            }
            Some(bin) => match sim::sshd::PrivateSshd::start(&bin, dir.path()) {
                Ok(sshd) => Some(sshd),
                Err(e) => {
                    notice = Some(format!("Enter prints the id: cannot start sshd ({e})"));
                    None
                }
            },
        }
    };
    let opts = SimOptions {
        default_target: sshd.as_ref().map(|s| s.addr),
        authorized_keys: sshd.as_ref().map(|s| s.authorized_keys.clone()),
        ..SimOptions::default()
    };
    let sim = start(&args.source, opts).await?;
    let ctx = AwsContext::for_endpoint(&sim.endpoint(), sim.regions(), &sim.access_key());
    let mut pick = super::pick_options(&args.pick, &Config::default());
    pick.notice = notice;
    let connector = match sshd {
        Some(_) => Some(demo_connector(
            &ctx,
            &sim.endpoint(),
            &sim.access_key(),
            dir.path(),
            args,
        )?),
        None => None,
    };
    let outcome = tui::run(async { Ok((ctx, connector)) }, None, pick).await?;
    drop(sshd);
    super::finish_pick(outcome)
}

/// Connects as the current user (the only one the private sshd lets in), keeps the
/// demo's host keys and state in its own directory, and points the proxy that ssh runs
/// at the simulator with this run's credentials, which reach it through its
/// environment only (never its command line, which every local user can read).
fn demo_connector(
    ctx: &AwsContext,
    endpoint: &str,
    key: &AccessKey,
    dir: &std::path::Path,
    args: &DemoArgs,
) -> Result<Connector, AppError> {
    let config_file = dir.join("config.toml");
    std::fs::write(&config_file, "").map_err(|e| AppError::other(e.to_string(), "check TMPDIR"))?;
    let paths = Paths {
        config_dir: dir.to_path_buf(),
        cache_dir: dir.join("cache"),
        data_dir: dir.join("data"),
        state_dir: dir.join("state"),
        runtime_dir: Some(dir.join("run")),
    };
    let mut connector = Connector::new(ctx.clone(), &Config::default(), Some(paths));
    connector.rules.explicit = Some(args.pick.user.clone().unwrap_or_else(current_user));
    let set = |k: &str, v: &str| (k.to_string(), Some(v.to_string()));
    connector.child_env = vec![
        set("AWS_ENDPOINT_URL", endpoint),
        set("AWS_ACCESS_KEY_ID", &key.id),
        set("AWS_SECRET_ACCESS_KEY", key.secret()),
        set("AWS_EC2_METADATA_DISABLED", "true"),
        set("AWS_CONFIG_FILE", "/dev/null"),
        set("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
        set("EC2SSH_CONFIG", &config_file.to_string_lossy()),
        // The proxy ssh runs talks to the demo's simulator only: never through a proxy.
        set("no_proxy", "*"),
        ("AWS_ENDPOINT_URL_EC2_INSTANCE_CONNECT".into(), None),
        ("AWS_PROFILE".into(), None),
        ("AWS_SESSION_TOKEN".into(), None),
        ("EC2SSH_PROFILE".into(), None),
    ];
    Ok(connector)
}

/// The login name of whoever runs the demo.
fn current_user() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| crate::names::valid_login(u))
        .or_else(|| {
            let out = std::process::Command::new("id").arg("-un").output().ok()?;
            Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
        })
        .unwrap_or_else(|| "root".into())
}

/// Serves until SIGINT/SIGTERM, after printing one JSON line: endpoint, the key pair
/// that may call it, regions, size.
pub async fn serve(args: &SimArgs) -> Result<u8, AppError> {
    let access_key = if args.credentials_from_env {
        Some(key_from_env()?)
    } else {
        None
    };
    let opts = SimOptions {
        access_key,
        denied_actions: args.deny.iter().cloned().collect::<HashSet<_>>(),
        port: args.port,
        default_target: args.target,
        agent_version: args.agent_version.clone(),
        faults: args.faults.clone().unwrap_or_default(),
        unpaced: args.unpaced,
        disconnect_timeout: args.disconnect_timeout,
        keys_dir: args.keys_dir.clone(),
        throttle: args.throttle,
        ..SimOptions::default()
    };
    let sim = start(&args.source, opts).await?;
    let key = sim.access_key();
    let summary = serde_json::json!({
        "endpoint": sim.endpoint(),
        "access_key_id": key.id,
        "secret_access_key": key.secret(),
        "regions": sim.regions(),
        "instances": sim.instance_count(),
    });
    println!("{summary}");
    let mut signals = crate::signals::Signals::install();
    signals.recv().await;
    Ok(0)
}

/// `--credentials-from-env`: the key pair in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
fn key_from_env() -> Result<AccessKey, AppError> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
        (Some(id), Some(secret)) => Ok(AccessKey::new(id, secret)),
        _ => Err(AppError::other(
            "--credentials-from-env needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            "set both, or drop the flag to get a fresh random key pair",
        )),
    }
}
