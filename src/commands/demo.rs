//! `ec2ssh demo` and the hidden `ec2ssh sim`: the built-in simulator, in process.

use std::collections::HashSet;

use crate::aws::AwsContext;
use crate::cli::{DemoArgs, FleetSource, SimArgs};
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

/// The picker against the simulator, through the real SDK clients.
pub async fn run(args: &DemoArgs) -> Result<u8, AppError> {
    let sim = start(&args.source, SimOptions::default()).await?;
    let ctx = AwsContext::for_endpoint(&sim.endpoint(), sim.regions());
    let opts = super::pick_options(&args.pick, &crate::config::Config::default());
    let outcome = tui::run(ctx, None, opts).await?;
    super::finish_pick(outcome)
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
