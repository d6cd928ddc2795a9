//! smux protocol version 1 (github.com/xtaci/smux), sans-IO: the frame codec and the
//! stream bookkeeping both ends of a multiplexed port-forwarding session run. In mux
//! mode the Output payloads of a port session form one byte stream carrying smux; we
//! are its client, the agent (and the simulator's agent) its server.
//!
//! Frame: version (1), command, data length (u16 LE), stream id (u32 LE), data.

use std::collections::{HashMap, VecDeque};

/// The protocol version the agent speaks (smux DefaultConfig).
pub const VERSION: u8 = 1;
/// Bytes before a frame's data.
pub const HEADER_LEN: usize = 8;
/// Largest data per PSH frame (smux's default MaxFrameSize).
pub const MAX_FRAME_DATA: usize = 32 * 1024;

/// A frame's command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmd {
    /// Open a stream.
    Syn,
    /// The sender will write no more on this stream (half-close).
    Fin,
    /// Stream data.
    Psh,
    /// Keepalive; carries nothing.
    Nop,
}

impl Cmd {
    fn to_u8(self) -> u8 {
        match self {
            Cmd::Syn => 0,
            Cmd::Fin => 1,
            Cmd::Psh => 2,
            Cmd::Nop => 3,
        }
    }

    fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            0 => Cmd::Syn,
            1 => Cmd::Fin,
            2 => Cmd::Psh,
            3 => Cmd::Nop,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub cmd: Cmd,
    pub stream: u32,
    pub data: Vec<u8>,
}

/// The byte stream is not smux v1; the session cannot continue (as in smux itself).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmuxError {
    #[error("smux: unsupported protocol version {0}")]
    Version(u8),
    #[error("smux: unknown command {0}")]
    Command(u8),
}

/// Appends one frame. `data` must fit a frame (at most `u16::MAX` bytes).
pub fn encode(cmd: Cmd, stream: u32, data: &[u8], out: &mut Vec<u8>) {
    debug_assert!(data.len() <= u16::MAX as usize);
    out.push(VERSION);
    out.push(cmd.to_u8());
    out.extend_from_slice(&(data.len() as u16).to_le_bytes());
    out.extend_from_slice(&stream.to_le_bytes());
    out.extend_from_slice(data);
}

/// Appends `data` as PSH frames of at most [`MAX_FRAME_DATA`] bytes.
pub fn encode_data(stream: u32, data: &[u8], out: &mut Vec<u8>) {
    for chunk in data.chunks(MAX_FRAME_DATA) {
        encode(Cmd::Psh, stream, chunk, out);
    }
}

/// Reassembles frames from arbitrarily chunked bytes.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    /// Start of the unread part of `buf` (compacted lazily).
    pos: usize,
    failed: Option<SmuxError>,
}

impl Decoder {
    pub fn push(&mut self, bytes: &[u8]) {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame, `Ok(None)` until one has arrived. After an error every
    /// call returns it again.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, SmuxError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let rest = &self.buf[self.pos..];
        if rest.len() < HEADER_LEN {
            self.compact();
            return Ok(None);
        }
        if rest[0] != VERSION {
            return Err(self.fail(SmuxError::Version(rest[0])));
        }
        let Some(cmd) = Cmd::from_u8(rest[1]) else {
            return Err(self.fail(SmuxError::Command(rest[1])));
        };
        let len = u16::from_le_bytes([rest[2], rest[3]]) as usize;
        let stream = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        if rest.len() < HEADER_LEN + len {
            self.compact();
            return Ok(None);
        }
        let data = rest[HEADER_LEN..HEADER_LEN + len].to_vec();
        self.pos += HEADER_LEN + len;
        Ok(Some(Frame { cmd, stream, data }))
    }

    /// Bytes received but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn fail(&mut self, e: SmuxError) -> SmuxError {
        self.failed = Some(e.clone());
        e
    }

    fn compact(&mut self) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
    }
}

/// Which end of the session: clients open odd stream ids, servers even ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Client,
    Server,
}

/// What the peer did, per stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The peer opened a stream (SYN).
    Opened(u32),
    Data(u32, Vec<u8>),
    /// The peer will send no more on this stream.
    Finished(u32),
}

