//! The binary data-channel frame ("ClientMessage" in the plugin, "AgentMessage" in the
//! agent): a fixed 120-byte big-endian header followed by the payload, one frame per
//! WebSocket message. This module owns encoding, decoding and validation of that frame
//! and nothing else; sequencing and acknowledgement live in `channel`.

use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Value of the HeaderLength field we write: the offset of PayloadLength.
pub const HEADER_LENGTH: u32 = 116;
/// Bytes before the payload of the frames we write (HeaderLength + the 4-byte
/// PayloadLength field).
pub const HEADER_SIZE: usize = HEADER_LENGTH as usize + 4;
/// Smallest HeaderLength a reader accepts: the service's own `channel_closed` has 112,
/// a header without the PayloadType field (protocol notes, section 2).
pub const MIN_HEADER_LENGTH: u32 = 112;
/// Width of the MessageType field.
pub const MESSAGE_TYPE_LEN: usize = 32;
/// Largest payload either reference implementation puts into one stream message; MGS
/// is only known to accept this much, so senders chunk to it.
pub const MAX_STREAM_PAYLOAD: usize = 1024;

/// Flags bit 0: first message of a stream (the agent sets it on sequence 0).
pub const FLAG_SYN: u64 = 1;
/// Flags bit 1: final message. Acks and control messages carry SYN|FIN.
pub const FLAG_FIN: u64 = 2;

// Field offsets, from the layout table in the protocol notes (section 2).
const OFF_MESSAGE_TYPE: usize = 4;
const OFF_SCHEMA_VERSION: usize = 36;
const OFF_CREATED_DATE: usize = 40;
const OFF_SEQUENCE_NUMBER: usize = 48;
const OFF_FLAGS: usize = 56;
const OFF_MESSAGE_ID: usize = 64;
const OFF_PAYLOAD_DIGEST: usize = 80;
const OFF_PAYLOAD_TYPE: usize = 112;

/// Why a frame could not be decoded or encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("frame of {len} bytes is shorter than its {needed}-byte header")]
    TooShort { len: usize, needed: u64 },
    #[error(
        "header length field is {found}, less than the {MIN_HEADER_LENGTH} bytes every header has"
    )]
    HeaderLength { found: u32 },
    #[error("payload length field says {declared} bytes but the frame carries only {actual}")]
    PayloadLength { declared: u32, actual: usize },
    #[error("payload digest does not match the SHA-256 of the payload")]
    DigestMismatch,
    #[error("message type is empty")]
    EmptyMessageType,
    #[error("message type is not ASCII")]
    NonAsciiMessageType,
    #[error("message type is {len} bytes, longer than {MESSAGE_TYPE_LEN}")]
    MessageTypeTooLong { len: usize },
    #[error("created date is zero")]
    ZeroCreatedDate,
    #[error("payload of {len} bytes does not fit the 32-bit length field")]
    PayloadTooLarge { len: usize },
}

/// The MessageType header field.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// Sequenced data from the client.
    InputStreamData,
    /// Sequenced data from the agent.
    OutputStreamData,
    /// Acknowledgement of one stream message (both directions).
    Acknowledge,
    /// The service ended the session.
    ChannelClosed,
    /// The service says the peer is (again) connected: resume sending.
    StartPublication,
    /// The service says the peer is gone for now: stop sending.
    PausePublication,
    /// Agent → service session state; not normally seen by a client.
    AgentSessionState,
    /// Anything else, kept verbatim so it can be logged.
    Unknown(String),
}

impl MessageType {
    /// The wire string (without padding).
    pub fn as_str(&self) -> &str {
        match self {
            Self::InputStreamData => "input_stream_data",
            Self::OutputStreamData => "output_stream_data",
            Self::Acknowledge => "acknowledge",
            Self::ChannelClosed => "channel_closed",
            Self::StartPublication => "start_publication",
            Self::PausePublication => "pause_publication",
            Self::AgentSessionState => "agent_session_state",
            Self::Unknown(s) => s,
        }
    }

