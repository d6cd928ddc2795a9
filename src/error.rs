//! The errors `main` reports: each renders as "error: what failed" plus
//! "  fix: what to do", and maps to an exit code.

use crate::aws::{AwsError, NoRegion};
use crate::config::ConfigError;
use crate::fleet::FetchError;
use crate::session::driver::TunnelError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error(transparent)]
    NoRegion(#[from] NoRegion),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{what}")]
    Other { what: String, fix: Option<String> },
    /// The user interrupted us (Ctrl-C, SIGINT).
    #[error("interrupted")]
    Interrupted,
    /// Ended by a signal (SIGTERM, SIGHUP).
    #[error("ended by signal {0}")]
    Signal(i32),
}

impl AppError {
    pub fn other(what: impl Into<String>, fix: impl Into<String>) -> Self {
        AppError::Other {
            what: what.into(),
            fix: Some(fix.into()),
        }
    }

    /// No home directory to put ec2ssh's data (known_hosts, managed key) in.
    pub fn no_data_dir() -> Self {
        AppError::other(
            "cannot find ec2ssh's data directory",
            "set HOME (or XDG_DATA_HOME)",
        )
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            AppError::Interrupted => 130,
            AppError::Signal(n) => 128 + n,
            _ => 1,
        }
    }

    /// `(what, fix)` pairs, one per underlying failure.
    pub fn explain(&self) -> Vec<(String, Option<String>)> {
        match self {
            AppError::Fetch(f) => f.errors.iter().map(|e| (e.summary(), Some(e.fix()))).collect(),
            AppError::Aws(e) => vec![(e.summary(), Some(e.fix()))],
            AppError::NoRegion(e) => vec![(
                e.to_string(),
                Some("pass --region (e.g. --region us-east-1), set `regions` in the config file, or AWS_REGION".into()),
            )],
            AppError::Config(e) => vec![(
                e.to_string(),
                Some("fix or remove it; the keys are listed in the README, \"Configuration\"".into()),
            )],
            AppError::Other { what, fix } => vec![(what.clone(), fix.clone())],
            AppError::Interrupted | AppError::Signal(_) => vec![],
        }
    }
}

/// Prints the error the way every ec2ssh failure looks. Errors quote names, paths,
/// and service or agent text, so the lines are made inert for the terminal here, the
/// one place every error passes through.
pub fn report(err: &AppError) {
    use crate::text::sanitize;
    for (what, fix) in err.explain() {
        eprintln!("error: {}", sanitize(&what));
        if let Some(fix) = fix {
            eprintln!("  fix: {}", sanitize(&fix));
        }
    }
}

/// A tunnel failure as the user reads it: what broke and what to do about it on
/// `target`.
pub fn tunnel_error(e: TunnelError, target: &str) -> AppError {
    let fix = match &e {
        TunnelError::Connect { .. } => "the ssmmessages endpoint must be reachable from here (check proxies and firewalls; from a private VPC you need its ssmmessages interface endpoint)".to_string(),
        TunnelError::HandshakeTimeout(_) | TunnelError::Handshake(_) => format!("check the SSM agent on {target} (`ec2ssh list` shows its version; update it with the AWS-UpdateSSMAgent document)"),
        TunnelError::Lost(_) | TunnelError::Expired | TunnelError::Unacknowledged(_) => "the network to AWS dropped for too long; connect again".to_string(),
        TunnelError::Resume(err) => return AppError::Aws(err.clone()),
        TunnelError::Proxy(err) => err.fix(),
        TunnelError::Output(_) => "the program reading the tunnel (ssh) went away".to_string(),
    };
    AppError::other(e.to_string(), fix)
}
