//! The sequenced, acknowledged stream that both ends of a data channel run: outgoing
//! sequence numbers, the buffer of unacknowledged messages and their retransmission,
//! acks, the out-of-order receive buffer and exactly-once in-order delivery.
//!
//! It is sans-IO in the style of quinn-proto: the caller feeds received frames and the
//! current time in, and pulls frames to write, events and the next timer deadline out.
//! Time is a `Duration` since an arbitrary epoch chosen by the caller (virtual in tests),
//! and the same engine serves the client and (in the simulator) the agent via [`Role`].

use bytes::Bytes;
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use super::codec::{self, CodecError, Message, MessageType, PayloadType, FLAG_FIN, FLAG_SYN};
use super::messages::{AcknowledgeContent, ChannelClosed};

/// RTT estimate before the first sample (reference `DefaultRoundTripTime`).
pub const INITIAL_RTT: Duration = Duration::from_millis(100);
/// Retransmission timeout before the first sample (reference `DefaultTransmissionTimeout`).
pub const INITIAL_RTO: Duration = Duration::from_millis(200);
/// Lower bound of the variance term (reference `ClockGranularity`).
pub const CLOCK_GRANULARITY: Duration = Duration::from_millis(10);
/// Upper bound of the timeout, also for backed-off retransmissions (reference
/// `MaxTransmissionTimeout`).
pub const MAX_RTO: Duration = Duration::from_secs(1);

/// Which side of the channel this engine plays. It fixes which stream message type is
/// sent and which is accepted as the peer's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sends `input_stream_data`, receives `output_stream_data`.
    Client,
    /// Sends `output_stream_data`, receives `input_stream_data`.
    Agent,
}

impl Role {
    fn outgoing(self) -> MessageType {
        match self {
            Self::Client => MessageType::InputStreamData,
            Self::Agent => MessageType::OutputStreamData,
        }
    }

    fn incoming(self) -> MessageType {
        match self {
            Self::Client => MessageType::OutputStreamData,
            Self::Agent => MessageType::InputStreamData,
        }
    }
}

/// Tunables. `ChannelConfig::new` gives the defaults described on each field.
#[derive(Debug, Clone)]
pub struct ChannelConfig {
    pub role: Role,
    /// Unix time in milliseconds at the caller's epoch (`now == 0`). Only used to fill
    /// CreatedDate, which receivers require to be non-zero.
    pub unix_epoch_ms: u64,
    /// Unacknowledged messages at which `can_send` turns false (default 512, i.e. about
    /// 512 KiB in flight). The reference has no back-pressure and silently evicts the
    /// oldest entry at 10 000; we stop the producer instead so nothing is lost.
    pub send_buffer_limit: usize,
    /// Out-of-order messages kept for later delivery (default 10 000, the plugin's
    /// capacity). Beyond it, messages are dropped unacknowledged and the peer resends.
    pub receive_buffer_limit: usize,
    /// Retransmissions of one message before giving up (default 300: about five
    /// minutes at the 1 s cap, the same give-up time as the plugin's 3000 × 100 ms).
    pub max_retransmits: u32,
}

impl ChannelConfig {
    pub fn new(role: Role, unix_epoch_ms: u64) -> Self {
        Self {
            role,
            unix_epoch_ms,
            send_buffer_limit: 512,
            receive_buffer_limit: 10_000,
            max_retransmits: 300,
        }
    }
}

/// Something the caller should act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The next stream message in sequence order; each sequence number exactly once.
    Received {
        sequence_number: i64,
        payload_type: PayloadType,
        payload: Vec<u8>,
    },
    /// The service closed the channel; the session is over.
    Closed(ChannelClosed),
    /// The service paused publication: the peer is away, transmission is suspended.
    /// Only the agent role pauses; the client ignores publication control.
    Paused,
    /// Publication resumed; held messages have been queued for transmission.
    Resumed,
    /// The send buffer dropped below its limit after having been full.
    Writable,
    /// A message went unacknowledged through `max_retransmits` resends; the channel has
    /// stopped and the session should be terminated.
    RetransmitLimitReached { sequence_number: i64 },
}

/// A received frame that was not processed. The channel state is unchanged; the caller
/// should log it and carry on, as the reference implementations do.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("invalid frame: {0}")]
    Codec(#[from] CodecError),
    #[error("invalid acknowledge payload: {0}")]
    BadAcknowledge(#[source] serde_json::Error),
    #[error("ignored unexpected {0} frame")]
    Unexpected(MessageType),
}

/// Why `send` refused a payload. The payload was not queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("the send buffer is full; wait for Event::Writable")]
    Full,
    #[error("the channel is closed")]
    Closed,
    #[error("empty payloads are never sent")]
    Empty,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    Closed,
    Failed,
}