    /// Maps a trimmed wire string to its variant.
    pub fn parse(s: &str) -> Self {
        match s {
            "input_stream_data" => Self::InputStreamData,
            "output_stream_data" => Self::OutputStreamData,
            "acknowledge" => Self::Acknowledge,
            "channel_closed" => Self::ChannelClosed,
            "start_publication" => Self::StartPublication,
            "pause_publication" => Self::PausePublication,
            "agent_session_state" => Self::AgentSessionState,
            other => Self::Unknown(other.to_owned()),
        }
    }

    /// Publication control messages are exempt from validation in both reference
    /// implementations (the service fills them loosely), so we exempt them too.
    fn skips_validation(&self) -> bool {
        matches!(self, Self::StartPublication | Self::PausePublication)
    }
}

impl std::fmt::Display for MessageType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The PayloadType header field of stream messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PayloadType {
    /// 0: acks and control messages, which have no typed payload.
    Control,
    /// 1: raw bytes (terminal I/O, TCP bytes).
    Output,
    /// 2: reserved.
    Error,
    /// 3: terminal size JSON.
    Size,
    /// 4: reserved.
    Parameter,
    /// 5: agent's handshake request JSON.
    HandshakeRequest,
    /// 6: client's handshake response JSON.
    HandshakeResponse,
    /// 7: agent's handshake-complete JSON.
    HandshakeComplete,
    /// 8: KMS challenge from the agent.
    EncChallengeRequest,
    /// 9: KMS challenge answer from the client.
    EncChallengeResponse,
    /// 10: a 4-byte big-endian flag value.
    Flag,
    /// 11: standard error bytes (NonInteractiveCommands).
    StdErr,
    /// 12: `EXIT_CODE: n` text (NonInteractiveCommands).
    ExitCode,
    /// Any other value, kept so the frame still round-trips.
    Unknown(u32),
}

impl PayloadType {
    pub fn from_u32(v: u32) -> Self {
        match v {
            0 => Self::Control,
            1 => Self::Output,
            2 => Self::Error,
            3 => Self::Size,
            4 => Self::Parameter,
            5 => Self::HandshakeRequest,
            6 => Self::HandshakeResponse,
            7 => Self::HandshakeComplete,
            8 => Self::EncChallengeRequest,
            9 => Self::EncChallengeResponse,
            10 => Self::Flag,
            11 => Self::StdErr,
            12 => Self::ExitCode,
            other => Self::Unknown(other),
        }
    }

    pub fn to_u32(self) -> u32 {
        match self {
            Self::Control => 0,
            Self::Output => 1,
            Self::Error => 2,
            Self::Size => 3,
            Self::Parameter => 4,
            Self::HandshakeRequest => 5,
            Self::HandshakeResponse => 6,
            Self::HandshakeComplete => 7,
            Self::EncChallengeRequest => 8,
            Self::EncChallengeResponse => 9,
            Self::Flag => 10,
            Self::StdErr => 11,
            Self::ExitCode => 12,
            Self::Unknown(v) => v,
        }
    }
}

/// One decoded frame. The digest and length fields are not stored: `encode` computes
/// them and `decode` checks them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub message_type: MessageType,
    pub schema_version: u32,
    /// Unix epoch milliseconds; must be non-zero.
    pub created_date: u64,
    pub sequence_number: i64,
    pub flags: u64,
    pub message_id: Uuid,
    pub payload_type: PayloadType,
    pub payload: Vec<u8>,
}

impl Message {
    /// A message with schema version 1 and a fresh random id.
    pub fn new(
        message_type: MessageType,
        created_date: u64,
        sequence_number: i64,
        flags: u64,
        payload_type: PayloadType,
        payload: Vec<u8>,
    ) -> Self {
        Self {
            message_type,
            schema_version: 1,
            created_date,
            sequence_number,
            flags,
            message_id: fresh_message_id(),
            payload_type,
            payload,
        }
    }
}

/// A random (version 4) UUID from the thread's userspace CSPRNG. `Uuid::new_v4` asks
/// the kernel for every id, a system call per frame and per acknowledgement.
pub fn fresh_message_id() -> Uuid {
    uuid::Builder::from_random_bytes(rand::random()).into_uuid()
}

