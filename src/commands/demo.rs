//! `ec2ssh demo` and the hidden `ec2ssh sim`: the built-in simulator, in process.

use std::collections::HashSet;

use std::os::unix::fs::OpenOptionsExt;

use crate::aws::{AccessKey, AwsContext, ProfileInfo};
use crate::cli::{DemoArgs, FleetSource, SimArgs};
use crate::config::{Config, Paths};
use crate::connect::Connector;
use crate::error::AppError;
use crate::sim::{self, FleetFile, SimOptions};
use crate::tui;

fn fleet(source: &FleetSource) -> Result<FleetFile, AppError> {
    let fleet = match (&source.fleet, source.generate) {
        (Some(path), _) => FleetFile::load(path).map_err(|e| {
            AppError::other(
                format!("cannot load the fleet file {}: {e:#}", path.display()),
                "check the file against assets/demo-fleet.toml",
            )
        }),
        (None, Some(n)) => Ok(FleetFile::generate(n, source.seed)),
        (None, None) => Ok(FleetFile::demo()),
    }?;
    Ok(match source.accounts {
        Some(n) => fleet.split_accounts(n),
        None => fleet,
    })
}

async fn start(source: &FleetSource, opts: SimOptions) -> Result<sim::SimHandle, AppError> {
    start_fleet(fleet(source)?, opts).await
}

async fn start_fleet(fleet: FleetFile, opts: SimOptions) -> Result<sim::SimHandle, AppError> {
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
    // Two accounts (dev and prod), a profile each, as one picker shows them.
    let sim = start_fleet(fleet(&args.source)?.demo_accounts(), opts).await?;
    let profiles = demo_profiles(&sim);
    let ctx = AwsContext::for_endpoint_profiles(&sim.endpoint(), sim.regions(), &profiles);
    let mut pick = super::pick_options(&args.pick, &Config::default());
    pick.notice = notice;
    let connector = match sshd {
        Some(_) => Some(demo_connector(
            &ctx,
            &sim.endpoint(),
            &profiles,
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
    profiles: &[(ProfileInfo, AccessKey)],
    dir: &std::path::Path,
    args: &DemoArgs,
) -> Result<Connector, AppError> {
    let config_file = dir.join("config.toml");
    let write = |path: &std::path::Path, text: &str| {
        use std::io::Write;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(|e| {
                AppError::other(
                    format!("cannot write {}: {e}", path.display()),
                    "check TMPDIR",
                )
            })
    };
    write(&config_file, "")?;
    let (aws_config, aws_credentials) = demo_aws_files(profiles);
    let (config_path, credentials_path) = (dir.join("aws-config"), dir.join("aws-credentials"));
    write(&config_path, &aws_config)?;
    write(&credentials_path, &aws_credentials)?;
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
    // Each row's proxy is run with `--profile dev|prod`, which reads its keys from
    // the demo's own AWS files (0600, in the demo's 0700 directory).
    connector.child_env = vec![
        set("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ACCESS_KEY_ID".into(), None),
        ("AWS_SECRET_ACCESS_KEY".into(), None),
        set("AWS_EC2_METADATA_DISABLED", "true"),
        set("AWS_CONFIG_FILE", &config_path.to_string_lossy()),
        set(
            "AWS_SHARED_CREDENTIALS_FILE",
            &credentials_path.to_string_lossy(),
        ),
        set("EC2SSH_CONFIG", &config_file.to_string_lossy()),
        // The proxy ssh runs talks to the demo's simulator only: never through a proxy.
        set("no_proxy", "*"),
        ("AWS_PROFILE".into(), None),
        ("AWS_SESSION_TOKEN".into(), None),
        ("EC2SSH_PROFILE".into(), None),
    ];
    Ok(connector)
}

/// The demo's profiles: one per simulated account, named after it.
fn demo_profiles(sim: &sim::SimHandle) -> Vec<(ProfileInfo, AccessKey)> {
    let region = sim.regions().first().cloned();
    sim.accounts()
        .into_iter()
        .enumerate()
        .map(|(n, (id, key))| {
            let name = match n {
                0 => "dev".to_string(),
                1 => "prod".to_string(),
                n => format!("account{}", n + 1),
            };
            let info = ProfileInfo {
                name,
                region: region.clone(),
                account_id: Some(id),
                ..ProfileInfo::default()
            };
            (info, key)
        })
        .collect()
}

/// The demo-only AWS config and credentials files: a profile per account.
fn demo_aws_files(profiles: &[(ProfileInfo, AccessKey)]) -> (String, String) {
    let mut config = String::new();
    let mut credentials = String::new();
    for (p, key) in profiles {
        config.push_str(&format!("[profile {}]\n", p.name));
        if let Some(r) = &p.region {
            config.push_str(&format!("region = {r}\n"));
        }
        if let Some(a) = &p.account_id {
            config.push_str(&format!("aws_account_id = {a}\n"));
        }
        credentials.push_str(&format!(
            "[{}]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            p.name,
            key.id,
            key.secret()
        ));
    }
    (config, credentials)
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
    // The first account's key pair also at the top, as before accounts existed.
    let accounts: Vec<serde_json::Value> = sim
        .accounts()
        .iter()
        .map(|(id, key)| {
            serde_json::json!({
                "id": id,
                "access_key_id": key.id,
                "secret_access_key": key.secret(),
            })
        })
        .collect();
    let summary = serde_json::json!({
        "endpoint": sim.endpoint(),
        "access_key_id": key.id,
        "secret_access_key": key.secret(),
        "regions": sim.regions(),
        "instances": sim.instance_count(),
        "accounts": accounts,
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