/// A sent stream message awaiting its ack.
#[derive(Debug)]
struct Pending {
    sequence_number: i64,
    frame: Bytes,
    /// `None` while it has never been transmitted (publication paused).
    last_sent: Option<Duration>,
    retransmits: u32,
}

/// A buffered out-of-order message.
#[derive(Debug)]
struct Buffered {
    payload_type: PayloadType,
    payload: Vec<u8>,
}

/// The sequenced stream engine. See the module docs.
#[derive(Debug)]
pub struct Channel {
    config: ChannelConfig,
    state: State,
    paused: bool,
    /// Whether in-order stream messages are taken now (see `set_accepting`).
    accepting: bool,
    /// In-order messages dropped unacknowledged while not accepting.
    refused: u64,
    /// Set when the send buffer reached its limit, so `Writable` fires once on the way down.
    blocked: bool,
    next_sequence: i64,
    unacked: VecDeque<Pending>,
    expected_sequence: i64,
    out_of_order: BTreeMap<i64, Buffered>,
    rtt: Duration,
    rttvar: Duration,
    rto: Duration,
    retransmissions: u64,
    transmit: VecDeque<Bytes>,
    events: VecDeque<Event>,
}

impl Channel {
    pub fn new(config: ChannelConfig) -> Self {
        Self {
            config,
            state: State::Open,
            paused: false,
            accepting: true,
            refused: 0,
            blocked: false,
            next_sequence: 0,
            unacked: VecDeque::new(),
            expected_sequence: 0,
            out_of_order: BTreeMap::new(),
            rtt: INITIAL_RTT,
            rttvar: Duration::ZERO,
            rto: INITIAL_RTO,
            retransmissions: 0,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    pub fn role(&self) -> Role {
        self.config.role
    }

    /// Queues a stream message unless the send buffer is at its limit. Returns the
    /// sequence number it was given.
    pub fn send(
        &mut self,
        now: Duration,
        payload_type: PayloadType,
        payload: Vec<u8>,
    ) -> Result<i64, SendError> {
        if self.state == State::Open && !self.can_send() {
            return Err(SendError::Full);
        }
        self.send_unlimited(now, payload_type, payload)
    }

    /// Like [`send`](Self::send) but ignores the buffer limit, for the few protocol
    /// messages (handshake answers, flags) that must not wait behind user data.
    pub fn send_unlimited(
        &mut self,
        now: Duration,
        payload_type: PayloadType,
        payload: Vec<u8>,
    ) -> Result<i64, SendError> {
        if self.state != State::Open {
            return Err(SendError::Closed);
        }
        // The agent ignores empty stream payloads; never spend a sequence number on one.
        if payload.is_empty() {
            return Err(SendError::Empty);
        }
        let sequence_number = self.next_sequence;
        // The agent marks its first stream message SYN; the plugin never sets flags.
        let flags = match self.config.role {
            Role::Agent if sequence_number == 0 => FLAG_SYN,
            _ => 0,
        };
        let msg = Message::new(
            self.config.role.outgoing(),
            self.created_date(now),
            sequence_number,
            flags,
            payload_type,
            payload,
        );
        let frame = encode_own(&msg);
        let last_sent = if self.paused {
            None
        } else {
            self.transmit.push_back(frame.clone());
            Some(now)
        };
        self.unacked.push_back(Pending {
            sequence_number,
            frame,
            last_sent,
            retransmits: 0,
        });
        self.next_sequence += 1;
        if !self.can_send() {
            self.blocked = true;
        }
        Ok(sequence_number)
    }

    /// Whether `send` will accept another payload.
    pub fn can_send(&self) -> bool {
        self.state == State::Open && self.unacked.len() < self.config.send_buffer_limit
    }

    /// Processes one received WebSocket message (binary or text).
    pub fn handle_frame(&mut self, now: Duration, frame: &[u8]) -> Result<(), ChannelError> {
        if self.state == State::Closed {
            return Ok(());
        }
        let msg = codec::decode(frame)?;
        match &msg.message_type {
            t if *t == self.config.role.incoming() => {
                self.on_stream_message(now, msg);
                Ok(())
            }
            MessageType::Acknowledge => self.on_acknowledge(now, &msg),
            MessageType::ChannelClosed => {
                self.on_channel_closed(&msg);
                Ok(())
            }
            // The plugin ignores both (`streaming.go`): a lost or odd start_publication
            // must never be able to stall a client. The agent honours them.
            MessageType::PausePublication | MessageType::StartPublication
                if self.config.role == Role::Client =>
            {
                Ok(())
            }
            MessageType::PausePublication => {
                self.pause();
                Ok(())
            }
            MessageType::StartPublication => {
                self.unpause(now);
                Ok(())
            }
            other => Err(ChannelError::Unexpected(other.clone())),
        }
    }

    /// Next frame to write to the WebSocket (as a binary message).
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.transmit.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When `handle_timeout` must next be called, if at all.
    pub fn poll_timeout(&self) -> Option<Duration> {
        if self.state != State::Open || self.paused {
            return None;
        }
        let head = self.unacked.front()?;
        Some(head.last_sent? + self.retransmit_timeout(head))
    }

    /// Retransmits the oldest unacknowledged message if its timer expired.
    ///
    /// Like both reference implementations, only the oldest message is resent: acks are
    /// selective, so later messages are usually through already, and resending the whole
    /// window on every timeout would multiply traffic on a slow link whose queueing
    /// delay exceeds the 1 s cap. Unlike the reference we back off exponentially (up to
    /// the cap) while the same message stays unacknowledged.
    pub fn handle_timeout(&mut self, now: Duration) {
        let Some(deadline) = self.poll_timeout() else {
            return;
        };
        if now < deadline {
            return;
        }
        let max = self.config.max_retransmits;
        let Some(head) = self.unacked.front_mut() else {
            return;
        };
        if head.retransmits >= max {
            let sequence_number = head.sequence_number;
            self.state = State::Failed;
            self.events
                .push_back(Event::RetransmitLimitReached { sequence_number });
            return;
        }
        head.retransmits += 1;
        head.last_sent = Some(now);
        self.transmit.push_back(head.frame.clone());
        self.retransmissions += 1;
    }

    /// Call after the WebSocket was re-dialled and the new OpenDataChannel frame sent.
    ///
    /// Sequence numbers, the receive state and every unacknowledged message are kept
    /// (the peer keeps its side too). Frames queued for the old socket are dropped: the
    /// unacked ones are resent here at once, and lost acks are repaired by the peer's
    /// retransmission, which we re-ack as duplicates. Resending the whole buffer rather
    /// than the head alone is a deliberate improvement on the reference, which would
    /// trickle it out one message per round trip. Timers may keep running while the
    /// socket is down (what they queue is dropped here, and they still count towards
    /// `max_retransmits`, which bounds how long a dead session lingers).
    pub fn resume(&mut self, now: Duration) {
        self.transmit.clear();
        self.paused = false;
        if self.state != State::Open {
            return;
        }
        for p in &mut self.unacked {
            p.last_sent = Some(now);
            p.retransmits = 0;
            self.transmit.push_back(p.frame.clone());
        }
    }

    /// Number of sent stream messages not yet acknowledged.
    pub fn unacked_len(&self) -> usize {
        self.unacked.len()
    }

    /// True once everything sent has been acknowledged.
    pub fn is_flushed(&self) -> bool {
        self.unacked.is_empty()
    }

    pub fn is_closed(&self) -> bool {
        self.state != State::Open
    }

    /// Whether publication is paused (agent role only: the client ignores it).
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// The agent's "handler not ready" (`ErrHandlerNotReady`): while false, the next
    /// in-order stream message is dropped without an acknowledgement and the expected
    /// sequence number stays, so the peer must retransmit it. Out-of-order messages are
    /// still acknowledged and kept. Turning it back on delivers what was kept.
    pub fn set_accepting(&mut self, accepting: bool) {
        self.accepting = accepting;
        if accepting && self.state == State::Open {
            self.drain_out_of_order();
        }
    }

    /// In-order messages dropped unacknowledged because the receiver was not accepting.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Current retransmission timeout.
    pub fn rto(&self) -> Duration {
        self.rto
    }

    /// Smoothed round-trip time.
    pub fn rtt(&self) -> Duration {
        self.rtt
    }

    /// Total retransmissions so far, for diagnostics.
    pub fn retransmissions(&self) -> u64 {
        self.retransmissions
    }

    /// Sequence number the next received in-order message must carry.
    pub fn expected_sequence(&self) -> i64 {
        self.expected_sequence
    }

    /// Sequence number the next sent message will carry.
    pub fn next_sequence(&self) -> i64 {
        self.next_sequence
    }

    fn created_date(&self, now: Duration) -> u64 {
        let ms = u64::try_from(now.as_millis()).unwrap_or(u64::MAX);
        self.config.unix_epoch_ms.saturating_add(ms).max(1)
    }

    fn retransmit_timeout(&self, p: &Pending) -> Duration {
        let factor = 1u32 << p.retransmits.min(16);
        self.rto.saturating_mul(factor).min(MAX_RTO)
    }

    fn on_stream_message(&mut self, now: Duration, msg: Message) {
        // Traffic from the peer proves it is back, as the agent assumes.
        self.unpause(now);
        let seq = msg.sequence_number;
        if seq < self.expected_sequence {
            // Already delivered: our ack was probably lost. Re-ack so the peer stops
            // resending (the agent does this; the plugin does not).
            self.acknowledge(now, &msg);
        } else if seq == self.expected_sequence && !self.accepting {
            self.refused += 1;
        } else if seq == self.expected_sequence {
            self.acknowledge(now, &msg);
            self.deliver(seq, msg.payload_type, msg.payload);
            self.drain_out_of_order();
        } else if self.out_of_order.contains_key(&seq) {
            self.acknowledge(now, &msg);
        } else if self.out_of_order.len() < self.config.receive_buffer_limit {
            self.acknowledge(now, &msg);
            self.out_of_order.insert(
                seq,
                Buffered {
                    payload_type: msg.payload_type,
                    payload: msg.payload,
                },
            );
        }
        // Otherwise: buffer full, drop without ack so the peer resends it later.
    }

    fn deliver(&mut self, sequence_number: i64, payload_type: PayloadType, payload: Vec<u8>) {
        self.expected_sequence += 1;
        self.events.push_back(Event::Received {
            sequence_number,
            payload_type,
            payload,
        });
    }

    fn drain_out_of_order(&mut self) {
        if !self.accepting {
            return;
        }
        while let Some(b) = self.out_of_order.remove(&self.expected_sequence) {
            self.deliver(self.expected_sequence, b.payload_type, b.payload);
        }
    }

    fn acknowledge(&mut self, now: Duration, msg: &Message) {
        let content = AcknowledgeContent {
            message_type: msg.message_type.as_str().to_owned(),
            message_id: msg.message_id.hyphenated().to_string(),
            sequence_number: msg.sequence_number,
            is_sequential_message: true,
        };
        let payload = serde_json::to_vec(&content).unwrap_or_default();
        let ack = Message::new(
            MessageType::Acknowledge,
            self.created_date(now),
            0,
            FLAG_SYN | FLAG_FIN,
            PayloadType::Control,
            payload,
        );
        // Acks flow even while paused, as the agent's do.
        self.transmit.push_back(encode_own(&ack));
    }

    fn on_acknowledge(&mut self, now: Duration, msg: &Message) -> Result<(), ChannelError> {
        let content: AcknowledgeContent =
            serde_json::from_slice(&msg.payload).map_err(ChannelError::BadAcknowledge)?;
        self.unpause(now);
        let seq = content.sequence_number;
        // The buffer is ordered by sequence number; acks for unknown numbers (duplicates)
        // are ignored.
        let Ok(index) = self
            .unacked
            .binary_search_by_key(&seq, |p| p.sequence_number)
        else {
            return Ok(());
        };
        let Some(acked) = self.unacked.remove(index) else {
            return Ok(());
        };
        // Karn's rule: a retransmitted message's ack is ambiguous, so take no sample.
        if acked.retransmits == 0 {
            if let Some(sent) = acked.last_sent {
                self.update_rto(now.saturating_sub(sent));
            }
        }
        if self.blocked && self.can_send() {
            self.blocked = false;
            self.events.push_back(Event::Writable);
        }
        Ok(())
    }

    /// Jacobson/Karels smoothing with the reference constants (α = 1/8, β = 1/4).
    fn update_rto(&mut self, sample: Duration) {
        self.rttvar = self.rttvar * 3 / 4 + self.rtt.abs_diff(sample) / 4;
        self.rtt = self.rtt * 7 / 8 + sample / 8;
        self.rto = (self.rtt + CLOCK_GRANULARITY.max(self.rttvar * 4)).min(MAX_RTO);
    }

    fn on_channel_closed(&mut self, msg: &Message) {
        // Whatever the body holds, the session is over.
        let closed = ChannelClosed::from_payload(&msg.payload);
        self.state = State::Closed;
        self.transmit.clear();
        self.events.push_back(Event::Closed(closed));
    }

    fn pause(&mut self) {
        if !self.paused {
            self.paused = true;
            self.events.push_back(Event::Paused);
        }
    }

    fn unpause(&mut self, now: Duration) {
        if !self.paused {
            return;
        }
        self.paused = false;
        for p in &mut self.unacked {
            if p.last_sent.is_none() {
                p.last_sent = Some(now);
                self.transmit.push_back(p.frame.clone());
            }
        }
        self.events.push_back(Event::Resumed);
    }
}

/// Encodes a message this module built. Only the fixed stream/ack types are used, which
/// always fit the 32-byte field, and payloads are far below 4 GiB.
fn encode_own(msg: &Message) -> Bytes {
    Bytes::from(codec::encode(msg).expect("channel only encodes built-in message types"))
}

#[cfg(test)]
mod tests;