#[derive(Debug, Default, Clone, Copy)]
struct Halves {
    local_fin: bool,
    remote_fin: bool,
}

/// The stream table of one smux session: opens streams, records half-closes, and
/// turns received bytes into [`Event`]s. Frames for unknown streams are dropped, as
/// smux does; a stream is forgotten once both sides finished it.
#[derive(Debug)]
pub struct Mux {
    role: Role,
    next_id: u32,
    streams: HashMap<u32, Halves>,
    decoder: Decoder,
    events: VecDeque<Event>,
}

impl Mux {
    pub fn new(role: Role) -> Self {
        Mux {
            role,
            // smux increments before use: clients 3, 5, 7…; servers 2, 4, 6….
            next_id: match role {
                Role::Client => 1,
                Role::Server => 0,
            },
            streams: HashMap::new(),
            decoder: Decoder::default(),
            events: VecDeque::new(),
        }
    }

    /// Opens a stream: its id and the SYN frame to send.
    pub fn open(&mut self) -> (u32, Vec<u8>) {
        self.next_id = self.next_id.wrapping_add(2);
        let id = self.next_id;
        self.streams.insert(id, Halves::default());
        let mut syn = Vec::with_capacity(HEADER_LEN);
        encode(Cmd::Syn, id, &[], &mut syn);
        (id, syn)
    }

    /// We finished writing on `id`: the FIN frame to send (none for a stream that is
    /// gone or already finished).
    pub fn finish(&mut self, id: u32) -> Option<Vec<u8>> {
        let halves = self.streams.get_mut(&id)?;
        if halves.local_fin {
            return None;
        }
        halves.local_fin = true;
        self.reap(id);
        let mut fin = Vec::with_capacity(HEADER_LEN);
        encode(Cmd::Fin, id, &[], &mut fin);
        Some(fin)
    }

    /// Drops a stream without a FIN (e.g. its local connection was reset).
    pub fn forget(&mut self, id: u32) {
        self.streams.remove(&id);
    }

    pub fn is_open(&self, id: u32) -> bool {
        self.streams.contains_key(&id)
    }

