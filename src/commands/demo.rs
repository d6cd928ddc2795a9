//! `ec2ssh demo` and the hidden `ec2ssh sim`: the built-in simulator, in process.

use std::collections::HashSet;

use crate::aws::AwsContext;
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
    let ctx = AwsContext::for_endpoint(&sim.endpoint(), sim.regions());
    let mut pick = super::pick_options(&args.pick, &Config::default());
    pick.notice = notice;
    let connector = match sshd {
        Some(_) => Some(demo_connector(&ctx, &sim.endpoint(), dir.path(), args)?),
        None => None,
    };
    let outcome = tui::run(async { Ok((ctx, connector)) }, None, pick).await?;
    drop(sshd);
    super::finish_pick(outcome)
}

/// Connects as the current user (the only one the private sshd lets in), keeps the
/// demo's host keys and state in its own directory, and points the proxy that ssh runs
/// at the simulator with the demo credentials.
fn demo_connector(
    ctx: &AwsContext,
    endpoint: &str,
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
        set("AWS_ACCESS_KEY_ID", "AKIDEC2SSHDEMO"),
        set("AWS_SECRET_ACCESS_KEY", "demo-secret"),
        set("AWS_EC2_METADATA_DISABLED", "true"),
        set("AWS_CONFIG_FILE", "/dev/null"),
        set("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
        set("EC2SSH_CONFIG", &config_file.to_string_lossy()),
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
        .filter(|u| crate::connect::user::valid(u))
        .or_else(|| {
            let out = std::process::Command::new("id").arg("-un").output().ok()?;
            Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
        })
        .unwrap_or_else(|| "root".into())
}

/// Serves until SIGINT/SIGTERM, after printing one JSON line: endpoint, regions, size.
pub async fn serve(args: &SimArgs) -> Result<u8, AppError> {
    let opts = SimOptions {
        denied_actions: args.deny.iter().cloned().collect::<HashSet<_>>(),
        port: args.port,
        default_target: args.target,
        agent_version: args.agent_version.clone(),
        faults: args.faults.clone().unwrap_or_default(),
        keys_dir: args.keys_dir.clone(),
        throttle: args.throttle,
        ..SimOptions::default()
    };
    let sim = start(&args.source, opts).await?;
    let summary = serde_json::json!({
        "endpoint": sim.endpoint(),
        "regions": sim.regions(),
        "instances": sim.instance_count(),
    });
    println!("{summary}");
    let mut signals = crate::signals::Signals::install();
    signals.recv().await;
    Ok(0)
}
