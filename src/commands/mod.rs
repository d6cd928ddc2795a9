//! Subcommands that are not the picker itself.

pub mod demo;
pub mod list;
