use super::*;
use crate::session::codec::{self, Message, MessageType};
use crate::session::messages::{AcknowledgeContent, ChannelClosed};
use crate::session::testnet::{earliest, random_bytes, seeds, Dir, Net};
use rand::Rng;
use serde_json::{json, Value};

const EPOCH_MS: u64 = 1_700_000_000_000;

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn session() -> ClientSession {
    ClientSession::new(EPOCH_MS)
}

/// Stand-in for the agent's side of the stream, driven message by message.
struct Peer {
    ch: Channel,
}

impl Peer {
    fn new() -> Self {
        Self {
            ch: Channel::new(ChannelConfig::new(Role::Agent, EPOCH_MS)),
        }
    }

    fn frame(&mut self, payload_type: PayloadType, payload: &[u8]) -> Vec<u8> {
        self.ch
            .send_unlimited(ms(0), payload_type, payload.to_vec())
            .unwrap();
        self.ch.poll_transmit().unwrap().into()
    }

    fn json(&mut self, payload_type: PayloadType, value: Value) -> Vec<u8> {
        self.frame(payload_type, &serde_json::to_vec(&value).unwrap())
    }

    fn port_request(&mut self, agent_version: &str, props: Value) -> Vec<u8> {
        self.json(
            PayloadType::HandshakeRequest,
            json!({"AgentVersion": agent_version, "RequestedClientActions": [
                {"ActionType": "SessionType",
                 "ActionParameters": {"SessionType": "Port", "Properties": props}}]}),
        )
    }

    fn complete(&mut self, message: &str) -> Vec<u8> {
        self.json(
            PayloadType::HandshakeComplete,
            json!({"HandshakeTimeToComplete": 2_000_000, "CustomerMessage": message}),
        )
    }
}

/// Stream messages (not acks) the session wants to transmit.
fn stream_out(s: &mut ClientSession) -> Vec<Message> {
    std::iter::from_fn(|| s.poll_transmit())
        .map(|f| codec::decode(&f).unwrap())
        .filter(|m| m.message_type == MessageType::InputStreamData)
        .collect()
}

fn events(s: &mut ClientSession) -> Vec<Event> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

fn handshake_port(s: &mut ClientSession, peer: &mut Peer) -> Message {
    let req = peer.port_request("3.3.987.0", json!({"portNumber": "22"}));
    s.handle_frame(ms(1), &req).unwrap();
    let out = stream_out(s);
    assert_eq!(out.len(), 1);
    out.into_iter().next().unwrap()
}

#[test]
fn open_data_channel_frame() {
    let s = session();
    let first: Value = serde_json::from_str(&s.open_data_channel("tok-1")).unwrap();
    let second: Value = serde_json::from_str(&s.open_data_channel("tok-2")).unwrap();
    assert_eq!(first["MessageSchemaVersion"], "1.0");
    assert_eq!(first["TokenValue"], "tok-1");
    assert_eq!(first["ClientVersion"], CLIENT_VERSION);
    assert_eq!(first["ClientId"], s.client_id().to_string());
    assert_eq!(first["ClientId"], second["ClientId"], "ClientId kept");
    assert_ne!(first["RequestId"], second["RequestId"], "RequestId fresh");
    let rid = first["RequestId"].as_str().unwrap();
    assert_eq!(Uuid::parse_str(rid).unwrap().hyphenated().to_string(), rid);
    assert_eq!(first.as_object().unwrap().len(), 5);
}

#[test]
fn client_version_selects_basic_port_mode_on_the_agent() {
    // The agent uses mux only for ClientVersion >= 1.1.70 (and smux keepalive off
    // only above 1.2.331.0); make sure the constant stays below the mux gate.
    let cmp = |a: &str, b: &str| {
        let p = |v: &str| -> Vec<u64> { v.split('.').map(|x| x.parse().unwrap()).collect() };
        p(a).cmp(&p(b))
    };
    assert_eq!(cmp(CLIENT_VERSION, "1.1.70"), std::cmp::Ordering::Less);
    assert_eq!(cmp(CLIENT_VERSION, "1.1.35"), std::cmp::Ordering::Greater);
}

