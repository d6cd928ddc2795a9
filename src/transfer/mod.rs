//! Copies to and from many instances at once, the data of it: what to copy (the spec
//! and its operands), progress from the bytes each tunnel carries, and one result per
//! host. `connect::many` runs it; the command line (`ec2ssh scp`) and the picker's
//! push dialog both drive that.

pub mod progress;
pub mod spec;

use std::path::Path;

use serde::Serialize;

use crate::error::AppError;
use crate::fleet::Instance;
pub use spec::{CopySpec, Direction};

/// What to copy and how.
#[derive(Debug, Clone)]
pub struct Request {
    pub spec: CopySpec,
    pub recursive: bool,
    pub preserve: bool,
    /// Hosts at once (at least 1).
    pub parallel: usize,
    /// A push first creates the remote directory it copies into (`--mkdir`).
    pub mkdir: bool,
}

impl Request {
    /// scp's flags for this request.
    pub fn flags(&self) -> Vec<&'static str> {
        let mut f = Vec::new();
        if self.recursive {
            f.push("-r");
        }
        if self.preserve {
            f.push("-p");
        }
        f
    }
}

/// What happened on one host, also the `--json` row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostResult {
    pub id: String,
    pub name: Option<String>,
    pub ok: bool,
    /// The login used (absent when it failed before one was chosen).
    pub user: Option<String>,
    /// Payload bytes the tunnel carried in the copy's direction (ssh framing included).
    pub bytes: u64,
    pub seconds: f64,
    pub error: Option<String>,
    pub fix: Option<String>,
    /// The remote directory the copy needed and did not find (`--mkdir` creates it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing_dir: Option<String>,
}

impl HostResult {
    /// A result with nothing but `ok` set, for tests of what shows results.
    #[cfg(test)]
    pub fn bare(ok: bool) -> HostResult {
        HostResult {
            id: String::new(),
            name: None,
            ok,
            user: None,
            bytes: 0,
            seconds: 0.0,
            error: None,
            fix: None,
            missing_dir: None,
        }
    }

    /// The result of a host that failed with `err` after `seconds`.
    pub fn failed(i: &Instance, err: &AppError, seconds: f64) -> HostResult {
        let (error, fix) = err
            .explain()
            .into_iter()
            .next()
            .unwrap_or_else(|| ("cancelled".into(), None));
        HostResult {
            id: i.id.clone(),
            name: i.name.clone(),
            ok: false,
            user: None,
            bytes: 0,
            seconds,
            error: Some(error),
            fix,
            missing_dir: None,
        }
    }
}

/// Progress events, by the host's index in the list given to
/// [`crate::connect::many::copy_many`].
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    Started(usize),
    Bytes(usize, u64),
    Done(usize, HostResult),
}

/// The bytes a push will send: regular files' sizes, directories walked when
/// `recursive` (symlinks are not followed, as scp -r does not).
pub fn local_size(sources: &[String], recursive: bool) -> std::io::Result<u64> {
    fn walk(path: &Path, recursive: bool, top: bool) -> std::io::Result<u64> {
        let meta = if top {
            std::fs::metadata(path)?
        } else {
            std::fs::symlink_metadata(path)?
        };
        if meta.is_dir() {
            if !recursive {
                return Err(std::io::Error::other(format!(
                    "{} is a directory",
                    path.display()
                )));
            }
            let mut total = 0;
            for entry in std::fs::read_dir(path)? {
                total += walk(&entry?.path(), recursive, false)?;
            }
            Ok(total)
        } else if meta.is_file() {
            Ok(meta.len())
        } else {
            Ok(0)
        }
    }
    sources
        .iter()
        .map(|s| walk(Path::new(s), recursive, true))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_size_walks_directories_only_when_recursive() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("a"), vec![0u8; 1000]).unwrap();
        std::fs::create_dir(d.join("sub")).unwrap();
        std::fs::write(d.join("sub/b"), vec![0u8; 24]).unwrap();
        std::os::unix::fs::symlink(d.join("a"), d.join("sub/link")).unwrap();
        let s = |p: &str| d.join(p).to_string_lossy().into_owned();
        assert_eq!(local_size(&[s("a")], false).unwrap(), 1000);
        assert_eq!(local_size(&[s("a"), s("sub")], true).unwrap(), 1024);
        assert!(local_size(&[s("sub")], false).is_err());
        assert!(local_size(&[s("missing")], false).is_err());
    }
}
