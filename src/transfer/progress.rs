//! Progress fed by the bytes the tunnel really carries. `ec2ssh proxy --progress SOCK`
//! (the ProxyCommand of an `ec2ssh scp` run) counts what it sends and receives and
//! reports the totals as small datagrams (`UP DOWN\n`, the last one `UP DOWN end\n`)
//! on a Unix socket that the parent listens on in its private per-transfer directory.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::AsyncWrite;
use tokio::net::UnixDatagram;

/// How often the proxy reports while bytes flow.
pub const REPORT_EVERY: Duration = Duration::from_millis(100);

/// Bytes through the tunnel so far, shared by the proxy's reader and writer.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    up: Arc<AtomicU64>,
    down: Arc<AtomicU64>,
}

impl Counters {
    pub fn add_up(&self, n: usize) {
        self.up.fetch_add(n as u64, Ordering::Relaxed);
    }
    pub fn add_down(&self, n: usize) {
        self.down.fetch_add(n as u64, Ordering::Relaxed);
    }
    pub fn get(&self) -> (u64, u64) {
        (
            self.up.load(Ordering::Relaxed),
            self.down.load(Ordering::Relaxed),
        )
    }
}

/// One report: the totals so far, and whether the proxy is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    pub up: u64,
    pub down: u64,
    pub last: bool,
}

pub fn encode(r: Report) -> String {
    let end = if r.last { " end" } else { "" };
    format!("{} {}{end}\n", r.up, r.down)
}

pub fn decode(datagram: &[u8]) -> Option<Report> {
    let text = std::str::from_utf8(datagram).ok()?;
    let mut words = text.trim_end().split(' ');
    let up = words.next()?.parse().ok()?;
    let down = words.next()?.parse().ok()?;
    let last = match words.next() {
        None => false,
        Some("end") => true,
        Some(_) => return None,
    };
    Some(Report { up, down, last })
}

/// The proxy side: reports `counters` to `socket` every [`REPORT_EVERY`] while they
/// change, until dropped (the proxy's exit). Reporting is best effort: a missing
/// listener never disturbs the tunnel.
pub fn report(socket: PathBuf, counters: Counters) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let Ok(sock) = UnixDatagram::unbound() else {
            return;
        };
        let mut last = (u64::MAX, u64::MAX);
        let mut tick = tokio::time::interval(REPORT_EVERY);
        loop {
            tick.tick().await;
            let now = counters.get();
            if now != last {
                let r = Report {
                    up: now.0,
                    down: now.1,
                    last: false,
                };
                let _ = sock.send_to(encode(r).as_bytes(), &socket).await;
                last = now;
            }
        }
    })
}

/// The final totals, sent once on the proxy's way out (whatever ended it) so the
/// parent's count is exact and it knows not to wait for more.
pub async fn report_final(socket: &Path, counters: &Counters) {
    if let Ok(sock) = UnixDatagram::unbound() {
        let (up, down) = counters.get();
        let r = Report {
            up,
            down,
            last: true,
        };
        let _ = sock.send_to(encode(r).as_bytes(), socket).await;
    }
}

/// A writer that counts what it passes on as bytes received (`down`).
pub struct CountingWriter<W> {
    inner: W,
    counters: Counters,
}

impl<W> CountingWriter<W> {
    pub fn new(inner: W, counters: Counters) -> Self {
        CountingWriter { inner, counters }
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for CountingWriter<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &poll {
            self.counters.add_down(*n);
        }
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The parent side: a socket in `dir` and the latest totals received on it.
pub struct Listener {
    pub path: PathBuf,
    sock: UnixDatagram,
}

impl Listener {
    pub fn bind(dir: &Path) -> std::io::Result<Listener> {
        let path = dir.join("progress.sock");
        let sock = UnixDatagram::bind(&path)?;
        Ok(Listener { path, sock })
    }

    /// The next report (a connection may go through several proxies, e.g. after an
    /// ssh retry; totals are per proxy).
    pub async fn next(&self) -> Option<Report> {
        let mut buf = [0u8; 64];
        loop {
            let n = self.sock.recv(&mut buf).await.ok()?;
            if let Some(v) = decode(&buf[..n]) {
                return Some(v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_round_trip_and_garbage_is_ignored() {
        for last in [false, true] {
            let r = Report {
                up: 12,
                down: 345,
                last,
            };
            assert_eq!(decode(encode(r).as_bytes()), Some(r));
        }
        assert_eq!(decode(b"1 2 later"), None);
        assert_eq!(decode(b"12"), None);
        assert_eq!(decode(b"x y\n"), None);
        assert_eq!(decode(&[0xff, b' ', b'1']), None);
    }

    #[tokio::test]
    async fn the_listener_receives_what_the_proxy_reports() {
        let dir = tempfile::tempdir().unwrap();
        let l = Listener::bind(dir.path()).unwrap();
        let c = Counters::default();
        c.add_up(1000);
        c.add_down(7);
        let task = report(l.path.clone(), c.clone());
        let r = |up, last| Some(Report { up, down: 7, last });
        assert_eq!(l.next().await, r(1000, false));
        c.add_up(24);
        assert_eq!(l.next().await, r(1024, false));
        task.abort();
        report_final(&l.path, &c).await;
        assert_eq!(l.next().await, r(1024, true));
    }
}
