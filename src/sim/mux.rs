//! The simulated agent's multiplexed port forwarding: an smux v1 server over the
//! reassembled Output byte stream of a `LocalPortForwarding` session, as the agent's
//! `port_mux.go` runs it. Each stream the client opens gets its own TCP connection to
//! the target; a failed dial is answered with Flag `ConnectToPortError` and a FIN. When
//! the client finishes a stream the agent closes the target connection fully (its
//! `handleDataTransfer` closes the source), so what the target sends afterwards is
//! lost. With keepalive on (agents up to 3.1.1511.0, or clients up to 1.2.331.0) the
//! server sends a NOP every 10 s and ends the session when nothing came from the
//! client for a 30 s period, as xtaci/smux does.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::stats::Stats;
use crate::session::messages::Flag;
use crate::session::smux::{self, Cmd, Event, Mux, Role};

/// smux keepalive: a NOP every `interval`; the session closes when a `timeout` period
/// passed with nothing from the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    pub interval: Duration,
    pub timeout: Duration,
}

impl Keepalive {
    /// smux's DefaultConfig, which the agent uses: 10 s and 30 s.
    pub const SMUX: Keepalive = Keepalive {
        interval: Duration::from_secs(10),
        timeout: Duration::from_secs(30),
    };
}

/// What the server hands the agent to send to the client.
#[derive(Debug, PartialEq, Eq)]
pub enum Out {
    /// smux bytes (Output payloads).
    Data(Vec<u8>),
    Flag(Flag),
    /// The smux session is over; the agent fails the session with this reason.
    Closed(String),
}

/// The agent's ends of a running server: the client's Output payloads go into
/// `input`; `output` ends after `Out::Closed`.
pub struct Server {
    pub input: mpsc::UnboundedSender<Vec<u8>>,
    pub output: mpsc::Receiver<Out>,
}

/// Starts a server whose streams connect to `target` (`host:port`).
pub fn spawn(target: String, keepalive: Option<Keepalive>, stats: Arc<Stats>) -> Server {
    let (input, input_rx) = mpsc::unbounded_channel();
    // Bounded: the agent takes from it only while its channel window is open, which
    // holds the per-stream target readers back.
    let (output_tx, output) = mpsc::channel(64);
    tokio::spawn(async move {
        let why = serve(target, keepalive, stats, input_rx, output_tx.clone()).await;
        let _ = output_tx.send(Out::Closed(why)).await;
    });
    Server { input, output }
}

