//! ec2ssh: pick an EC2 instance managed by AWS Systems Manager and get a shell on it.
//!
//! The binary is a thin `main.rs`; everything lives here so tests and benchmarks
//! can use it. See the README's "Architecture" section for how the parts fit.

pub mod alloc;
pub mod aws;
pub mod cli;
pub mod commands;
pub mod config;
pub mod connect;
pub mod doctor;
pub mod eice;
pub mod error;
pub mod filter;
pub mod fleet;
pub mod forward;
#[doc(hidden)]
pub mod fuzz;
pub mod names;
pub mod net;
pub mod owner;
pub mod select;
pub mod session;
pub mod shell;
pub mod signals;
pub mod sim;
pub mod terminal;
pub mod text;
pub mod time;
pub mod transfer;
pub mod tui;