    /// Feeds received bytes; events become available from [`Mux::poll_event`]. A
    /// protocol error is fatal for the session.
    pub fn receive(&mut self, bytes: &[u8]) -> Result<(), SmuxError> {
        self.decoder.push(bytes);
        while let Some(frame) = self.decoder.next_frame()? {
            self.on_frame(frame);
        }
        Ok(())
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn on_frame(&mut self, frame: Frame) {
        let id = frame.stream;
        match frame.cmd {
            Cmd::Nop => {}
            Cmd::Syn => {
                // A server accepts the client's streams; a client takes none (the agent
                // never opens any).
                if self.role == Role::Server && !self.streams.contains_key(&id) {
                    self.streams.insert(id, Halves::default());
                    self.events.push_back(Event::Opened(id));
                }
            }
            Cmd::Psh => {
                let live = self.streams.get(&id).is_some_and(|h| !h.remote_fin);
                if live && !frame.data.is_empty() {
                    self.events.push_back(Event::Data(id, frame.data));
                }
            }
            Cmd::Fin => {
                if let Some(h) = self.streams.get_mut(&id) {
                    if !h.remote_fin {
                        h.remote_fin = true;
                        self.events.push_back(Event::Finished(id));
                        self.reap(id);
                    }
                }
            }
        }
    }

    fn reap(&mut self, id: u32) {
        if self
            .streams
            .get(&id)
            .is_some_and(|h| h.local_fin && h.remote_fin)
        {
            self.streams.remove(&id);
        }
    }
}

/// A NOP frame (keepalive for old agents).
pub fn nop() -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN);
    encode(Cmd::Nop, 0, &[], &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn events(m: &mut Mux) -> Vec<Event> {
        std::iter::from_fn(|| m.poll_event()).collect()
    }

    #[test]
    fn header_layout_is_little_endian() {
        let mut out = Vec::new();
        encode(Cmd::Psh, 0x0403_0201, b"hey", &mut out);
        assert_eq!(out, [1, 2, 3, 0, 1, 2, 3, 4, b'h', b'e', b'y']);
        let mut out = Vec::new();
        encode(Cmd::Syn, 3, &[], &mut out);
        assert_eq!(out, [1, 0, 0, 0, 3, 0, 0, 0]);
        assert_eq!(nop(), [1, 3, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn client_ids_are_odd_from_three_server_ids_even() {
        let mut c = Mux::new(Role::Client);
        let ids: Vec<u32> = (0..3).map(|_| c.open().0).collect();
        assert_eq!(ids, [3, 5, 7]);
        let mut s = Mux::new(Role::Server);
        assert_eq!(s.open().0, 2);
    }

    #[test]
    fn large_writes_are_split_at_32k() {
        let data = vec![7u8; MAX_FRAME_DATA * 2 + 5];
        let mut out = Vec::new();
        encode_data(3, &data, &mut out);
        let mut d = Decoder::default();
        d.push(&out);
        let sizes: Vec<usize> = std::iter::from_fn(|| d.next_frame().unwrap())
            .map(|f| {
                assert_eq!((f.cmd, f.stream), (Cmd::Psh, 3));
                f.data.len()
            })
            .collect();
        assert_eq!(sizes, [MAX_FRAME_DATA, MAX_FRAME_DATA, 5]);
    }

    #[test]
    fn frames_survive_byte_by_byte_delivery() {
        let mut wire = Vec::new();
        encode(Cmd::Syn, 3, &[], &mut wire);
        encode(Cmd::Psh, 3, b"hello", &mut wire);
        encode(Cmd::Fin, 3, &[], &mut wire);
        let mut server = Mux::new(Role::Server);
        for b in &wire {
            server.receive(std::slice::from_ref(b)).unwrap();
        }
        assert_eq!(
            events(&mut server),
            [
                Event::Opened(3),
                Event::Data(3, b"hello".to_vec()),
                Event::Finished(3)
            ]
        );
        assert!(server.is_open(3), "only half-closed");
        assert!(server.finish(3).is_some());
        assert!(!server.is_open(3), "both halves closed");
        assert_eq!(server.finish(3), None);
    }

    #[test]
    fn data_for_unknown_or_finished_streams_is_dropped() {
        let mut client = Mux::new(Role::Client);
        let (id, _) = client.open();
        let mut wire = Vec::new();
        encode(Cmd::Psh, 99, b"stray", &mut wire);
        encode(Cmd::Syn, 2, &[], &mut wire);
        encode(Cmd::Nop, 0, &[], &mut wire);
        encode(Cmd::Fin, id, &[], &mut wire);
        encode(Cmd::Psh, id, b"late", &mut wire);
        client.receive(&wire).unwrap();
        assert_eq!(events(&mut client), [Event::Finished(id)]);
    }

    #[test]
    fn bad_version_and_command_are_fatal() {
        let mut d = Decoder::default();
        d.push(&[2, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(d.next_frame(), Err(SmuxError::Version(2)));
        assert_eq!(d.next_frame(), Err(SmuxError::Version(2)));
        let mut m = Mux::new(Role::Server);
        assert_eq!(
            m.receive(&[1, 4, 0, 0, 1, 0, 0, 0]),
            Err(SmuxError::Command(4))
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(chunks in proptest::collection::vec(
            proptest::collection::vec(any::<u8>(), 0..64), 0..32)
        ) {
            let mut m = Mux::new(Role::Server);
            for c in &chunks {
                if m.receive(c).is_err() {
                    break;
                }
                while m.poll_event().is_some() {}
            }
        }

        #[test]
        fn frames_round_trip_under_any_chunking(
            payloads in proptest::collection::vec(
                (1u32..1000, proptest::collection::vec(any::<u8>(), 0..300)), 0..20),
            cut in 1usize..97,
        ) {
            let mut wire = Vec::new();
            for (id, data) in &payloads {
                encode(Cmd::Psh, *id, data, &mut wire);
            }
            let mut d = Decoder::default();
            let mut got = Vec::new();
            for chunk in wire.chunks(cut) {
                d.push(chunk);
                while let Some(f) = d.next_frame().unwrap() {
                    got.push((f.stream, f.data));
                }
            }
            prop_assert_eq!(got, payloads);
            prop_assert_eq!(d.buffered(), 0);
        }
    }
}