/// An unsequenced control frame (`channel_closed`, publication control, …) as the
/// service sends it: sequence 0, SYN|FIN flags, PayloadType 0.
pub fn control_frame(
    message_type: MessageType,
    created_date: u64,
    payload: Vec<u8>,
) -> Result<Vec<u8>, CodecError> {
    encode(&Message::new(
        message_type,
        created_date,
        0,
        FLAG_SYN | FLAG_FIN,
        PayloadType::Control,
        payload,
    ))
}

/// Serialises a message into one frame. Fails only for a message type that does not
/// fit the 32-byte ASCII field, or a payload over 4 GiB.
pub fn encode(msg: &Message) -> Result<Vec<u8>, CodecError> {
    let type_bytes = wire_message_type(&msg.message_type)?;
    let payload_len =
        u32::try_from(msg.payload.len()).map_err(|_| CodecError::PayloadTooLarge {
            len: msg.payload.len(),
        })?;

    let mut out = Vec::with_capacity(HEADER_SIZE + msg.payload.len());
    out.extend_from_slice(&HEADER_LENGTH.to_be_bytes());
    out.extend_from_slice(type_bytes);
    // Space padding, as both Go writers do; readers also accept NULs.
    out.resize(OFF_SCHEMA_VERSION, b' ');
    out.extend_from_slice(&msg.schema_version.to_be_bytes());
    out.extend_from_slice(&msg.created_date.to_be_bytes());
    out.extend_from_slice(&msg.sequence_number.to_be_bytes());
    out.extend_from_slice(&msg.flags.to_be_bytes());
    out.extend_from_slice(&uuid_to_wire(msg.message_id));
    out.extend_from_slice(&Sha256::digest(&msg.payload));
    out.extend_from_slice(&msg.payload_type.to_u32().to_be_bytes());
    out.extend_from_slice(&payload_len.to_be_bytes());
    debug_assert_eq!(out.len(), HEADER_SIZE);
    out.extend_from_slice(&msg.payload);
    Ok(out)
}

/// Parses and validates one frame the way both reference readers do (the plugin's
/// `messageparser.go`, the agent's `agentmessage.go`):
///
/// - HeaderLength is the offset of PayloadLength; any value from 112 up is accepted
///   (the service's `channel_closed` has 112: no PayloadType field);
/// - PayloadType is read only when the header holds it (HeaderLength >= 116), else it
///   is `Control`;
/// - the payload is everything from HeaderLength + 4 to the end of the message;
/// - MessageType is trimmed of NULs, then of whitespace;
/// - validation (non-empty type, non-zero date, and the digest when PayloadLength is
///   not 0) is skipped for start/pause_publication.
///
/// Unlike the reference, a frame shorter than its declared header or payload is an
/// error rather than a misparse.
pub fn decode(frame: &[u8]) -> Result<Message, CodecError> {
    let too_short = |needed: u64| CodecError::TooShort {
        len: frame.len(),
        needed,
    };
    if frame.len() < OFF_PAYLOAD_TYPE + 4 {
        return Err(too_short(u64::from(MIN_HEADER_LENGTH) + 4));
    }
    let header_length = be_u32(frame, 0);
    if header_length < MIN_HEADER_LENGTH {
        return Err(CodecError::HeaderLength {
            found: header_length,
        });
    }
    let payload_start = u64::from(header_length) + 4;
    let payload_start = match usize::try_from(payload_start) {
        Ok(at) if at <= frame.len() => at,
        _ => return Err(too_short(payload_start)),
    };
    let declared = be_u32(frame, payload_start - 4);
    let payload = &frame[payload_start..];
    if usize::try_from(declared).map_or(true, |d| d > payload.len()) {
        return Err(CodecError::PayloadLength {
            declared,
            actual: payload.len(),
        });
    }
    let payload_type = if header_length >= HEADER_LENGTH {
        PayloadType::from_u32(be_u32(frame, OFF_PAYLOAD_TYPE))
    } else {
        PayloadType::Control
    };

    let message_type = parse_message_type(&frame[OFF_MESSAGE_TYPE..OFF_SCHEMA_VERSION])?;
    let msg = Message {
        message_type,
        schema_version: be_u32(frame, OFF_SCHEMA_VERSION),
        created_date: be_u64(frame, OFF_CREATED_DATE),
        sequence_number: be_u64(frame, OFF_SEQUENCE_NUMBER) as i64,
        flags: be_u64(frame, OFF_FLAGS),
        message_id: uuid_from_wire(&frame[OFF_MESSAGE_ID..OFF_PAYLOAD_DIGEST]),
        payload_type,
        payload: payload.to_vec(),
    };
    if !msg.message_type.skips_validation() {
        validate(&msg, declared, &frame[OFF_PAYLOAD_DIGEST..OFF_PAYLOAD_TYPE])?;
    }
    Ok(msg)
}

