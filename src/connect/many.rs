//! Copies to or from many instances at once: bounded concurrency with a fresh pushed
//! key per host, progress events, and one result per host. One host failing never stops
//! the others.

use std::path::Path;

use futures::StreamExt;
use tokio::sync::{mpsc, watch};

use super::Connector;
use crate::error::AppError;
use crate::fleet::Instance;
use crate::transfer::{Direction, HostResult, Request, Update};

/// Copies to or from every host in `hosts`, at most `req.parallel` at once; results in
/// the order of `hosts`. Hosts no path reaches fail at once with the reason. When `cancel`
/// turns true the running copies are ended and the rest are not started.
pub async fn copy_many(
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
    if let Some(e) = crate::select::unreachable(host, connector.via) {
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
