//! Standard input as the driver's [`Input`]: read on a plain thread (a blocked read must
//! not hold up the runtime), polled so that it can be stopped (a reader left behind
//! would steal the next key from the picker), handed over in chunks; the channel closes
//! at end of input. `ec2ssh proxy` and `ec2ssh shell` both read their input this way.

use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::driver::Input;

/// How often the reader looks whether it should stop.
const POLL: Duration = Duration::from_millis(50);

/// The reading thread; dropping it stops the thread and waits for it (at most one poll).
pub struct StdinReader {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StdinReader {
    /// Reads stdin in chunks of at most `chunk` bytes into `tx`. Each chunk is shown to
    /// `inspect` first; `false` ends the reading there (the chunk is not sent).
    pub fn spawn(
        tx: mpsc::Sender<Input>,
        chunk: usize,
        inspect: impl FnMut(&[u8]) -> bool + Send + 'static,
    ) -> StdinReader {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || read(&tx, chunk, &flag, inspect));
        StdinReader {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for StdinReader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn read(
    tx: &mpsc::Sender<Input>,
    chunk: usize,
    stop: &AtomicBool,
    mut inspect: impl FnMut(&[u8]) -> bool,
) {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    use rustix::io::Errno;
    let stdin = std::io::stdin();
    let fd = stdin.as_fd();
    let mut buf = vec![0u8; chunk.max(1)];
    let tick = Timespec {
        tv_sec: 0,
        tv_nsec: POLL.as_nanos() as _,
    };
    while !stop.load(Ordering::SeqCst) {
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        match poll(&mut fds, Some(&tick)) {
            Ok(0) | Err(Errno::INTR) => continue,
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(error = %e, "stdin: poll failed");
                break;
            }
        }
        match rustix::io::read(fd, &mut buf) {
            Ok(0) => {
                tracing::debug!("stdin: end of file");
                break;
            }
            Ok(n) if !inspect(&buf[..n]) => break,
            Ok(n) => {
                if tx.blocking_send(Input::Data(buf[..n].to_vec())).is_err() {
                    tracing::debug!("stdin: the tunnel no longer takes input");
                    break;
                }
            }
            Err(Errno::INTR | Errno::AGAIN) => continue,
            Err(e) => {
                tracing::debug!(error = %e, "stdin: read failed; treating as end of input");
                break;
            }
        }
    }
}
