//! The client's websocket as the simulated agent sees it through the network and the
//! Message Gateway Service: injected faults (drop, duplicate, reorder, delay), a
//! constant latency, `cut-after`, the frames the service itself originates
//! (`channel_closed`, publication control) in the service's own shape, and the
//! service's limits on what a client may send.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message as WsMessage, WebSocket};
use bytes::Bytes;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::fault::{CutBudget, DelayLine, Fate, FaultConfig, Faults};
use super::stats::Stats;
use crate::session::codec::{MessageType, MAX_STREAM_PAYLOAD, MESSAGE_TYPE_LEN};

/// HeaderLength of the frames the service originates: no PayloadType field (recorded
/// against live AWS by mmmorris1975/ssm-session-client, `datachannel/agent_message.go`).
const SERVICE_HEADER_LENGTH: u32 = 112;

/// A frame held back by a delay fault: (connection generation, to the client?, frame).
pub type Delayed = (u64, bool, Bytes);

/// One attached websocket with its fault state. A new connection starts afresh.
pub struct Wire {
    sink: SplitSink<WebSocket, WsMessage>,
    stream: SplitStream<WebSocket>,
    pub generation: u64,
    up: Faults,
    down: Faults,
    /// A frame held back by a reorder, per direction.
    held_up: Option<Bytes>,
    held_down: Option<Bytes>,
    /// Bytes both ways towards `cut-after`.
    budget: CutBudget,
    cut: bool,
    broken: bool,
    up_line: DelayLine<Bytes>,
    down_line: DelayLine<WsMessage>,
    latency: Duration,
    delayed: mpsc::UnboundedSender<Delayed>,
    stats: Arc<Stats>,
}

impl Wire {
    pub fn new(
        socket: WebSocket,
        generation: u64,
        faults: &FaultConfig,
        stats: Arc<Stats>,
        delayed: mpsc::UnboundedSender<Delayed>,
    ) -> Wire {
        let (sink, stream) = socket.split();
        let stream_id = generation * 2;
        Wire {
            sink,
            stream,
            generation,
            up: Faults::new(faults, stream_id),
            down: Faults::new(faults, stream_id + 1),
            held_up: None,
            held_down: None,
            budget: CutBudget::new(faults),
            cut: false,
            broken: false,
            up_line: DelayLine::new(faults.latency()),
            down_line: DelayLine::new(faults.latency()),
            latency: faults.latency(),
            delayed,
            stats,
        }
    }

    /// The next message from the client; pending without a connection. `None` means
    /// it closed or failed.
    pub async fn next(wire: &mut Option<Wire>) -> Option<WsMessage> {
        match wire {
            Some(w) => match w.stream.next().await {
                Some(Ok(WsMessage::Close(_))) | Some(Err(_)) | None => None,
                Some(Ok(m)) => Some(m),
            },
            None => std::future::pending().await,
        }
    }

    /// A binary frame came off the socket: it counts towards `cut-after`, then waits
    /// out the latency. Returns what reaches the agent now, after the faults.
    pub fn arrived(&mut self, bytes: Bytes) -> Vec<Bytes> {
        Stats::add(&self.stats.frames_from_client);
        if self.budget.count(bytes.len()) {
            self.cut = true;
        }
        if self.up_line.is_active() {
            self.up_line.push(Instant::now(), bytes);
            return Vec::new();
        }
        self.through_faults_up(bytes)
    }

    /// Frames whose latency is over, after the faults.
    pub fn release_up(&mut self) -> Vec<Bytes> {
        let now = Instant::now();
        let mut out = Vec::new();
        while let Some(bytes) = self.up_line.pop_due(now) {
            out.extend(self.through_faults_up(bytes));
        }
        out
    }

    fn through_faults_up(&mut self, bytes: Bytes) -> Vec<Bytes> {
        let stats = self.stats.clone();
        match self.up.decide() {
            Fate::Deliver => std::iter::once(bytes).chain(self.held_up.take()).collect(),
            Fate::Drop => {
                Stats::add(&stats.dropped_from_client);
                Vec::new()
            }
            Fate::Duplicate => {
                Stats::add(&stats.duplicated_from_client);
                vec![bytes.clone(), bytes]
            }
            Fate::Reorder => {
                Stats::add(&stats.reordered_from_client);
                self.held_up.replace(bytes).into_iter().collect()
            }
            Fate::Delay(d) => {
                Stats::add(&stats.delayed_from_client);
                self.delay(false, bytes, d);
                Vec::new()
            }
        }
    }

