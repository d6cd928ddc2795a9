//! The simulated agent's multiplexed port forwarding: an smux v1 server over the
//! reassembled Output byte stream of a `LocalPortForwarding` session. Each stream the
//! client opens gets its own TCP connection to the target; a failed dial is answered
//! with Flag `ConnectToPortError` and a FIN, as the agent does.

use std::collections::HashMap;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::session::messages::Flag;
use crate::session::smux::{self, Cmd, Event, Mux, Role};

/// What the server hands the agent to send to the client.
#[derive(Debug)]
pub enum Out {
    /// smux bytes (Output payloads).
    Data(Vec<u8>),
    Flag(Flag),
}

/// The agent's ends of a running server: the client's Output payloads go into
/// `input`; `output` ends when the client broke the protocol.
pub struct Server {
    pub input: mpsc::UnboundedSender<Vec<u8>>,
    pub output: mpsc::Receiver<Out>,
}

/// Starts a server whose streams connect to `target` (`host:port`).
pub fn spawn(target: String) -> Server {
    let (input, input_rx) = mpsc::unbounded_channel();
    // Bounded: the agent takes from it only while its channel window is open, which
    // holds the per-stream target readers back.
    let (output_tx, output) = mpsc::channel(64);
    tokio::spawn(serve(target, input_rx, output_tx));
    Server { input, output }
}

async fn serve(
    target: String,
    mut input: mpsc::UnboundedReceiver<Vec<u8>>,
    output: mpsc::Sender<Out>,
) {
    let mut mux = Mux::new(Role::Server);
    let mut streams: HashMap<u32, mpsc::UnboundedSender<Vec<u8>>> = HashMap::new();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<u32>();
    loop {
        tokio::select! {
            bytes = input.recv() => {
                let Some(bytes) = bytes else { return };
                if let Err(e) = mux.receive(&bytes) {
                    tracing::debug!(error = %e, "simulated agent: smux protocol error");
                    return;
                }
                while let Some(event) = mux.poll_event() {
                    match event {
                        Event::Opened(id) => {
                            let (tx, rx) = mpsc::unbounded_channel();
                            streams.insert(id, tx);
                            let (target, output, done) = (target.clone(), output.clone(), done_tx.clone());
                            tokio::spawn(stream(id, target, rx, output, done));
                        }
                        Event::Data(id, data) => {
                            if let Some(tx) = streams.get(&id) {
                                let _ = tx.send(data);
                            }
                        }
                        // The client finished writing: the target's write side closes
                        // once what is queued is written.
                        Event::Finished(id) => {
                            streams.remove(&id);
                        }
                    }
                }
            }
            Some(id) = done_rx.recv() => {
                // The stream task sent the FIN itself, in order after its data.
                let _ = mux.finish(id);
            }
        }
    }
}

async fn stream(
    id: u32,
    target: String,
    mut from_client: mpsc::UnboundedReceiver<Vec<u8>>,
    output: mpsc::Sender<Out>,
    done: mpsc::UnboundedSender<u32>,
) {
    let fin = || {
        let mut f = Vec::new();
        smux::encode(Cmd::Fin, id, &[], &mut f);
        Out::Data(f)
    };
    let conn = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(&target)).await;
    let Ok(Ok(conn)) = conn else {
        tracing::debug!(%target, stream = id, "simulated agent: dial failed");
        let _ = output.send(Out::Flag(Flag::ConnectToPortError)).await;
        let _ = output.send(fin()).await;
        let _ = done.send(id);
        return;
    };
    let _ = conn.set_nodelay(true);
    let (mut r, mut w) = conn.into_split();
    let writer = async move {
        while let Some(data) = from_client.recv().await {
            if w.write_all(&data).await.is_err() {
                break;
            }
        }
        let _ = w.shutdown().await;
    };
    let reader = async {
        let mut buf = vec![0u8; smux::MAX_FRAME_DATA];
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let mut frames = Vec::with_capacity(n + smux::HEADER_LEN);
                    smux::encode_data(id, &buf[..n], &mut frames);
                    if output.send(Out::Data(frames)).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = output.send(fin()).await;
        let _ = done.send(id);
    };
    tokio::join!(writer, reader);
}