/// Runs until the client breaks the protocol, goes quiet under keepalive, or the agent
/// drops its end; returns why.
async fn serve(
    target: String,
    keepalive: Option<Keepalive>,
    stats: Arc<Stats>,
    mut input: mpsc::UnboundedReceiver<Vec<u8>>,
    output: mpsc::Sender<Out>,
) -> String {
    let mut mux = Mux::new(Role::Server);
    let mut streams: HashMap<u32, mpsc::UnboundedSender<Vec<u8>>> = HashMap::new();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<u32>();
    let periods = keepalive.unwrap_or(Keepalive::SMUX);
    let mut ping = tokio::time::interval(periods.interval);
    let mut check = tokio::time::interval(periods.timeout);
    // Both tickers fire at once first; smux's first ones come after one period.
    ping.tick().await;
    check.tick().await;
    let keepalive = keepalive.is_some();
    let mut heard = false;
    loop {
        tokio::select! {
            // The timeout check before the ping when both are due, as at 30 s.
            biased;
            bytes = input.recv() => {
                let Some(bytes) = bytes else { return "the agent stopped".into() };
                heard = true;
                if let Err(e) = mux.receive(&bytes) {
                    tracing::debug!(error = %e, "simulated agent: smux protocol error");
                    return format!("smux protocol error from the client: {e}");
                }
                while let Some(event) = mux.poll_event() {
                    match event {
                        Event::Opened(id) => {
                            let (tx, rx) = mpsc::unbounded_channel();
                            streams.insert(id, tx);
                            let conn = Conn { id, target: target.clone(), output: output.clone(), done: done_tx.clone(), stats: stats.clone() };
                            tokio::spawn(conn.run(rx));
                        }
                        Event::Data(id, data) => {
                            if let Some(tx) = streams.get(&id) {
                                let _ = tx.send(data);
                            }
                        }
                        // The client finished writing: once what is queued is written,
                        // the stream's task closes the target connection.
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
            _ = check.tick(), if keepalive => {
                if !std::mem::take(&mut heard) {
                    Stats::add(&stats.smux_keepalive_timeouts);
                    return format!(
                        "smux keepalive timed out: nothing from the client for {:?}",
                        periods.timeout
                    );
                }
            }
            _ = ping.tick(), if keepalive => {
                if output.send(Out::Data(smux::nop())).await.is_err() {
                    return "the agent stopped".into();
                }
            }
        }
    }
}

/// One smux stream and its target connection.
struct Conn {
    id: u32,
    target: String,
    output: mpsc::Sender<Out>,
    done: mpsc::UnboundedSender<u32>,
    stats: Arc<Stats>,
}

impl Conn {
    async fn run(self, mut from_client: mpsc::UnboundedReceiver<Vec<u8>>) {
        let id = self.id;
        let fin = || {
            let mut f = Vec::new();
            smux::encode(Cmd::Fin, id, &[], &mut f);
            Out::Data(f)
        };
        let conn =
            tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(&self.target)).await;
        let Ok(Ok(conn)) = conn else {
            tracing::debug!(target = %self.target, stream = id, "simulated agent: dial failed");
            let _ = self.output.send(Out::Flag(Flag::ConnectToPortError)).await;
            let _ = self.output.send(fin()).await;
            let _ = self.done.send(id);
            return;
        };
        let _open = self.stats.target_opened();
        let _ = conn.set_nodelay(true);
        let (mut r, mut w) = conn.into_split();
        // Client → target, until the client's FIN (or the target stops taking bytes).
        let writer = async move {
            while let Some(data) = from_client.recv().await {
                if w.write_all(&data).await.is_err() {
                    break;
                }
            }
            w
        };
        // Target → client, until the target's EOF.
        let output = self.output.clone();
        let reader = async move {
            let mut buf = vec![0u8; smux::MAX_FRAME_DATA];
            loop {
                match r.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let mut frames = Vec::with_capacity(n + smux::HEADER_LEN);
                        smux::encode_data(id, &buf[..n], &mut frames);
                        if output.send(Out::Data(frames)).await.is_err() {
                            break;
                        }
                    }
                }
            }
        };
        // Whichever direction ends first closes the whole connection, as the agent's
        // two io.Copy goroutines do: the other one fails on the closed socket.
        tokio::pin!(writer, reader);
        tokio::select! {
            _w = &mut writer => {}
            () = &mut reader => {}
        }
        let _ = self.output.send(fin()).await;
        let _ = self.done.send(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn next(server: &mut Server) -> Out {
        tokio::time::timeout(Duration::from_secs(10), server.output.recv())
            .await
            .expect("the server said something")
            .expect("the server says why it ended")
    }

    /// smux's periods shrunk, so the tests run in real time.
    const FAST: Keepalive = Keepalive {
        interval: Duration::from_millis(40),
        timeout: Duration::from_millis(120),
    };

    #[tokio::test]
    async fn with_keepalive_a_quiet_client_is_closed_after_the_timeout() {
        let stats = Arc::new(Stats::default());
        let mut server = spawn("127.0.0.1:9".into(), Some(FAST), stats.clone());
        let started = tokio::time::Instant::now();
        assert_eq!(next(&mut server).await, Out::Data(smux::nop()));
        assert_eq!(next(&mut server).await, Out::Data(smux::nop()));
        match next(&mut server).await {
            Out::Closed(why) => assert!(why.contains("keepalive"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(started.elapsed() >= FAST.timeout);
        assert_eq!(stats.snapshot().smux_keepalive_timeouts, 1);
    }

    #[tokio::test]
    async fn with_keepalive_a_client_sending_nops_stays() {
        let mut server = spawn("127.0.0.1:9".into(), Some(FAST), Arc::default());
        let started = tokio::time::Instant::now();
        // The client answers every NOP with one, as forward::mux sends them on its own
        // interval for old agents.
        while started.elapsed() < FAST.timeout * 5 {
            server.input.send(smux::nop()).unwrap();
            assert_eq!(next(&mut server).await, Out::Data(smux::nop()));
        }
    }

    #[tokio::test]
    async fn without_keepalive_nothing_is_sent_and_silence_is_fine() {
        let mut server = spawn("127.0.0.1:9".into(), None, Arc::default());
        let quiet = tokio::time::timeout(FAST.timeout * 4, server.output.recv()).await;
        assert!(quiet.is_err(), "{quiet:?}");
    }

    #[tokio::test]
    async fn a_client_fin_closes_the_target_connection_fully() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = listener.local_addr().unwrap().to_string();
        let stats = Arc::new(Stats::default());
        let mut server = spawn(target, None, stats.clone());
        let mut client = Mux::new(Role::Client);
        let (id, syn) = client.open();
        server.input.send(syn).unwrap();
        let mut wire = Vec::new();
        smux::encode_data(id, b"request", &mut wire);
        server.input.send(wire).unwrap();
        server.input.send(client.finish(id).unwrap()).unwrap();

        let (mut conn, _) = listener.accept().await.unwrap();
        let mut got = Vec::new();
        // The agent's FIN closes both directions: EOF after the request…
        conn.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"request");
        // …and the stream ends towards the client with a FIN.
        let mut back = Vec::new();
        while let Some(Out::Data(bytes)) = server.output.recv().await {
            back.extend_from_slice(&bytes);
            client.receive(&bytes).unwrap();
            if std::iter::from_fn(|| client.poll_event()).any(|e| e == Event::Finished(id)) {
                break;
            }
        }
        assert_eq!(stats.snapshot().target_dials, 1);
    }
}
