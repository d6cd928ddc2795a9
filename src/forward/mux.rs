//! Mux-mode forwarding: every accepted local connection becomes an smux stream of the
//! session. One task per connection sends its bytes (SYN, PSH…, FIN) to the driver;
//! this loop decodes what the agent sends and hands each stream its bytes.
//!
//! Memory stays bounded: a connection reads its socket only while the driver takes
//! input, and each stream queues at most `STREAM_QUEUE` chunks for its socket. smux v1
//! has no per-stream flow control, so a local client that stops reading stalls the
//! whole session (as a full smux receive buffer does in the reference client).

use std::collections::HashMap;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::session::driver::{Input, Notice};
use crate::session::messages::Flag;
use crate::session::smux::{self, Cmd, Event, Mux, Role};

/// Chunks (each at most one read of the session's output) queued per stream.
const STREAM_QUEUE: usize = 8;
/// Largest read from a local socket.
const READ_CHUNK: usize = 16 * 1024;
/// smux's keepalive interval, for agents that expect one.
const KEEPALIVE: Duration = Duration::from_secs(10);

struct Stream {
    /// To the task writing to the local socket; `None` after the agent's FIN.
    to_local: Option<mpsc::Sender<Vec<u8>>>,
    task: JoinHandle<()>,
    got_data: bool,
}

/// Serves `listener` until the session's output ends. `dest` names the forwarded
/// destination in hints. Errors only when the agent's bytes are not smux.
pub async fn run<O>(
    listener: TcpListener,
    input: mpsc::Sender<Input>,
    mut output: O,
    mut notices: mpsc::UnboundedReceiver<Notice>,
    keepalive: bool,
    dest: &str,
) -> Result<(), smux::SmuxError>
where
    O: AsyncRead + Unpin,
{
    let mut mux = Mux::new(Role::Client);
    let mut streams: HashMap<u32, Stream> = HashMap::new();
    let (finished_tx, mut finished_rx) = mpsc::unbounded_channel::<u32>();
    // ConnectToPortError flags not yet matched with the FIN that follows each.
    let mut refused = 0usize;
    let _keepalive = keepalive.then(|| {
        let input = input.clone();
        AbortOnDrop(tokio::spawn(async move {
            let mut tick = tokio::time::interval(KEEPALIVE);
            tick.tick().await;
            loop {
                tick.tick().await;
                if input.send(Input::Data(smux::nop())).await.is_err() {
                    break;
                }
            }
        }))
    });
    let mut buf = vec![0u8; smux::MAX_FRAME_DATA];
    let mut notices_open = true;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let (id, syn) = mux.open();
                    tracing::debug!(%peer, stream = id, "forwarded connection");
                    let (to_local, from_agent) = mpsc::channel(STREAM_QUEUE);
                    let task = tokio::spawn(connection(
                        id,
                        socket,
                        syn,
                        input.clone(),
                        from_agent,
                        finished_tx.clone(),
                    ));
                    streams.insert(id, Stream { to_local: Some(to_local), task, got_data: false });
                }
                Err(e) => {
                    // E.g. out of file descriptors: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            n = output.read(&mut buf) => {
                let n = match n {
                    Ok(0) | Err(_) => return Ok(()),
                    Ok(n) => n,
                };
                mux.receive(&buf[..n])?;
                while let Some(event) = mux.poll_event() {
                    match event {
                        Event::Data(id, data) => {
                            let Some(s) = streams.get_mut(&id) else { continue };
                            s.got_data = true;
                            if let Some(tx) = &s.to_local {
                                // Waits while the local client is slow: back-pressure.
                                if tx.send(data).await.is_err() {
                                    s.to_local = None;
                                }
                            }
                        }
                        Event::Finished(id) => {
                            let Some(s) = streams.get_mut(&id) else { continue };
                            s.to_local = None;
                            if refused > 0 && !s.got_data {
                                // The agent could not reach the destination for this
                                // stream: close the local connection outright.
                                refused -= 1;
                                s.task.abort();
                                mux.forget(id);
                            }
                            if !mux.is_open(id) {
                                streams.remove(&id);
                            }
                        }
                        Event::Opened(_) => {}
                    }
                }
            }
            notice = notices.recv(), if notices_open => match notice {
                Some(Notice::Flag(Flag::ConnectToPortError)) => {
                    refused += 1;
                    eprintln!("ec2ssh: the instance could not connect to {dest}; is something listening there?");
                }
                Some(_) => {}
                None => notices_open = false,
            },
            Some(id) = finished_rx.recv() => {
                let _ = mux.finish(id);
                if !mux.is_open(id) {
                    streams.remove(&id);
                }
            }
        }
    }
}

/// One local connection: its bytes to the agent as frames of stream `id` (SYN first,
/// FIN at end of input), and the agent's bytes for it back to the socket.
async fn connection(
    id: u32,
    socket: TcpStream,
    syn: Vec<u8>,
    input: mpsc::Sender<Input>,
    mut from_agent: mpsc::Receiver<Vec<u8>>,
    finished: mpsc::UnboundedSender<u32>,
) {
    let _ = socket.set_nodelay(true);
    let (mut r, mut w) = socket.into_split();
    let up = async move {
        if input.send(Input::Data(syn)).await.is_err() {
            return;
        }
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let mut frames = Vec::with_capacity(n + smux::HEADER_LEN);
                    smux::encode_data(id, &buf[..n], &mut frames);
                    if input.send(Input::Data(frames)).await.is_err() {
                        return;
                    }
                }
            }
        }
        let mut fin = Vec::with_capacity(smux::HEADER_LEN);
        smux::encode(Cmd::Fin, id, &[], &mut fin);
        let _ = input.send(Input::Data(fin)).await;
        let _ = finished.send(id);
    };
    let down = async move {
        while let Some(data) = from_agent.recv().await {
            if w.write_all(&data).await.is_err() {
                // The local client is gone: keep taking the stream's bytes so the
                // session never waits for this connection.
                while from_agent.recv().await.is_some() {}
                break;
            }
        }
        let _ = w.shutdown().await;
    };
    tokio::join!(up, down);
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
