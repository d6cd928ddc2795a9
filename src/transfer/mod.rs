//! Copies to and from many instances at once: the plan (which hosts, which operands),
//! bounded concurrency with a fresh pushed key per host, progress from the bytes each
//! tunnel carries, and one result per host. One host failing never stops the others.
//! The command line (`ec2ssh scp`) and the picker's push dialog both drive this.

pub mod progress;
pub mod spec;

use std::path::Path;

use futures::StreamExt;
use serde::Serialize;
use tokio::sync::{mpsc, watch};

use crate::connect::Connector;
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
    fn flags(&self) -> Vec<&'static str> {
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

    fn failed(i: &Instance, err: &AppError, seconds: f64) -> HostResult {
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

/// Progress events, by the host's index in the list given to [`run`].
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    Started(usize),
    Bytes(usize, u64),
    Done(usize, HostResult),
}

/// Copies to or from every host in `hosts`, at most `req.parallel` at once; results in
/// the order of `hosts`. Hosts not Online fail at once with the reason. When `cancel`
/// turns true the running copies are ended and the rest are not started.
pub async fn run(
    connector: &Connector,
    hosts: &[Instance],
    req: &Request,
    updates: mpsc::UnboundedSender<Update>,
    cancel: watch::Receiver<bool>,
) -> Vec<HostResult> {
    let several = hosts.len() > 1;
    // By index: a closure taking `&Instance` would make the future not `Send`
    // (rust-lang/rust#64552).
    let jobs = (0..hosts.len()).map(|n| {
        let updates = updates.clone();
        let cancel = cancel.clone();
        let host = &hosts[n];
        async move {
            let result = if *cancel.borrow() {
                HostResult::failed(host, &AppError::Interrupted, 0.0)
            } else {
                let _ = updates.send(Update::Started(n));
                one(connector, host, req, several, &updates, n, cancel).await
            };
            let _ = updates.send(Update::Done(n, result.clone()));
            (n, result)
        }
    });
    let mut results: Vec<(usize, HostResult)> = futures::stream::iter(jobs)
        .buffer_unordered(req.parallel.max(1))
        .collect()
        .await;
    results.sort_by_key(|(n, _)| *n);
    results.into_iter().map(|(_, r)| r).collect()
}

async fn one(
    connector: &Connector,
    host: &Instance,
    req: &Request,
    several: bool,
    updates: &mpsc::UnboundedSender<Update>,
    n: usize,
    cancel: watch::Receiver<bool>,
) -> HostResult {
    let started = std::time::Instant::now();
    let fail = |e: AppError| HostResult::failed(host, &e, started.elapsed().as_secs_f64());
    if let Some(e) = crate::fleet::select::unreachable(host, connector.via) {
        return fail(e);
    }
    // Several hosts' files must not land on top of each other here: DEST/<id>/.
    let local_dest = match req.spec.direction {
        Direction::Pull if several => {
            let dir = Path::new(&req.spec.dest).join(&host.id);
            if let Err(e) = std::fs::create_dir_all(&dir) {
                return fail(AppError::other(
                    format!("cannot create {}: {e}", dir.display()),
                    "check the destination directory",
                ));
            }
            Some(dir.to_string_lossy().into_owned())
        }
        _ => None,
    };
    let direction = req.spec.direction;
    let outcome = connector
        .copy(
            host,
            &req.flags(),
            &req.spec,
            local_dest.as_deref(),
            req.mkdir,
            |up, down| {
                let b = if direction == Direction::Push {
                    up
                } else {
                    down
                };
                let _ = updates.send(Update::Bytes(n, b));
            },
            cancel,
        )
        .await;
    match outcome {
        Ok(done) => HostResult {
            id: host.id.clone(),
            name: host.name.clone(),
            ok: true,
            user: Some(done.user),
            bytes: if direction == Direction::Push {
                done.up
            } else {
                done.down
            },
            seconds: done.elapsed.as_secs_f64(),
            error: None,
            fix: None,
            missing_dir: None,
        },
        Err(e) => HostResult {
            missing_dir: e.missing_dir,
            ..fail(e.error)
        },
    }
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
