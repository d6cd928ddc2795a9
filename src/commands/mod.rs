//! Subcommands that are not the picker itself.

pub mod demo;
pub mod forget;
pub mod list;
pub mod proxy;
pub mod ssh;

use crate::error::AppError;
use crate::tui::Outcome;

/// What the picker's outcome means for the process: the picked id on stdout, or
/// exit code 130 when the user cancelled (as fzf does, so scripts can tell).
pub fn finish_pick(outcome: Outcome) -> Result<u8, AppError> {
    match outcome {
        Outcome::Picked(id) => {
            println!("{id}");
            Ok(0)
        }
        Outcome::Cancelled => Ok(130),
    }
}
