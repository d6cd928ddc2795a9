//! Subcommands that are not the picker itself.

pub mod demo;
pub mod forget;
pub mod list;
pub mod proxy;
pub mod ssh;
pub mod ssh_config;
pub mod status;

use crate::cli::{ColorChoice, PickArgs};
use crate::config::Config;
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
        connector: None,
        once: args.once || config.once,
        notice: None,
    }
}

/// What the picker's outcome means for the process: the picked id on stdout, or
/// exit code 130 when the user cancelled (as fzf does, so scripts can tell).
pub fn finish_pick(outcome: Outcome) -> Result<u8, AppError> {
    match outcome {
        Outcome::Picked(id) => {
            println!("{id}");
            Ok(0)
        }
        Outcome::Connected(code) => Ok(code.clamp(0, 255) as u8),
        Outcome::Cancelled => Ok(130),
    }
}
