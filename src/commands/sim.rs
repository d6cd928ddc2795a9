//! The hidden `ec2ssh sim`: the built-in simulator on loopback until SIGINT/SIGTERM, for
//! tests, benchmarks and tools that want an AWS to talk to; and how a simulator is
//! started from a fleet source (also used by `ec2ssh demo`).

use std::collections::HashSet;

use crate::aws::AccessKey;
use crate::cli::{FleetSource, SimArgs};
use crate::error::AppError;
use crate::sim::{self, FleetFile, SimOptions};

pub(super) fn fleet(source: &FleetSource) -> Result<FleetFile, AppError> {
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

pub(super) async fn start_fleet(
    fleet: FleetFile,
    opts: SimOptions,
) -> Result<sim::SimHandle, AppError> {
    sim::start(fleet, opts).await.map_err(|e| {
        AppError::other(
            format!("cannot start the simulator: {e:#}"),
            "check that 127.0.0.1 can be listened on",
        )
    })
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
