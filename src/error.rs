//! The errors `main` reports: each renders as "error: what failed" plus
//! "  fix: what to do", and maps to an exit code.

use crate::aws::{AwsError, NoRegion};
use crate::config::ConfigError;
use crate::fleet::FetchError;

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

    pub fn exit_code(&self) -> i32 {
        match self {
            AppError::Interrupted => 130,
            AppError::Signal(n) => 128 + n,
            _ => 1,
        }
    }

    /// The AWS configuration cannot be used (unknown profile, no region…).
    pub fn load(e: crate::aws::LoadError) -> AppError {
        match e {
            crate::aws::LoadError::NoRegion(e) => AppError::NoRegion(e),
            e => AppError::other(e.to_string(), e.fix()),
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

/// A row whose profile this run did not load.
impl From<crate::aws::NotLoaded> for AppError {
    fn from(e: crate::aws::NotLoaded) -> Self {
        AppError::other(
            e.to_string(),
            "refresh the list (Ctrl-r), or name its profile with --profile",
        )
    }
}