fn validate(msg: &Message, declared: u32, digest: &[u8]) -> Result<(), CodecError> {
    if msg.message_type.as_str().is_empty() {
        return Err(CodecError::EmptyMessageType);
    }
    if msg.created_date == 0 {
        return Err(CodecError::ZeroCreatedDate);
    }
    // The reference checks the digest only when PayloadLength is not 0.
    if declared != 0 && Sha256::digest(&msg.payload).as_slice() != digest {
        return Err(CodecError::DigestMismatch);
    }
    Ok(())
}

fn wire_message_type(t: &MessageType) -> Result<&[u8], CodecError> {
    let s = t.as_str();
    if s.is_empty() {
        return Err(CodecError::EmptyMessageType);
    }
    if !s.is_ascii() {
        return Err(CodecError::NonAsciiMessageType);
    }
    if s.len() > MESSAGE_TYPE_LEN {
        return Err(CodecError::MessageTypeTooLong { len: s.len() });
    }
    Ok(s.as_bytes())
}

/// Readers strip NULs at both ends, then surrounding whitespace, so both the
/// space-padded Go output and NUL-padded variants parse.
fn parse_message_type(field: &[u8]) -> Result<MessageType, CodecError> {
    let start = field.iter().position(|&b| b != 0).unwrap_or(field.len());
    let end = field.iter().rposition(|&b| b != 0).map_or(start, |i| i + 1);
    let trimmed = field[start..end].trim_ascii();
    if !trimmed.is_ascii() {
        return Err(CodecError::NonAsciiMessageType);
    }
    let s = std::str::from_utf8(trimmed).map_err(|_| CodecError::NonAsciiMessageType)?;
    if s.is_empty() {
        return Err(CodecError::EmptyMessageType);
    }
    Ok(MessageType::parse(s))
}

/// The wire swaps the UUID's two 8-byte halves (Java most/least-significant-bits
/// heritage): the canonical bytes 8..16 come first.
fn uuid_to_wire(id: Uuid) -> [u8; 16] {
    let b = id.as_bytes();
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&b[8..]);
    out[8..].copy_from_slice(&b[..8]);
    out
}

fn uuid_from_wire(wire: &[u8]) -> Uuid {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&wire[8..16]);
    b[8..].copy_from_slice(&wire[..8]);
    Uuid::from_bytes(b)
}

// Callers have checked that the frame holds the fields read, so these offsets are in range.
fn be_u32(frame: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&frame[at..at + 4]);
    u32::from_be_bytes(b)
}

