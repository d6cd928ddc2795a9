//! Subcommands that are not the picker itself.

pub mod demo;
pub mod doctor;
pub mod forget;
pub mod forward;
pub mod list;
pub mod proxy;
pub mod scp;
pub mod shell;
pub mod sim;
pub mod ssh;
pub mod ssh_config;
pub mod status;

use crate::cli::{ColorChoice, PickArgs};
use crate::config::{Config, Interval};
use crate::error::AppError;
use crate::tui::{Outcome, PickOptions};

/// The picker's options from its flags and the config file (flags win).
pub fn pick_options(args: &PickArgs, config: &Config) -> PickOptions {
    PickOptions {
        query: args.filter.clone(),
        online_only: args.online || config.picker.online_only,
        details: config.picker.details,
        color: list::use_color(ColorChoice::Auto, true),
        exit_after_first_frame: args.exit_after_first_frame,
        once: args.once || config.once,
        notice: None,
        ping_refresh: args
            .ping_refresh
            .or(config.picker.ping_refresh)
            .unwrap_or(Interval::PING_DEFAULT)
            .0,
        parallel: config.parallel.unwrap_or(scp::DEFAULT_PARALLEL).into(),
        via: config.via.unwrap_or_default(),
    }
}

/// What the picker's outcome means for the process: the picked id on stdout, or
/// exit code 130 when the user cancelled (as fzf does, so scripts can tell).
pub fn finish_pick(outcome: Outcome) -> Result<u8, AppError> {
    match outcome {
        Outcome::Picked(id) => {
            println!("{}", crate::text::sanitize(&id));
            Ok(0)
        }
        Outcome::Connected(code) => Ok(code.clamp(0, 255) as u8),
        Outcome::Cancelled => Ok(130),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn pick_args(args: &[&str]) -> PickArgs {
        let cli = Cli::try_parse_from([&["ec2ssh", "pick"], args].concat()).unwrap();
        match cli.command {
            Some(Command::Pick(a)) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_first_frame_hook_stays_out_of_the_help() {
        use clap::CommandFactory;
        let mut cli = Cli::command();
        let top = cli.render_long_help().to_string();
        let pick = cli
            .find_subcommand_mut("pick")
            .unwrap()
            .render_long_help()
            .to_string();
        assert!(
            pick.contains("--print") && !pick.contains("first-frame"),
            "{pick}"
        );
        assert!(!top.contains("first-frame"));
        assert!(pick_args(&["--exit-after-first-frame"]).exit_after_first_frame);
    }

    #[test]
    fn ping_refresh_flag_beats_the_config_which_beats_30s() {
        let every = |args: &[&str], config: &str| {
            pick_options(&pick_args(args), &Config::parse(config).unwrap()).ping_refresh
        };
        assert_eq!(every(&[], ""), Some(Duration::from_secs(30)));
        let ten = "[picker]\nping_refresh = \"10s\"\n";
        assert_eq!(every(&[], ten), Some(Duration::from_secs(10)));
        assert_eq!(
            every(&["--ping-refresh", "1s"], ten),
            Some(Duration::from_secs(1))
        );
        assert_eq!(every(&["--ping-refresh", "off"], ten), None);
        assert_eq!(every(&["--ping-refresh", "0s"], ""), None);
        assert!(Cli::try_parse_from(["ec2ssh", "pick", "--ping-refresh", "often"]).is_err());
    }
}