#[test]
fn port_forwarding_claims_the_version_for_the_agents_mode() {
    // The agent picks smux from our HandshakeResponse's ClientVersion (>= 1.1.70), so
    // the claim follows the HandshakeRequest's AgentVersion by the plugin's rule.
    let forwarding =
        json!({"portNumber": "80", "type": "LocalPortForwarding", "localPortNumber": "0"});
    for (agent, claimed) in [
        ("3.3.1611.0", MUX_CLIENT_VERSION),
        ("3.0.222.0", MUX_CLIENT_VERSION),
        ("3.0.196.0", CLIENT_VERSION),
        ("3.0.161.0", CLIENT_VERSION),
        ("3.1", CLIENT_VERSION),
        ("garbage", CLIENT_VERSION),
    ] {
        let mut s = session();
        let mut peer = Peer::new();
        s.handle_frame(ms(1), &peer.port_request(agent, forwarding.clone()))
            .unwrap();
        let resp: HandshakeResponse =
            serde_json::from_slice(&stream_out(&mut s)[0].payload).unwrap();
        assert_eq!(resp.client_version, claimed, "agent {agent}");
        assert_eq!(s.claimed_client_version(), claimed);
        assert_eq!(agent_multiplexes(agent), claimed == MUX_CLIENT_VERSION);
    }
    // A standard-stream port session (AWS-StartSSHSession) keeps the configured one.
    let mut s = session();
    let mut peer = Peer::new();
    s.handle_frame(
        ms(1),
        &peer.port_request("3.3.1611.0", json!({"portNumber": "22"})),
    )
    .unwrap();
    assert_eq!(s.claimed_client_version(), CLIENT_VERSION);
}

#[test]
fn port_handshake_response_has_the_reference_shape() {
    let mut s = session();
    let mut peer = Peer::new();
    let resp = handshake_port(&mut s, &mut peer);
    assert_eq!(resp.sequence_number, 0);
    assert_eq!(resp.payload_type, PayloadType::HandshakeResponse);
    let body: Value = serde_json::from_slice(&resp.payload).unwrap();
    assert_eq!(
        body,
        json!({"ClientVersion": CLIENT_VERSION,
               "ProcessedClientActions": [{"ActionType": "SessionType", "ActionStatus": 1,
                                           "ActionResult": null, "Error": ""}],
               "Errors": null})
    );
    assert_eq!(s.agent_version(), Some("3.3.987.0"));
    assert_eq!(
        s.session_type(),
        Some(&SessionType::Port(PortProperties {
            port_number: Some("22".into()),
            ..PortProperties::default()
        }))
    );
    assert!(!s.is_established());
    assert!(events(&mut s).is_empty());
}

#[test]
fn shell_session_types_are_accepted() {
    for (name, expected) in [
        ("Standard_Stream", SessionType::StandardStream),
        ("InteractiveCommands", SessionType::InteractiveCommands),
        (
            "NonInteractiveCommands",
            SessionType::NonInteractiveCommands,
        ),
    ] {
        let mut s = session();
        let mut peer = Peer::new();
        let req = peer.json(
            PayloadType::HandshakeRequest,
            json!({"AgentVersion": "3.3.987.0", "RequestedClientActions": [
                {"ActionType": "SessionType",
                 "ActionParameters": {"SessionType": name, "Properties": {"commands": "ls"}}}]}),
        );
        s.handle_frame(ms(0), &req).unwrap();
        let body: HandshakeResponse =
            serde_json::from_slice(&stream_out(&mut s)[0].payload).unwrap();
        assert_eq!(
            body.processed_client_actions[0].action_status,
            ActionStatus::Success,
            "{name}"
        );
        assert_eq!(s.session_type(), Some(&expected));
    }
}