fn be_u64(frame: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&frame[at..at + 8]);
    u64::from_be_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // Values from the reference plugin's messageparser tests (protocol notes 9.2).
    const REF_ID: &str = "dd01e56b-ff48-483e-a508-b5f073f31b16";
    const REF_CREATED: u64 = 1_503_434_274_948;
    // `printf testPayload | sha256sum`, computed outside this code.
    const TEST_PAYLOAD_SHA256: &str =
        "c1b9aa50e4c6580146af3a250bbb60a2d1a4aaca44b234202327cbe6e05e5b05";

    fn reference_message() -> Message {
        Message {
            message_type: MessageType::InputStreamData,
            schema_version: 1,
            created_date: REF_CREATED,
            sequence_number: 2,
            flags: 1,
            message_id: Uuid::parse_str(REF_ID).unwrap(),
            payload_type: PayloadType::Output,
            payload: b"testPayload".to_vec(),
        }
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// The reference frame assembled by hand from the layout table, independent of `encode`.
    fn reference_frame() -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&[0, 0, 0, 116]);
        let mut ty = b"input_stream_data".to_vec();
        ty.resize(32, b' ');
        f.extend_from_slice(&ty);
        f.extend_from_slice(&[0, 0, 0, 1]);
        f.extend_from_slice(&hex("0000015e0baa7884")); // 1503434274948
        f.extend_from_slice(&hex("0000000000000002"));
        f.extend_from_slice(&hex("0000000000000001"));
        f.extend_from_slice(&hex("a508b5f073f31b16")); // second half of the UUID first
        f.extend_from_slice(&hex("dd01e56bff48483e"));
        f.extend_from_slice(&hex(TEST_PAYLOAD_SHA256));
        f.extend_from_slice(&[0, 0, 0, 1]);
        f.extend_from_slice(&[0, 0, 0, 11]);
        f.extend_from_slice(b"testPayload");
        f
    }

    #[test]
    fn golden_reference_frame_encodes_byte_for_byte() {
        let frame = encode(&reference_message()).unwrap();
        let expected = reference_frame();
        assert_eq!(frame.len(), 131);
        for (i, (a, b)) in frame.iter().zip(&expected).enumerate() {
            assert_eq!(a, b, "byte {i} differs");
        }
        assert_eq!(frame, expected);
    }

    #[test]
    fn golden_message_id_halves_are_swapped() {
        let frame = encode(&reference_message()).unwrap();
        assert_eq!(
            &frame[64..72],
            &[0xa5, 0x08, 0xb5, 0xf0, 0x73, 0xf3, 0x1b, 0x16]
        );
        assert_eq!(
            &frame[72..80],
            &[0xdd, 0x01, 0xe5, 0x6b, 0xff, 0x48, 0x48, 0x3e]
        );
        assert_eq!(decode(&frame).unwrap().message_id.to_string(), REF_ID);
    }

    #[test]
    fn golden_reference_frame_decodes() {
        assert_eq!(decode(&reference_frame()).unwrap(), reference_message());
    }

    /// A frame assembled by hand from the layout table, with the values of the
    /// reference tests' round trips (plugin `messageparser_test.go`
    /// TestSerializeAndDeserializeClientMessage, agent `agentmessage_test.go`
    /// TestSerializeAndDeserializeAgentMessage): sequence 1, flags 2, payload "payload".
    fn reference_test_frame(message_type: &str) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&[0, 0, 0, 116]);
        let mut ty = message_type.as_bytes().to_vec();
        ty.resize(32, b' ');
        f.extend_from_slice(&ty);
        f.extend_from_slice(&[0, 0, 0, 1]);
        f.extend_from_slice(&hex("0000015e0baa7884")); // 1503434274948
        f.extend_from_slice(&hex("0000000000000001"));
        f.extend_from_slice(&hex("0000000000000002"));
        f.extend_from_slice(&hex("a508b5f073f31b16dd01e56bff48483e"));
        // `printf payload | sha256sum`, computed outside this code.
        f.extend_from_slice(&hex(
            "239f59ed55e737c77147cf55ad0c1b030b6d7ee748a7426952f9b852d5a935e5",
        ));
        f.extend_from_slice(&[0, 0, 0, 0]);
        f.extend_from_slice(&[0, 0, 0, 7]);
        f.extend_from_slice(b"payload");
        f
    }

    #[test]
    fn golden_frames_of_the_reference_round_trip_tests_decode() {
        for (wire, ty) in [
            ("input_stream_data", MessageType::InputStreamData),
            (
                "interactive_shell",
                MessageType::Unknown("interactive_shell".into()),
            ),
        ] {
            let msg = decode(&reference_test_frame(wire)).unwrap();
            assert_eq!(msg.message_type, ty);
            assert_eq!(msg.schema_version, 1);
            assert_eq!(msg.created_date, REF_CREATED);
            assert_eq!(msg.sequence_number, 1);
            assert_eq!(msg.flags, 2);
            assert_eq!(msg.message_id.to_string(), REF_ID);
            assert_eq!(msg.payload_type, PayloadType::Control);
            assert_eq!(msg.payload, b"payload");
        }
    }

    /// The service's `channel_closed` as a client written against live AWS records it
    /// (mmmorris1975/ssm-session-client, `datachannel/agent_message.go`): HeaderLength
    /// 112, no PayloadType field, a NUL-padded MessageType. Built by hand.
    fn service_channel_closed(json: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&[0, 0, 0, 112]);
        let mut ty = b"channel_closed".to_vec();
        ty.resize(32, 0);
        f.extend_from_slice(&ty);
        f.extend_from_slice(&[0, 0, 0, 1]);
        f.extend_from_slice(&hex("0000015e0baa7884"));
        f.extend_from_slice(&[0; 8]);
        f.extend_from_slice(&hex("0000000000000003"));
        f.extend_from_slice(&hex("a508b5f073f31b16dd01e56bff48483e"));
        f.extend_from_slice(&Sha256::digest(json));
        f.extend_from_slice(&(json.len() as u32).to_be_bytes());
        f.extend_from_slice(json);
        f
    }

    #[test]
    fn golden_service_channel_closed_with_a_112_byte_header_decodes() {
        let json = br#"{"MessageId":"dd01e56b-ff48-483e-a508-b5f073f31b16","CreatedDate":"2024-01-01T00:00:00.000Z","DestinationId":"i-0123456789abcdef0","SessionId":"user-0123456789abcdef0","MessageType":"channel_closed","SchemaVersion":1,"Output":""}"#;
        let f = service_channel_closed(json);
        assert_eq!(f.len(), 116 + json.len());
        let msg = decode(&f).unwrap();
        assert_eq!(msg.message_type, MessageType::ChannelClosed);
        assert_eq!(msg.payload_type, PayloadType::Control);
        assert_eq!(msg.sequence_number, 0);
        assert_eq!(msg.flags, 3);
        assert_eq!(msg.created_date, REF_CREATED);
        assert_eq!(msg.message_id.to_string(), REF_ID);
        assert_eq!(msg.payload, json);
    }

    #[test]
    fn message_type_is_space_padded() {
        let frame = encode(&reference_message()).unwrap();
        assert_eq!(&frame[4..21], b"input_stream_data");
        assert!(frame[21..36].iter().all(|&b| b == b' '));
    }

    fn with_type_field(field: [u8; 32]) -> Vec<u8> {
        let mut f = reference_frame();
        f[4..36].copy_from_slice(&field);
        f
    }

    #[test]
    fn nul_trimmed_message_type() {
        // The reference's string case: 0x00 0x00 'r' 'w' 0x00 … reads as "rw".
        let mut field = [0u8; 32];
        field[2] = b'r';
        field[3] = b'w';
        let msg = decode(&with_type_field(field)).unwrap();
        assert_eq!(msg.message_type, MessageType::Unknown("rw".into()));

        let mut field = [0u8; 32];
        field[..11].copy_from_slice(b"acknowledge");
        assert_eq!(
            decode(&with_type_field(field)).unwrap().message_type,
            MessageType::Acknowledge
        );

        // NULs outside, then whitespace inside the NULs.
        let mut field = [0u8; 32];
        field[1..16].copy_from_slice(b" channel_closed");
        field[16] = b' ';
        assert_eq!(
            decode(&with_type_field(field)).unwrap().message_type,
            MessageType::ChannelClosed
        );
    }

    #[test]
    fn rejects_frames_shorter_than_their_header() {
        assert_eq!(
            decode(&[]),
            Err(CodecError::TooShort {
                len: 0,
                needed: 116
            })
        );
        let f = reference_frame();
        assert_eq!(
            decode(&f[..115]),
            Err(CodecError::TooShort {
                len: 115,
                needed: 116
            })
        );
        // A header that claims to be longer than the frame.
        let mut f = reference_frame();
        f[..4].copy_from_slice(&4000u32.to_be_bytes());
        assert_eq!(
            decode(&f),
            Err(CodecError::TooShort {
                len: 131,
                needed: 4004
            })
        );
        f[..4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(decode(&f), Err(CodecError::TooShort { .. })));
    }

    #[test]
    fn rejects_header_lengths_below_112() {
        let mut f = reference_frame();
        f[3] = 0;
        assert_eq!(decode(&f), Err(CodecError::HeaderLength { found: 0 }));
        f[3] = 111;
        assert_eq!(decode(&f), Err(CodecError::HeaderLength { found: 111 }));
    }

    #[test]
    fn a_longer_header_moves_the_payload() {
        // HeaderLength 120: four bytes of some future field after PayloadType, then
        // PayloadLength at 120 and the payload at 124.
        let mut f = reference_frame();
        f[..4].copy_from_slice(&120u32.to_be_bytes());
        f.splice(116..116, [0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(decode(&f).unwrap(), reference_message());
    }

    #[test]
    fn rejects_a_payload_shorter_than_declared() {
        let f = reference_frame();
        assert_eq!(
            decode(&f[..125]),
            Err(CodecError::PayloadLength {
                declared: 11,
                actual: 5
            })
        );
    }

    #[test]
    fn the_payload_runs_to_the_end_of_the_message() {
        // The reference slices from HeaderLength + 4 to the end, so trailing bytes are
        // payload: here they break the digest…
        let mut f = reference_frame();
        f.push(b'!');
        assert_eq!(decode(&f), Err(CodecError::DigestMismatch));
        // …and with a digest over all of it the frame is good.
        f[80..112].copy_from_slice(&Sha256::digest(b"testPayload!"));
        assert_eq!(decode(&f).unwrap().payload, b"testPayload!");
    }

    #[test]
    fn rejects_bad_digest() {
        let mut f = reference_frame();
        f[80] ^= 0xff;
        assert_eq!(decode(&f), Err(CodecError::DigestMismatch));
        let mut f = reference_frame();
        let last = f.len() - 1;
        f[last] = b'X';
        assert_eq!(decode(&f), Err(CodecError::DigestMismatch));
    }

    #[test]
    fn digest_is_not_checked_when_payload_length_is_zero() {
        let mut msg = reference_message();
        msg.payload.clear();
        let mut f = encode(&msg).unwrap();
        assert_eq!(
            &f[80..112],
            hex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855").as_slice(),
            "writers fill the digest of the empty string"
        );
        f[80..112].fill(0);
        assert_eq!(decode(&f).unwrap(), msg);
        // The reference decides on the PayloadLength field, not on the bytes present.
        let mut f = reference_frame();
        f[116..120].fill(0);
        f[80..112].fill(0);
        assert_eq!(decode(&f).unwrap().payload, b"testPayload");
    }

    #[test]
    fn rejects_empty_message_type() {
        assert_eq!(
            decode(&with_type_field([b' '; 32])),
            Err(CodecError::EmptyMessageType)
        );
        assert_eq!(
            decode(&with_type_field([0; 32])),
            Err(CodecError::EmptyMessageType)
        );
        let mut msg = reference_message();
        msg.message_type = MessageType::Unknown(String::new());
        assert_eq!(encode(&msg), Err(CodecError::EmptyMessageType));
    }

    #[test]
    fn rejects_zero_created_date() {
        let mut f = reference_frame();
        f[40..48].fill(0);
        assert_eq!(decode(&f), Err(CodecError::ZeroCreatedDate));
    }

    #[test]
    fn rejects_non_ascii_message_type() {
        let mut field = [b' '; 32];
        field[..3].copy_from_slice(b"ack");
        field[3] = 0xe9;
        assert_eq!(
            decode(&with_type_field(field)),
            Err(CodecError::NonAsciiMessageType)
        );
        let mut msg = reference_message();
        msg.message_type = MessageType::Unknown("acknowledg\u{e9}".into());
        assert_eq!(encode(&msg), Err(CodecError::NonAsciiMessageType));
    }

    #[test]
    fn rejects_long_message_type_on_encode() {
        let mut msg = reference_message();
        msg.message_type = MessageType::Unknown("x".repeat(33));
        assert_eq!(
            encode(&msg),
            Err(CodecError::MessageTypeTooLong { len: 33 })
        );
        msg.message_type = MessageType::Unknown("x".repeat(32));
        let f = encode(&msg).unwrap();
        assert_eq!(decode(&f).unwrap(), msg);
    }

    #[test]
    fn publication_messages_skip_validation() {
        for ty in [MessageType::StartPublication, MessageType::PausePublication] {
            let mut msg = reference_message();
            msg.message_type = ty.clone();
            msg.created_date = 0;
            let mut f = encode(&msg).unwrap();
            f[80..112].fill(0); // bad digest too
            assert_eq!(decode(&f).unwrap(), msg, "{ty}");
        }
        // …but the exemption is only for those two.
        let mut msg = reference_message();
        msg.message_type = MessageType::Acknowledge;
        msg.created_date = 0;
        assert_eq!(
            decode(&encode(&msg).unwrap()),
            Err(CodecError::ZeroCreatedDate)
        );
    }

    #[test]
    fn negative_sequence_numbers_round_trip() {
        let mut msg = reference_message();
        msg.sequence_number = -1;
        let f = encode(&msg).unwrap();
        assert_eq!(&f[48..56], &[0xff; 8]);
        assert_eq!(decode(&f).unwrap(), msg);
    }

    #[test]
    fn payload_types_map_both_ways() {
        for v in 0..=20u32 {
            assert_eq!(PayloadType::from_u32(v).to_u32(), v);
        }
        assert_eq!(PayloadType::from_u32(10), PayloadType::Flag);
        assert_eq!(PayloadType::from_u32(12), PayloadType::ExitCode);
        assert_eq!(PayloadType::from_u32(99), PayloadType::Unknown(99));
    }

    fn arb_message_type() -> impl Strategy<Value = MessageType> {
        prop_oneof![
            Just(MessageType::InputStreamData),
            Just(MessageType::OutputStreamData),
            Just(MessageType::Acknowledge),
            Just(MessageType::ChannelClosed),
            Just(MessageType::StartPublication),
            Just(MessageType::PausePublication),
            Just(MessageType::AgentSessionState),
            // Printable, no surrounding whitespace, so it survives trimming.
            "[!-~]([ -~]{0,30}[!-~])?".prop_map(|s| MessageType::parse(&s)),
        ]
    }

    fn arb_message() -> impl Strategy<Value = Message> {
        (
            arb_message_type(),
            any::<u32>(),
            1..=u64::MAX,
            any::<i64>(),
            any::<u64>(),
            any::<u128>(),
            any::<u32>(),
            proptest::collection::vec(any::<u8>(), 0..2048),
        )
            .prop_map(|(ty, sv, cd, seq, flags, id, pt, payload)| Message {
                message_type: ty,
                schema_version: sv,
                created_date: cd,
                sequence_number: seq,
                flags,
                message_id: Uuid::from_u128(id),
                payload_type: PayloadType::from_u32(pt),
                payload,
            })
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn decode_never_panics_on_mutated_frames(
            msg in arb_message(),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut f = encode(&msg).unwrap();
            for (i, b) in flips {
                let at = i.index(f.len());
                f[at] = b;
            }
            let keep = cut.index(f.len() + 1);
            let _ = decode(&f[..keep]);
            let _ = decode(&f);
        }

        #[test]
        fn encode_decode_round_trip(msg in arb_message()) {
            let f = encode(&msg).unwrap();
            prop_assert_eq!(f.len(), HEADER_SIZE + msg.payload.len());
            prop_assert_eq!(decode(&f).unwrap(), msg);
        }
    }
}
