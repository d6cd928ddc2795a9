//! One tunnel: a freshly presigned openTunnel websocket, then raw TCP bytes both ways in
//! BINARY messages (no framing, acks or keepalives of its own), until either side
//! closes or the tunnel's duration runs out.

use std::time::{Duration, Instant, SystemTime};

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;

use super::presign::{self, Credentials, TunnelRequest};
use super::EiceError;
use crate::net::websocket::{self, DialError, WebSocket};

/// The most bytes one message carries (the AWS CLI reads 65,000 at a time).
pub const MAX_MESSAGE: usize = 65_000;
/// How long after our close the endpoint's may take.
const CLOSE_LINGER: Duration = Duration::from_secs(2);
/// A close this near the duration limit is the limit's.
const LIMIT_SLACK: Duration = Duration::from_secs(2);

/// Where and how to open a tunnel.
#[derive(Debug, Clone)]
pub struct Opener {
    /// `wss://DNS` or an override's `ws(s)://HOST:PORT` (see [`presign::base_url`]).
    pub base: String,
    pub region: String,
    pub request: TunnelRequest,
}

impl Opener {
    /// Presigns (now) and dials; an HTTP refusal is read into a typed error.
    pub async fn open(&self, creds: &Credentials) -> Result<WebSocket, EiceError> {
        let url = presign::unsigned_url(&self.base, &self.request);
        let signed = presign::presign(&url, creds, &self.region, SystemTime::now())
            .map_err(EiceError::Sign)?;
        let config = WebSocketConfig::default();
        match websocket::dial(signed.as_str(), config).await {
            Ok(ws) => Ok(ws),
            Err(DialError::Proxy(e)) => Err(EiceError::Proxy(e)),
            Err(DialError::Refused { status, body }) => {
                Err(EiceError::refused(status, &body, &self.request.endpoint_id))
            }
            Err(DialError::Other(reason)) => Err(EiceError::Connect {
                host: self.base.clone(),
                reason,
            }),
        }
    }
}

/// How a tunnel ended without an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    /// The endpoint closed it normally (the instance closed the connection).
    Closed,
    /// Our input ended; the tunnel was closed from here.
    InputDone,
    /// The reader of our output went away.
    OutputClosed,
}

