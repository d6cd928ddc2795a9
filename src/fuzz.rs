//! Entry points of the fuzz targets in `fuzz/` (cargo fuzz), shared with the normal
//! test suite, which replays the seeds and every input a fuzz run found crashing
//! (`fuzz/seeds/`, `fuzz/regressions/`; see `tests/it/fuzz_regressions.rs`). Each
//! takes arbitrary bytes and must not panic; the asserts are properties a decoder
//! owes its callers (what decodes re-encodes to the same thing, the simulator answers
//! well-formed XML).

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use crate::session::channel::{Channel, ChannelConfig, Role};
use crate::session::client::ClientSession;
use crate::session::codec::{self, Message, MessageType, PayloadType};
use crate::session::{messages, smux};
use crate::sim::{self, FleetFile, SimOptions, SimState};

/// A target's entry point.
pub type Target = fn(&[u8]);

/// The targets, by the name `fuzz/fuzz_targets/NAME.rs` and `scripts/fuzz.sh` use.
pub const TARGETS: [(&str, Target); 5] = [
    ("frame_decode", frame_decode),
    ("channel_frames", channel_frames),
    ("smux_decode", smux_decode),
    ("json_payloads", json_payloads),
    ("sim_requests", sim_requests),
];

/// Reads fuzz input as a sequence of small decisions; runs dry as zeros.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    fn u64(&mut self) -> u64 {
        (0..8).fold(0, |acc, _| acc << 8 | u64::from(self.u8()))
    }

    /// Up to `max` bytes, the length read first.
    fn slice(&mut self, max: usize) -> &[u8] {
        let n = (self.u16() as usize).min(max).min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One frame through the decoder. What decodes re-encodes, and decodes back the same,
/// except that the MessageType is read back the reference's way (NULs trimmed from
/// the padded field's ends, then spaces: messageparser.go `getString`), which is not
/// idempotent for a type with NULs inside (a fuzz finding, kept in fuzz/regressions).
pub fn frame_decode(data: &[u8]) {
    let Ok(msg) = codec::decode(data) else { return };
    let Ok(frame) = codec::encode(&msg) else {
        return;
    };
    let padded = format!("{:<32}", msg.message_type.as_str());
    let read_back = padded.trim_matches('\0').trim_ascii();
    let again = match codec::decode(&frame) {
        Ok(again) => again,
        // A type of NULs and spaces only reads back empty, which is refused.
        Err(e) => {
            assert!(
                read_back.is_empty(),
                "an encoded frame does not decode: {e}"
            );
            return;
        }
    };
    assert_eq!(
        again.message_type.as_str(),
        read_back,
        "message type read back"
    );
    let same = |m: &Message| {
        (
            m.schema_version,
            m.created_date,
            m.sequence_number,
            m.flags,
            m.message_id,
            m.payload_type.to_u32(),
            m.payload.clone(),
        )
    };
    assert_eq!(same(&again), same(&msg), "decode(encode(m)) != m");
}

const TYPES: [&str; 8] = [
    "output_stream_data",
    "input_stream_data",
    "acknowledge",
    "channel_closed",
    "start_publication",
    "pause_publication",
    "agent_session_state",
    "",
];

/// A frame built from the input: mostly well-formed, so the fuzzer reaches the
/// channel's logic (sequencing, acknowledgements, handshake) and not only the codec.
fn frame_from(b: &mut Bytes, now_ms: u64) -> Vec<u8> {
    let kind = b.u8();
    if kind.is_multiple_of(4) {
        return b.slice(4096).to_vec();
    }
    let message_type = match TYPES[usize::from(b.u8()) % TYPES.len()] {
        "" => MessageType::parse(&String::from_utf8_lossy(b.slice(40))),
        t => MessageType::parse(t),
    };
    let sequence = i64::from(b.u8() % 16) - 2;
    let payload_type = PayloadType::from_u32(u32::from(b.u8() % 24));
    let payload = match b.u8() % 4 {
        // An acknowledgement of a sequence number.
        0 => serde_json::json!({
            "AcknowledgedMessageType": "input_stream_data",
            "AcknowledgedMessageId": "00000000-0000-0000-0000-000000000000",
            "AcknowledgedMessageSequenceNumber": i64::from(b.u8() % 16) - 1,
            "IsSequentialMessage": true,
        })
        .to_string()
        .into_bytes(),
        // A handshake request.
        1 => {
            let action = ["SessionType", "KMSEncryption", "x"][usize::from(b.u8() % 3)];
            serde_json::json!({
            "AgentVersion": String::from_utf8_lossy(b.slice(16)),
            "RequestedClientActions": [{
                "ActionType": action,
                "ActionParameters": { "SessionType": "Port", "Properties": {} },
            }],
            })
            .to_string()
            .into_bytes()
        }
        _ => b.slice(2048).to_vec(),
    };
    let msg = Message::new(
        message_type,
        now_ms,
        sequence,
        b.u64() % 4,
        payload_type,
        payload,
    );
    codec::encode(&msg).unwrap_or_default()
}

/// Both ends of the data channel fed a sequence of frames, time steps, sends and
/// resumes: the client session (handshake, flags, output) and a bare agent channel.
pub fn channel_frames(data: &[u8]) {
    let epoch_ms = 1_700_000_000_000;
    let mut b = Bytes(data);
    let mut client = ClientSession::new(epoch_ms);
    let mut agent = Channel::new(ChannelConfig::new(Role::Agent, epoch_ms));
    let mut now = Duration::ZERO;
    let mut steps = 0;
    while !b.is_empty() && steps < 512 {
        steps += 1;
        let now_ms = epoch_ms + now.as_millis() as u64;
        match b.u8() % 6 {
            0 | 1 => {
                let frame = frame_from(&mut b, now_ms);
                let _ = client.handle_frame(now, &frame);
                let _ = agent.handle_frame(now, &frame);
            }
            2 => {
                now += Duration::from_millis(u64::from(b.u16()));
                client.handle_timeout(now);
                agent.handle_timeout(now);
            }
            3 => {
                let bytes = b.slice(4096).to_vec();
                let _ = client.send_data(now, &bytes);
                let _ = agent.send(now, PayloadType::Output, bytes);
            }
            4 => {
                client.resume(now);
                agent.resume(now);
            }
            _ => {
                // What one side sends, the other receives.
                while let Some(frame) = client.poll_transmit() {
                    let _ = agent.handle_frame(now, &frame);
                }
                while let Some(frame) = agent.poll_transmit() {
                    let _ = client.handle_frame(now, &frame);
                }
            }
        }
        while client.poll_event().is_some() {}
        while agent.poll_event().is_some() {}
        let _ = (client.poll_timeout(), agent.poll_timeout());
    }
    while client.poll_transmit().is_some() {}
}

/// smux bytes in arbitrary chunks through the decoder and the stream table; what a
/// frame encodes to decodes back.
pub fn smux_decode(data: &[u8]) {
    let mut b = Bytes(data);
    let chunk = usize::from(b.u8()).max(1);
    let rest = b.0;
    let mut decoder = smux::Decoder::default();
    for part in rest.chunks(chunk) {
        decoder.push(part);
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => {
                    let mut out = Vec::new();
                    smux::encode(frame.cmd, frame.stream, &frame.data, &mut out);
                    let mut again = smux::Decoder::default();
                    again.push(&out);
                    assert_eq!(again.next_frame(), Ok(Some(frame)), "smux round trip");
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    for role in [smux::Role::Client, smux::Role::Server] {
        let mut mux = smux::Mux::new(role);
        let _ = mux.open();
        for part in rest.chunks(chunk) {
            if mux.receive(part).is_err() {
                break;
            }
            while mux.poll_event().is_some() {}
        }
    }
}

/// Every JSON document the client and the simulator read, and the flag payload.
pub fn json_payloads(data: &[u8]) {
    let _ = serde_json::from_slice::<messages::OpenDataChannelInput>(data);
    let _ = serde_json::from_slice::<messages::AcknowledgeContent>(data);
    let _ = serde_json::from_slice::<messages::ChannelClosed>(data);
    let _ = serde_json::from_slice::<messages::HandshakeRequest>(data);
    let _ = serde_json::from_slice::<messages::HandshakeResponse>(data);
    let _ = serde_json::from_slice::<messages::HandshakeComplete>(data);
    let _ = serde_json::from_slice::<messages::SessionTypeRequest>(data);
    let _ = messages::Flag::from_payload(data);
    let _ = sim::parse_json_body(data);
}

/// The simulator, shared by every run (its fleet is read-only to these calls).
fn state() -> &'static SimState {
    static STATE: OnceLock<SimState> = OnceLock::new();
    STATE.get_or_init(|| {
        let opts = SimOptions {
            access_key: Some(crate::aws::AccessKey::new("AKIAFUZZ", "fuzz-secret")),
            ..SimOptions::default()
        };
        SimState::new(
            FleetFile::demo(),
            opts,
            SocketAddr::from(([127, 0, 0, 1], 9)),
        )
    })
}

/// The simulator's request parsers as its socket exposes them: query-protocol form
/// bodies (EC2, STS), JSON 1.1 bodies, and SigV4 headers and query strings. Every
/// XML answer is well-formed.
pub fn sim_requests(data: &[u8]) {
    /// The account the fuzzed requests come from.
    const A: &str = sim::auth::ACCOUNT_ID;
    let state = state();
    let mut b = Bytes(data);
    let op = b.u8();
    let body = b.0;
    match op % 3 {
        0 => {
            let params: sim::ec2::Params = form_urlencoded::parse(body).into_owned().collect();
            for xml in [
                sim::ec2::describe_instances(state, A, "us-east-1", &params),
                sim::vpc::describe_route_tables(state, "us-east-1", &params),
                sim::vpc::describe_vpc_endpoints(state, "us-east-1", &params),
                sim::vpc::describe_vpc_attribute(state, "us-east-1", &params),
                sim::vpc::describe_security_groups(state, "us-east-1", &params),
            ]
            .into_iter()
            .flatten()
            {
                assert!(well_formed_xml(&xml), "malformed XML: {xml}");
            }
        }
        1 => {
            let Ok(req) = sim::parse_json_body(body) else {
                return;
            };
            let _ = sim::ssm::describe_instance_information(state, A, "us-east-1", &req);
            let _ = sim::sessions::describe_sessions(state, A, &req);
            let _ = sim::sessions::resume_session(state, A, &req);
            let _ = sim::sessions::terminate_session(state, A, &req);
            let _ = sim::instance_connect::send_ssh_public_key(state, A, "us-east-1", &req);
        }
        _ => {
            // Headers as `name: value` lines, then the URI, then the body.
            let text = String::from_utf8_lossy(b.slice(4096)).into_owned();
            let mut headers = axum::http::HeaderMap::new();
            let mut uri = "/".to_string();
            for line in text.lines() {
                match line.split_once(':') {
                    Some((k, v)) => {
                        if let (Ok(k), Ok(v)) = (
                            axum::http::HeaderName::from_bytes(k.trim().as_bytes()),
                            axum::http::HeaderValue::from_str(v.trim()),
                        ) {
                            headers.append(k, v);
                        }
                    }
                    None => uri = line.to_string(),
                }
            }
            let req = sim::auth::Request {
                method: "POST",
                uri: &uri,
                headers: &headers,
                body: b.0,
            };
            let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
            let _ = sim::auth::verify(&state.accounts, &req, "ssm", now);
        }
    }
}

/// Tags balance, every token is well-formed (xmlparser, the SDK's own XML tokenizer).
pub fn well_formed_xml(xml: &str) -> bool {
    let mut open: Vec<&str> = Vec::new();
    let mut roots = 0;
    for token in xmlparser::Tokenizer::from(xml) {
        match token {
            Err(_) => return false,
            Ok(xmlparser::Token::ElementStart { local, .. }) => {
                if open.is_empty() {
                    roots += 1;
                }
                open.push(local.as_str());
            }
            Ok(xmlparser::Token::ElementEnd { end, .. }) => match end {
                xmlparser::ElementEnd::Open => {}
                xmlparser::ElementEnd::Close(_, local) => {
                    if open.pop() != Some(local.as_str()) {
                        return false;
                    }
                }
                xmlparser::ElementEnd::Empty => {
                    open.pop();
                }
            },
            Ok(_) => {}
        }
    }
    open.is_empty() && roots == 1
}