    /// Sends a frame of the agent's through the faults and the latency. It also
    /// counts towards `cut-after`.
    pub async fn send(&mut self, frame: Bytes) {
        if self.budget.count(frame.len()) {
            self.cut = true;
        }
        let stats = self.stats.clone();
        match self.down.decide() {
            Fate::Deliver => {
                self.put(WsMessage::Binary(frame)).await;
                if let Some(held) = self.held_down.take() {
                    self.put(WsMessage::Binary(held)).await;
                }
            }
            Fate::Drop => Stats::add(&stats.dropped_to_client),
            Fate::Duplicate => {
                Stats::add(&stats.duplicated_to_client);
                self.put(WsMessage::Binary(frame.clone())).await;
                self.put(WsMessage::Binary(frame)).await;
            }
            Fate::Reorder => {
                Stats::add(&stats.reordered_to_client);
                if let Some(previous) = self.held_down.replace(frame) {
                    self.put(WsMessage::Binary(previous)).await;
                }
            }
            Fate::Delay(d) => {
                Stats::add(&stats.delayed_to_client);
                self.delay(true, frame, d);
            }
        }
    }

    /// Puts a message on the wire, after the latency.
    pub async fn put(&mut self, msg: WsMessage) {
        if self.down_line.is_active() {
            self.down_line.push(Instant::now(), msg);
        } else {
            self.write(msg).await;
        }
    }

    async fn write(&mut self, msg: WsMessage) {
        if matches!(msg, WsMessage::Binary(_)) {
            Stats::add(&self.stats.frames_to_client);
        }
        if self.sink.feed(msg).await.is_err() {
            self.broken = true;
        }
    }

    /// Writes what the latency has released, and flushes.
    pub async fn release_down(&mut self) {
        let now = Instant::now();
        while let Some(msg) = self.down_line.pop_due(now) {
            self.write(msg).await;
        }
        self.flush().await;
    }

    pub async fn flush(&mut self) {
        if self.sink.flush().await.is_err() {
            self.broken = true;
        }
    }

    /// When the latency next releases something, per direction.
    pub fn up_due(&self) -> Option<Instant> {
        self.up_line.next_due()
    }

    pub fn down_due(&self) -> Option<Instant> {
        self.down_line.next_due()
    }

    /// `cut-after` has been reached: drop the connection without a close frame.
    pub fn is_cut(&self) -> bool {
        self.cut
    }

    /// A write failed: the client is gone.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// The last frame, then the close: what is still in the latency line goes out at
    /// its time, `last` one latency later.
    pub async fn close_with(mut self, last: WsMessage) {
        let items: Vec<(Instant, WsMessage)> = self.down_line.drain().collect();
        for (at, msg) in items {
            tokio::time::sleep_until(at).await;
            self.write(msg).await;
        }
        tokio::time::sleep(self.latency).await;
        self.write(last).await;
        let _ = self.sink.flush().await;
        let _ = self.sink.close().await;
    }

    fn delay(&self, down: bool, frame: Bytes, d: Duration) {
        let tx = self.delayed.clone();
        let generation = self.generation;
        tokio::spawn(async move {
            tokio::time::sleep(d).await;
            let _ = tx.send((generation, down, frame));
        });
    }
}