#[test]
fn unknown_session_type_and_kms_are_refused() {
    let mut s = session();
    let mut peer = Peer::new();
    let req = peer.json(
        PayloadType::HandshakeRequest,
        json!({"AgentVersion": "3.3.987.0", "RequestedClientActions": [
            {"ActionType": "SessionType",
             "ActionParameters": {"SessionType": "Teleport", "Properties": {}}},
            {"ActionType": "KMSEncryption",
             "ActionParameters": {"KMSKeyId": "arn:aws:kms:k", "Challenge": "AA=="}},
            {"ActionType": "SomethingNew", "ActionParameters": null}]}),
    );
    s.handle_frame(ms(0), &req).unwrap();
    let body: Value = serde_json::from_slice(&stream_out(&mut s)[0].payload).unwrap();
    let actions = body["ProcessedClientActions"].as_array().unwrap();
    assert_eq!(actions.len(), 3);
    assert_eq!(actions[0]["ActionStatus"], 2);
    assert_eq!(actions[1]["ActionType"], "KMSEncryption");
    assert_eq!(actions[1]["ActionStatus"], 3);
    assert_eq!(actions[1]["ActionResult"], Value::Null);
    assert_eq!(actions[2]["ActionStatus"], 3);
    assert_eq!(body["Errors"].as_array().unwrap().len(), 3);
    match events(&mut s).as_slice() {
        [Event::HandshakeFailed(msg)] => assert!(msg.contains("Teleport"), "{msg}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_agents_action_names_are_sanitised_before_they_reach_the_user() {
    let mut s = session();
    let mut peer = Peer::new();
    let req = peer.json(
        PayloadType::HandshakeRequest,
        json!({"AgentVersion": "3.3.987.0", "RequestedClientActions": [
            {"ActionType": "Evil\u{1b}]0;owned\u{7}", "ActionParameters": null},
            {"ActionType": "SessionType",
             "ActionParameters": {"SessionType": "X\u{1b}[2J", "Properties": {}}}]}),
    );
    s.handle_frame(ms(0), &req).unwrap();
    match events(&mut s).as_slice() {
        [Event::HandshakeFailed(msg)] => {
            assert!(!msg.chars().any(|c| c.is_control()), "{msg:?}");
            assert!(msg.contains("Evil␛]0;owned␇"), "{msg}");
            assert!(msg.contains("X␛[2J"), "{msg}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn unreadable_handshake_request_is_reported() {
    let mut s = session();
    let mut peer = Peer::new();
    let req = peer.frame(PayloadType::HandshakeRequest, b"not json");
    s.handle_frame(ms(0), &req).unwrap();
    assert!(stream_out(&mut s).is_empty());
    assert!(matches!(
        events(&mut s).as_slice(),
        [Event::HandshakeFailed(_)]
    ));
}

#[test]
fn input_is_held_back_until_the_handshake_completes() {
    let mut s = session();
    let mut peer = Peer::new();
    s.send_data(ms(0), b"SSH-2.0-early\r\n").unwrap();
    s.send_flag(ms(0), Flag::DisconnectToPort).unwrap();
    assert!(
        s.poll_transmit().is_none(),
        "nothing before the agent speaks"
    );

    let resp = handshake_port(&mut s, &mut peer);
    assert_eq!(resp.payload_type, PayloadType::HandshakeResponse);
    s.send_data(ms(2), b"more").unwrap();
    assert!(
        stream_out(&mut s).is_empty(),
        "still held while handshaking"
    );
    assert!(!s.is_flushed());

    s.handle_frame(ms(3), &peer.complete("Hi there")).unwrap();
    assert!(s.is_established());
    let out = stream_out(&mut s);
    let seen: Vec<(i64, PayloadType, Vec<u8>)> = out
        .into_iter()
        .map(|m| (m.sequence_number, m.payload_type, m.payload))
        .collect();
    assert_eq!(
        seen,
        vec![
            (1, PayloadType::Output, b"SSH-2.0-early\r\n".to_vec()),
            (2, PayloadType::Flag, vec![0, 0, 0, 1]),
            (3, PayloadType::Output, b"more".to_vec()),
        ]
    );
    assert_eq!(
        events(&mut s),
        vec![Event::HandshakeComplete {
            customer_message: "Hi there".into(),
            time_to_complete: ms(2),
        }]
    );
    // After the handshake, input goes straight out.
    s.send_data(ms(4), b"x").unwrap();
    assert_eq!(stream_out(&mut s)[0].sequence_number, 4);
}

#[test]
fn shell_output_first_means_no_handshake() {
    let mut s = session();
    let mut peer = Peer::new();
    s.send_size(ms(0), 120, 40).unwrap();
    s.send_data(ms(0), b"ls\r").unwrap();
    assert!(s.poll_transmit().is_none());
    s.handle_frame(ms(1), &peer.frame(PayloadType::Output, b"$ "))
        .unwrap();
    assert_eq!(events(&mut s), vec![Event::Data(b"$ ".to_vec())]);
    assert!(s.is_established());
    assert_eq!(s.session_type(), Some(&SessionType::StandardStream));
    assert_eq!(s.agent_version(), None);
    let out = stream_out(&mut s);
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].payload_type, PayloadType::Size);
    assert_eq!(
        serde_json::from_slice::<Value>(&out[0].payload).unwrap(),
        json!({"cols": 120, "rows": 40})
    );
    assert_eq!(out[1].payload, b"ls\r");
}

#[test]
fn agent_output_kinds_become_events() {
    let mut s = session();
    let mut peer = Peer::new();
    handshake_port(&mut s, &mut peer);
    s.handle_frame(ms(2), &peer.complete("")).unwrap();
    events(&mut s);
    for f in [
        peer.frame(PayloadType::Output, b"out"),
        peer.frame(PayloadType::StdErr, b"err"),
        peer.frame(PayloadType::ExitCode, b"EXIT_CODE: 3"),
        peer.frame(PayloadType::Flag, &[0, 0, 0, 3]),
        peer.frame(PayloadType::Flag, &[9]), // malformed: acked, ignored
        peer.frame(PayloadType::Parameter, b"?"),
    ] {
        s.handle_frame(ms(3), &f).unwrap();
    }
    assert_eq!(
        events(&mut s),
        vec![
            Event::Data(b"out".to_vec()),
            Event::Stderr(b"err".to_vec()),
            Event::ExitCode("EXIT_CODE: 3".into()),
            Event::Flag(Flag::ConnectToPortError),
        ]
    );
}

#[test]
fn terminate_flag_and_agent_version_gate() {
    let mut s = session();
    assert!(!s.supports_terminate_flag(), "unknown agent version");
    let mut peer = Peer::new();
    handshake_port(&mut s, &mut peer);
    assert!(s.supports_terminate_flag());
    s.handle_frame(ms(2), &peer.complete("")).unwrap();
    s.send_flag(ms(3), Flag::TerminateSession).unwrap();
    let out = stream_out(&mut s);
    assert_eq!(out[0].payload_type, PayloadType::Flag);
    assert_eq!(out[0].payload, vec![0, 0, 0, 2]);

    for (version, ok) in [
        ("2.3.722.0", false),
        ("2.3.722.1", true),
        ("2.3.722", false),
        ("x.y", false),
    ] {
        let mut s = session();
        let mut peer = Peer::new();
        s.handle_frame(
            ms(0),
            &peer.port_request(version, json!({"portNumber": "22"})),
        )
        .unwrap();
        assert_eq!(s.supports_terminate_flag(), ok, "{version}");
    }
}

#[test]
fn version_comparison_matches_the_reference() {
    assert!(version_greater("3.0.197.0", "3.0.196.0"));
    assert!(!version_greater("3.0.196.0", "3.0.196.0"));
    assert!(
        version_greater("3.10.0.0", "3.9.0.0"),
        "numeric, not lexical"
    );
    assert!(
        !version_greater("4.0.0", "3.0.196.0"),
        "component count differs"
    );
    assert!(!version_greater("3.0.x.0", "3.0.196.0"));
    assert!(!version_greater("", "1"));
}

#[test]
fn data_is_chunked_to_1024_bytes() {
    let mut s = session();
    let mut peer = Peer::new();
    handshake_port(&mut s, &mut peer);
    s.handle_frame(ms(2), &peer.complete("")).unwrap();
    let data: Vec<u8> = (0..2500u32).map(|i| i as u8).collect();
    s.send_data(ms(3), &data).unwrap();
    let out = stream_out(&mut s);
    let sizes: Vec<usize> = out.iter().map(|m| m.payload.len()).collect();
    assert_eq!(sizes, vec![1024, 1024, 452]);
    let joined: Vec<u8> = out.into_iter().flat_map(|m| m.payload).collect();
    assert_eq!(joined, data);
}

#[test]
fn back_pressure_counts_held_input_and_signals_writable() {
    let mut config = ChannelConfig::new(Role::Client, EPOCH_MS);
    config.send_buffer_limit = 3;
    let mut s = ClientSession::with_config(config, Uuid::new_v4());
    let mut peer = Peer::new();
    s.send_data(ms(0), b"a").unwrap();
    s.send_data(ms(0), b"b").unwrap();
    s.send_data(ms(0), b"c").unwrap();
    assert!(!s.can_send());
    assert_eq!(s.send_data(ms(0), b"d"), Err(SendError::Full));

    handshake_port(&mut s, &mut peer);
    s.handle_frame(ms(2), &peer.complete("")).unwrap();
    assert!(!events(&mut s).contains(&Event::Writable));
    let out = stream_out(&mut s);
    assert_eq!(out.len(), 3);
    // Acks for the handshake response and the first data message free room.
    for seq in [0, 1] {
        let ack = AcknowledgeContent {
            message_type: "input_stream_data".into(),
            message_id: String::new(),
            sequence_number: seq,
            is_sequential_message: true,
        };
        let f = codec::control_frame(
            MessageType::Acknowledge,
            EPOCH_MS,
            serde_json::to_vec(&ack).unwrap(),
        )
        .unwrap();
        s.handle_frame(ms(5), &f).unwrap();
    }
    assert!(s.can_send());
    assert_eq!(events(&mut s), vec![Event::Writable]);
}

#[test]
fn channel_closed_is_surfaced_with_its_reason() {
    let mut s = session();
    s.send_data(ms(0), b"held").unwrap();
    let body = serde_json::to_vec(&ChannelClosed {
        output: "Session i-0abc was terminated".into(),
        ..ChannelClosed::default()
    })
    .unwrap();
    let f = codec::control_frame(MessageType::ChannelClosed, EPOCH_MS, body).unwrap();
    s.handle_frame(ms(1), &f).unwrap();
    assert_eq!(
        events(&mut s),
        vec![Event::Closed {
            reason: "Session i-0abc was terminated".into()
        }]
    );
    assert!(s.is_closed());
    assert_eq!(s.send_data(ms(2), b"x"), Err(SendError::Closed));
    assert_eq!(
        s.send_flag(ms(2), Flag::TerminateSession),
        Err(SendError::Closed)
    );
}

#[test]
fn resume_keeps_session_and_sequence_state() {
    let mut s = session();
    let mut peer = Peer::new();
    handshake_port(&mut s, &mut peer);
    s.handle_frame(ms(2), &peer.complete("")).unwrap();
    s.send_data(ms(3), b"lost in the old socket").unwrap();
    let _ = std::iter::from_fn(|| s.poll_transmit()).count();

    let open: Value = serde_json::from_str(&s.open_data_channel("new-token")).unwrap();
    assert_eq!(open["TokenValue"], "new-token");
    s.resume(ms(5_000));
    let out = stream_out(&mut s);
    let seqs: Vec<i64> = out.iter().map(|m| m.sequence_number).collect();
    assert_eq!(seqs, vec![0, 1], "every unacked message is resent");
    assert!(s.is_established(), "no new handshake after a reconnect");
    s.send_data(ms(5_001), b"next").unwrap();
    assert_eq!(stream_out(&mut s)[0].sequence_number, 2);
}

/// The agent side of a port session for the simulation: handshake, then pump bytes;
/// discards (but acks) input that arrives before the handshake, as the real agent does.
struct SimAgent {
    ch: Channel,
    handshake_done: bool,
    discarded_early: usize,
    received: Vec<u8>,
    outgoing: Vec<u8>,
    offset: usize,
    response: Option<HandshakeResponse>,
    next_seq: i64,
}

impl SimAgent {
    fn new(config: ChannelConfig, outgoing: Vec<u8>) -> Self {
        let mut ch = Channel::new(config);
        let request = json!({"AgentVersion": "3.3.987.0", "RequestedClientActions": [
            {"ActionType": "SessionType",
             "ActionParameters": {"SessionType": "Port", "Properties": {"portNumber": "22"}}}]});
        ch.send_unlimited(
            ms(0),
            PayloadType::HandshakeRequest,
            serde_json::to_vec(&request).unwrap(),
        )
        .unwrap();
        Self {
            ch,
            handshake_done: false,
            discarded_early: 0,
            received: Vec::new(),
            outgoing,
            offset: 0,
            response: None,
            next_seq: 0,
        }
    }

    fn step(&mut self, now: Duration, net: &mut Net, seed: u64) {
        while let Some(e) = self.ch.poll_event() {
            let channel::Event::Received {
                sequence_number,
                payload_type,
                payload,
            } = e
            else {
                continue;
            };
            assert_eq!(sequence_number, self.next_seq, "seed {seed}");
            self.next_seq += 1;
            match payload_type {
                PayloadType::HandshakeResponse => {
                    self.response = Some(serde_json::from_slice(&payload).unwrap());
                    let done = json!({"HandshakeTimeToComplete": 1, "CustomerMessage": ""});
                    self.ch
                        .send_unlimited(
                            now,
                            PayloadType::HandshakeComplete,
                            serde_json::to_vec(&done).unwrap(),
                        )
                        .unwrap();
                    self.handshake_done = true;
                }
                _ if !self.handshake_done => self.discarded_early += 1,
                PayloadType::Output => self.received.extend_from_slice(&payload),
                other => panic!("seed {seed}: unexpected {other:?}"),
            }
        }
        while self.handshake_done && self.offset < self.outgoing.len() && self.ch.can_send() {
            let n = net
                .rng
                .random_range(1..=MAX_STREAM_PAYLOAD)
                .min(self.outgoing.len() - self.offset);
            let chunk = self.outgoing[self.offset..self.offset + n].to_vec();
            self.ch.send(now, PayloadType::Output, chunk).unwrap();
            self.offset += n;
        }
        while let Some(f) = self.ch.poll_transmit() {
            net.send(now, Dir::ToClient, f.into());
        }
    }
}

fn simulate_session(seed: u64) -> Duration {
    let mut net = Net::from_seed(seed);
    let up = random_bytes(&mut net.rng, 32 * 1024);
    let down = random_bytes(&mut net.rng, 32 * 1024);
    let mut cc = ChannelConfig::new(Role::Client, EPOCH_MS);
    cc.send_buffer_limit = net.rng.random_range(1..=32usize);
    let mut s = ClientSession::with_config(cc, Uuid::new_v4());
    let mut agent = SimAgent::new(ChannelConfig::new(Role::Agent, EPOCH_MS), down.clone());

    let mut offset = 0;
    let mut got = Vec::new();
    let mut completed = false;
    let mut now = Duration::ZERO;
    loop {
        // The driver reads stdin whenever the session lets it, from time zero on.
        while offset < up.len() && s.can_send() {
            let n = net.rng.random_range(1..=3000usize).min(up.len() - offset);
            s.send_data(now, &up[offset..offset + n]).unwrap();
            offset += n;
        }
        while let Some(f) = s.poll_transmit() {
            net.send(now, Dir::ToAgent, f.into());
        }
        while let Some(e) = s.poll_event() {
            match e {
                Event::Data(d) => got.extend_from_slice(&d),
                Event::HandshakeComplete { .. } => {
                    assert!(!completed, "seed {seed}: handshake completed twice");
                    completed = true;
                }
                Event::Writable => {}
                other => panic!("seed {seed}: unexpected {other:?}"),
            }
        }
        agent.step(now, &mut net, seed);
        if offset == up.len()
            && s.is_flushed()
            && agent.ch.is_flushed()
            && agent.received.len() == up.len()
            && got.len() == down.len()
        {
            break;
        }
        let next = earliest([
            net.next_delivery(),
            s.poll_timeout(),
            agent.ch.poll_timeout(),
        ])
        .unwrap_or_else(|| panic!("seed {seed}: stalled at {now:?}"));
        now = now.max(next);
        assert!(
            now < Duration::from_secs(900),
            "seed {seed}: not finished after {now:?} ({:?})",
            net.faults()
        );
        while let Some((dir, frame)) = net.pop_due(now) {
            match dir {
                Dir::ToAgent => agent.ch.handle_frame(now, &frame),
                Dir::ToClient => s.handle_frame(now, &frame),
            }
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        }
        s.handle_timeout(now);
        agent.ch.handle_timeout(now);
    }
    assert!(completed, "seed {seed}: no HandshakeComplete event");
    assert_eq!(
        agent.discarded_early, 0,
        "seed {seed}: input sent too early"
    );
    let resp = agent.response.expect("handshake response");
    assert_eq!(resp.client_version, CLIENT_VERSION);
    assert!(
        agent.received == up,
        "seed {seed}: client→agent bytes differ"
    );
    assert!(got == down, "seed {seed}: agent→client bytes differ");
    now
}

#[test]
fn port_session_over_a_lossy_network() {
    let mut worst = Duration::ZERO;
    for seed in seeds(200) {
        worst = worst.max(simulate_session(seed));
    }
    println!("slowest seed finished after {worst:?} of virtual time");
}