/// Carries `input` to the tunnel and the tunnel's bytes to `output` until one side
/// ends, or `limit` (the tunnel's maxTunnelDuration) passes.
pub async fn pipe(
    ws: WebSocket,
    mut input: mpsc::Receiver<Vec<u8>>,
    mut output: impl AsyncWrite + Unpin,
    limit: Duration,
) -> Result<Finish, EiceError> {
    let started = Instant::now();
    let (mut tx, mut rx) = ws.split();
    let deadline = tokio::time::sleep(limit);
    tokio::pin!(deadline);
    let expired = || EiceError::Expired {
        secs: limit.as_secs(),
    };
    loop {
        tokio::select! {
            chunk = input.recv() => match chunk {
                Some(data) => {
                    for part in data.chunks(MAX_MESSAGE) {
                        tx.send(Message::binary(part.to_vec()))
                            .await
                            .map_err(|e| EiceError::Lost(e.to_string()))?;
                    }
                }
                None => {
                    // No half-close in the protocol: the whole tunnel ends, after the
                    // bytes already on their way have been written out.
                    let _ = tx.send(Message::Close(Some(CloseFrame {
                        code: CloseCode::Normal,
                        reason: "".into(),
                    }))).await;
                    let drain = async {
                        while let Some(Ok(m)) = rx.next().await {
                            if let Message::Binary(b) = m {
                                if output.write_all(&b).await.is_err() {
                                    break;
                                }
                            }
                        }
                    };
                    let _ = tokio::time::timeout(CLOSE_LINGER, drain).await;
                    let _ = output.flush().await;
                    return Ok(Finish::InputDone);
                }
            },
            msg = rx.next() => match msg {
                Some(Ok(Message::Binary(b))) => {
                    if output.write_all(&b).await.is_err() || output.flush().await.is_err() {
                        let _ = tx.send(Message::Close(None)).await;
                        return Ok(Finish::OutputClosed);
                    }
                }
                Some(Ok(Message::Text(_))) => {
                    return Err(EiceError::Protocol("a text message".into()));
                }
                Some(Ok(Message::Close(frame))) => {
                    if started.elapsed() + LIMIT_SLACK >= limit {
                        return Err(expired());
                    }
                    return match frame {
                        None => Ok(Finish::Closed),
                        Some(f) if f.code == CloseCode::Normal => Ok(Finish::Closed),
                        Some(f) => Err(EiceError::Closed {
                            code: f.code.into(),
                            reason: crate::text::sanitize(&f.reason).into_owned(),
                        }),
                    };
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    if started.elapsed() + LIMIT_SLACK >= limit {
                        return Err(expired());
                    }
                    return Err(EiceError::Lost(e.to_string()));
                }
                None => {
                    if started.elapsed() + LIMIT_SLACK >= limit {
                        return Err(expired());
                    }
                    return Err(EiceError::Lost("the connection ended without a close".into()));
                }
            },
            _ = &mut deadline => {
                let _ = tx.send(Message::Close(None)).await;
                return Err(expired());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A websocket server on loopback that runs `serve` on its one connection, and the
    /// client end of it.
    async fn pair<F, Fut>(serve: F) -> WebSocket
    where
        F: FnOnce(tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>) -> Fut
            + Send
            + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            serve(tokio_tungstenite::accept_async(s).await.unwrap()).await;
        });
        websocket::dial(
            format!("ws://127.0.0.1:{port}/openTunnel"),
            WebSocketConfig::default(),
        )
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn bytes_go_both_ways_and_a_refusing_target_is_a_typed_close() {
        let ws = pair(|mut ws| async move {
            let got = ws.next().await.unwrap().unwrap();
            ws.send(got).await.unwrap();
            ws.send(Message::Close(Some(CloseFrame {
                code: CloseCode::Error,
                reason: "Connection refused".into(),
            })))
            .await
            .unwrap();
        })
        .await;
        let (tx, rx) = mpsc::channel(1);
        tx.send(b"hello".to_vec()).await.unwrap();
        let mut out = Vec::new();
        let r = pipe(ws, rx, &mut out, Duration::from_secs(60)).await;
        assert_eq!(out, b"hello");
        match r {
            Err(EiceError::Closed { code, reason }) => {
                assert_eq!((code, reason.as_str()), (1011, "Connection refused"))
            }
            other => panic!("{other:?}"),
        }
        drop(tx);
    }

    #[tokio::test]
    async fn the_duration_limit_ends_the_tunnel_even_without_a_word_from_the_endpoint() {
        let ws = pair(|mut ws| async move {
            // Silent until the client goes.
            while let Some(Ok(_)) = ws.next().await {}
        })
        .await;
        let (_tx, rx) = mpsc::channel(1);
        let r = pipe(ws, rx, tokio::io::sink(), Duration::from_millis(300)).await;
        assert!(matches!(r, Err(EiceError::Expired { .. })), "{r:?}");
    }

    #[tokio::test]
    async fn a_normal_close_is_the_end_and_a_text_message_is_refused() {
        let ws = pair(|mut ws| async move {
            ws.send(Message::Close(None)).await.unwrap();
        })
        .await;
        let (_tx, rx) = mpsc::channel(1);
        let r = pipe(ws, rx, tokio::io::sink(), Duration::from_secs(60)).await;
        assert_eq!(r.unwrap(), Finish::Closed);
        let ws = pair(|mut ws| async move {
            ws.send(Message::text("hi")).await.unwrap();
            while let Some(Ok(_)) = ws.next().await {}
        })
        .await;
        let (_tx, rx) = mpsc::channel(1);
        let r = pipe(ws, rx, tokio::io::sink(), Duration::from_secs(60)).await;
        assert!(matches!(r, Err(EiceError::Protocol(_))), "{r:?}");
    }
}