/// A frame in the shape the service gives what it originates itself: HeaderLength 112
/// (no PayloadType), the MessageType padded with NULs, sequence number 0.
pub fn service_frame(message_type: &MessageType, created_date: u64, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(SERVICE_HEADER_LENGTH as usize + 4 + payload.len());
    f.extend_from_slice(&SERVICE_HEADER_LENGTH.to_be_bytes());
    let mut field = [0u8; MESSAGE_TYPE_LEN];
    let name = message_type.as_str().as_bytes();
    field[..name.len().min(MESSAGE_TYPE_LEN)]
        .copy_from_slice(&name[..name.len().min(MESSAGE_TYPE_LEN)]);
    f.extend_from_slice(&field);
    f.extend_from_slice(&1u32.to_be_bytes());
    f.extend_from_slice(&created_date.to_be_bytes());
    f.extend_from_slice(&0i64.to_be_bytes());
    // SYN|FIN like acks; what the service really puts here is not documented.
    f.extend_from_slice(&3u64.to_be_bytes());
    f.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    if payload.is_empty() {
        // Publication control is exempt from validation in both references, and the
        // service is said to fill it loosely: no digest.
        f.extend_from_slice(&[0; 32]);
    } else {
        f.extend_from_slice(&Sha256::digest(payload));
    }
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// What the service refuses from a client once the data channel is open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("protocol error: a text frame after OpenDataChannel")]
    Text,
    #[error("protocol error: a {0}-byte payload; the service takes at most {MAX_STREAM_PAYLOAD} bytes per message")]
    Oversized(usize),
}

/// Checks one binary frame from the client against the service's limits. How the real
/// service reacts is not public; the simulator ends the session, loudly.
pub fn check_inbound(frame: &[u8]) -> Result<(), ProtocolError> {
    let header_length = frame
        .get(..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize);
    let payload = header_length.and_then(|h| frame.len().checked_sub(h.checked_add(4)?));
    match payload {
        Some(n) if n > MAX_STREAM_PAYLOAD => Err(ProtocolError::Oversized(n)),
        // Anything else the channel judges (and drops if it is malformed).
        _ => Ok(()),
    }
}

/// The MessageType of a frame, read from its header without decoding the rest.
pub fn message_type(frame: &[u8]) -> Option<MessageType> {
    let field = frame.get(4..4 + MESSAGE_TYPE_LEN)?;
    let text = std::str::from_utf8(field).ok()?;
    Some(MessageType::parse(
        text.trim_matches(|c: char| c == '\0' || c.is_whitespace()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::codec::{self, control_frame, PayloadType};

    #[test]
    fn message_type_is_read_from_the_header() {
        let frame = control_frame(MessageType::PausePublication, 1, Vec::new()).unwrap();
        assert_eq!(message_type(&frame), Some(MessageType::PausePublication));
        let frame = service_frame(&MessageType::ChannelClosed, 1, b"{}");
        assert_eq!(message_type(&frame), Some(MessageType::ChannelClosed));
        assert_eq!(message_type(b"short"), None);
    }

    #[test]
    fn service_frames_have_the_services_shape_and_decode() {
        let json = br#"{"SessionId":"s","Output":""}"#;
        let f = service_frame(&MessageType::ChannelClosed, 1_700_000_000_000, json);
        assert_eq!(&f[..4], &[0, 0, 0, 112]);
        assert_eq!(&f[4..18], b"channel_closed");
        assert!(f[18..36].iter().all(|&b| b == 0), "NUL padding");
        assert_eq!(f.len(), 116 + json.len());
        let msg = codec::decode(&f).unwrap();
        assert_eq!(msg.message_type, MessageType::ChannelClosed);
        assert_eq!(msg.payload_type, PayloadType::Control);
        assert_eq!(msg.payload, json);

        let f = service_frame(&MessageType::StartPublication, 0, &[]);
        assert_eq!(
            codec::decode(&f).unwrap().message_type,
            MessageType::StartPublication,
            "loose, but exempt from validation"
        );
    }

    #[test]
    fn payloads_over_1024_bytes_are_protocol_errors() {
        let frame = |n: usize| {
            codec::encode(&codec::Message::new(
                MessageType::InputStreamData,
                1,
                0,
                0,
                PayloadType::Output,
                vec![7; n],
            ))
            .unwrap()
        };
        assert_eq!(check_inbound(&frame(1024)), Ok(()));
        assert_eq!(
            check_inbound(&frame(1025)),
            Err(ProtocolError::Oversized(1025))
        );
        assert_eq!(check_inbound(b"junk"), Ok(()), "left to the channel");
        let mut shifted = frame(1025);
        shifted[..4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(check_inbound(&shifted), Ok(()));
    }
}
