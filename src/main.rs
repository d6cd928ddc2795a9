//! Entry point: parse the command line, set up logging, run the command, and turn
//! failures into "error:/fix:" messages and exit codes.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use ec2ssh::aws::{AwsContext, Selection};
use ec2ssh::cli::{Cli, Command, GlobalArgs, PickArgs};
use ec2ssh::commands;
use ec2ssh::config::{Config, Paths};
use ec2ssh::connect::Connector;
use ec2ssh::error::{report, AppError};
use ec2ssh::fleet::Cache;
use ec2ssh::tui;

fn main() -> ExitCode {
    ec2ssh::alloc::tune();
    let cli = Cli::parse();
    init_logging(&cli);
    let proxy = matches!(cli.command, Some(Command::Proxy(_)));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli));
    // A blocking task still running (a read of a terminal, a slow DNS lookup) must
    // not hold up the exit.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    ec2ssh::terminal::restore();
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            if proxy {
                // ssh only exits 255: tell the ec2ssh that ran it why.
                if let Some((what, _)) = e.explain().into_iter().next() {
                    ec2ssh::connect::ssh::record_tunnel_failure(&what);
                }
            }
            report(&e);
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

fn init_logging(cli: &Cli) {
    use tracing_subscriber::EnvFilter;
    let default = match cli.global.verbose {
        0 => "off",
        1 => "ec2ssh=info",
        _ => "ec2ssh=debug,aws_config=debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

async fn run(cli: Cli) -> Result<u8, AppError> {
    let g = cli.global;
    match cli.command {
        Some(Command::Completions { shell }) => {
            clap_complete::generate(shell, &mut Cli::command(), "ec2ssh", &mut std::io::stdout());
            Ok(0)
        }
        Some(Command::Demo(args)) => commands::demo::run(&args).await,
        Some(Command::Sim(args)) => commands::sim::serve(&args).await,
        Some(Command::List(args)) => {
            let (config, ctx) = account(&g).await?;
            let cache = cache_for(&g, &config);
            commands::list::run(&ctx, cache.as_ref(), &args, via(&g, &config)).await?;
            Ok(0)
        }
        Some(Command::Status(args)) => {
            let (_, ctx) = account(&g).await?;
            commands::status::run(&ctx, &args).await
        }
        Some(Command::Ssh(args)) => {
            let (config, ctx) = account(&g).await?;
            let mut connector = Connector::new(ctx, &config, Paths::detect());
            connector.via = via(&g, &config);
            commands::ssh::run(connector, &args).await
        }
        Some(Command::Shell(args)) => {
            let (_, ctx) = account(&g).await?;
            commands::shell::run(&ctx, &args).await
        }
        Some(Command::Scp(args)) => {
            let (config, ctx) = account(&g).await?;
            let mut connector = Connector::new(ctx, &config, Paths::detect());
            connector.via = via(&g, &config);
            commands::scp::run(connector, &args, config.parallel).await
        }
        Some(Command::SshConfig(args)) => {
            let (_, ctx) = account(&g).await?;
            commands::ssh_config::run(&ctx, &args).await
        }
        Some(Command::Doctor(args)) => {
            let (_, ctx) = account(&g).await?;
            commands::doctor::run(&ctx, &args).await
        }
        Some(Command::IamPolicy(args)) => {
            println!("{}", ec2ssh::doctor::policy::render(&args));
            Ok(0)
        }
        Some(Command::Forget { target }) => commands::forget::run(&target),
        Some(Command::Proxy(args)) => {
            let (config, ctx) = account(&g).await?;
            let cache = cache_for(&g, &config);
            let opts = commands::proxy::ProxyOptions {
                transport: args.transport.or(config.transport).unwrap_or_default(),
                via: via(&g, &config),
                max_duration: max_duration(&config),
            };
            commands::proxy::run(&ctx, cache.as_ref(), &args, opts).await
        }
        Some(Command::Forward(args)) => {
            let (config, ctx) = account(&g).await?;
            commands::forward::run(&ctx, &args, via(&g, &config), max_duration(&config)).await
        }
        Some(Command::Pick(args)) => pick(&g, &args).await,
        None => pick(&g, &PickArgs::default()).await,
    }
}

/// Which path reaches instances: `--via`, else the config's, else auto.
fn via(g: &GlobalArgs, config: &Config) -> ec2ssh::fleet::Via {
    g.via.or(config.via).unwrap_or_default()
}

/// An EICE tunnel's life, seconds: the config's (clamped to 1..=3600), else 3600.
fn max_duration(config: &Config) -> u32 {
    config
        .max_tunnel_duration
        .map_or(ec2ssh::eice::MAX_DURATION, |d| {
            d.clamp(1, ec2ssh::eice::MAX_DURATION)
        })
}

/// Loads the config file and the AWS context it and the flags describe.
async fn account(g: &GlobalArgs) -> Result<(Config, AwsContext), AppError> {
    let config = Config::load(g.config.as_deref())?;
    let ctx = context(g, &config).await?;
    Ok((config, ctx))
}

async fn context(g: &GlobalArgs, config: &Config) -> Result<AwsContext, AppError> {
    // A proxy variable that cannot be used fails here, before any call, with its fix.
    ec2ssh::net::ProxyEnv::current()
        .check()
        .map_err(|e| AppError::other(e.to_string(), e.fix()))?;
    let (selection, regions) = view(g, config);
    AwsContext::load(&selection, &regions)
        .await
        .map_err(AppError::load)
}

/// The profiles and the regions the flags and the config file ask for (regions
/// deduplicated; none means each profile's own, else the AWS chain's).
fn view(g: &GlobalArgs, config: &Config) -> (Selection, Vec<String>) {
    let selection = if g.all_profiles {
        Selection::All
    } else if !g.profile.is_empty() {
        Selection::new(&g.profile, false)
    } else {
        let mut names: Vec<String> = config.profile.iter().cloned().collect();
        names.extend(config.profiles.iter().cloned());
        Selection::new(&names, config.all_profiles)
    };
    let regions = if g.region.is_empty() {
        config.regions.clone()
    } else {
        g.region.clone()
    };
    let mut seen = std::collections::HashSet::new();
    let regions = regions
        .into_iter()
        .filter(|r| seen.insert(r.clone()))
        .collect();
    (selection, regions)
}

fn cache_for(g: &GlobalArgs, config: &Config) -> Option<Cache> {
    if g.no_cache || config.cache == Some(false) {
        return None;
    }
    let (selection, regions) = view(g, config);
    let profiles = match selection {
        Selection::Chain => None,
        s => Some(s.key()),
    };
    Paths::detect().map(|p| Cache::new(p.cache_dir, profiles.as_deref(), &regions))
}

/// The picker. Its first frame needs only the cached fleet, so aws-config loads on a
/// worker thread (its credential chain reads the system's CA certificates) while the
/// picker reads the cache and draws it.
async fn pick(g: &GlobalArgs, args: &PickArgs) -> Result<u8, AppError> {
    let config = Config::load(g.config.as_deref())?;
    let cache = cache_for(g, &config);
    let mut opts = commands::pick_options(args, &config);
    opts.via = via(g, &config);
    let (g, args, config) = (g.clone(), args.clone(), config.clone());
    let loading = tokio::spawn(async move {
        let ctx = context(&g, &config).await?;
        let connector = if args.print {
            None
        } else {
            let mut c = Connector::new(ctx.clone(), &config, Paths::detect());
            c.via = via(&g, &config);
            c.set_login(args.user.clone(), args.key.clone())?;
            Some(c)
        };
        Ok((ctx, connector))
    });
    let account = async {
        match loading.await {
            Ok(account) => account,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(AppError::other(
                format!("loading the AWS configuration stopped: {e}"),
                "run ec2ssh again",
            )),
        }
    };
    commands::finish_pick(tui::run(account, cache, opts).await?)
}
