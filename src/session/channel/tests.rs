use super::*;
use crate::session::testnet::{earliest, random_bytes, seeds, Dir, Net};
use rand::Rng;

const EPOCH_MS: u64 = 1_503_434_274_948;

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn client() -> Channel {
    Channel::new(ChannelConfig::new(Role::Client, EPOCH_MS))
}

fn agent() -> Channel {
    Channel::new(ChannelConfig::new(Role::Agent, EPOCH_MS))
}

fn drain_transmit(ch: &mut Channel) -> Vec<Message> {
    std::iter::from_fn(|| ch.poll_transmit())
        .map(|f| codec::decode(&f).unwrap())
        .collect()
}

fn drain_events(ch: &mut Channel) -> Vec<Event> {
    std::iter::from_fn(|| ch.poll_event()).collect()
}

/// Frames the agent sends for `payloads`, in sequence order.
fn agent_frames(payloads: &[&[u8]]) -> Vec<Vec<u8>> {
    let mut a = agent();
    for p in payloads {
        a.send(ms(0), PayloadType::Output, p.to_vec()).unwrap();
    }
    std::iter::from_fn(|| a.poll_transmit().map(Vec::from)).collect()
}

fn ack_of(msg: &Message) -> AcknowledgeContent {
    assert_eq!(msg.message_type, MessageType::Acknowledge);
    serde_json::from_slice(&msg.payload).unwrap()
}

fn ack_frame(seq: i64) -> Vec<u8> {
    let content = AcknowledgeContent {
        message_type: "input_stream_data".into(),
        message_id: uuid::Uuid::new_v4().to_string(),
        sequence_number: seq,
        is_sequential_message: true,
    };
    codec::control_frame(
        MessageType::Acknowledge,
        EPOCH_MS,
        serde_json::to_vec(&content).unwrap(),
    )
    .unwrap()
}

fn received(events: &[Event]) -> Vec<(i64, Vec<u8>)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Received {
                sequence_number,
                payload,
                ..
            } => Some((*sequence_number, payload.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn in_order_message_is_acked_and_delivered() {
    let frames = agent_frames(&[b"hello"]);
    let sent = codec::decode(&frames[0]).unwrap();
    assert_eq!(sent.flags, FLAG_SYN, "agent marks sequence 0 SYN");
    let mut c = client();
    c.handle_frame(ms(5), &frames[0]).unwrap();

    let out = drain_transmit(&mut c);
    assert_eq!(out.len(), 1);
    let ack = ack_of(&out[0]);
    assert_eq!(ack.message_type, "output_stream_data");
    assert_eq!(ack.message_id, sent.message_id.to_string());
    assert_eq!(ack.sequence_number, 0);
    assert!(ack.is_sequential_message);
    assert_eq!(out[0].sequence_number, 0);
    assert_eq!(out[0].flags, 3);
    assert_eq!(out[0].payload_type, PayloadType::Control);
    assert_eq!(out[0].created_date, EPOCH_MS + 5);

    assert_eq!(
        drain_events(&mut c),
        vec![Event::Received {
            sequence_number: 0,
            payload_type: PayloadType::Output,
            payload: b"hello".to_vec()
        }]
    );
    assert_eq!(c.expected_sequence(), 1);
}

#[test]
fn client_stream_messages_are_unflagged_and_sequenced() {
    let mut c = client();
    assert_eq!(c.send(ms(0), PayloadType::Output, b"a".to_vec()), Ok(0));
    assert_eq!(c.send(ms(0), PayloadType::Output, b"b".to_vec()), Ok(1));
    let out = drain_transmit(&mut c);
    assert_eq!(out.len(), 2);
    for (i, m) in out.iter().enumerate() {
        assert_eq!(m.message_type, MessageType::InputStreamData);
        assert_eq!(m.sequence_number, i as i64);
        assert_eq!(m.flags, 0);
    }
}

#[test]
fn duplicate_is_reacked_but_delivered_once() {
    let frames = agent_frames(&[b"x"]);
    let mut c = client();
    c.handle_frame(ms(0), &frames[0]).unwrap();
    drain_transmit(&mut c);
    assert_eq!(received(&drain_events(&mut c)).len(), 1);

    c.handle_frame(ms(10), &frames[0]).unwrap();
    let out = drain_transmit(&mut c);
    assert_eq!(out.len(), 1, "a duplicate gets a fresh ack");
    assert_eq!(ack_of(&out[0]).sequence_number, 0);
    assert!(
        drain_events(&mut c).is_empty(),
        "but is not delivered again"
    );
}

#[test]
fn out_of_order_is_buffered_acked_then_delivered_in_order() {
    let frames = agent_frames(&[b"0", b"1", b"2"]);
    let mut c = client();
    c.handle_frame(ms(0), &frames[2]).unwrap();
    c.handle_frame(ms(0), &frames[1]).unwrap();
    let acks: Vec<i64> = drain_transmit(&mut c)
        .iter()
        .map(|m| ack_of(m).sequence_number)
        .collect();
    assert_eq!(acks, vec![2, 1], "buffered messages are acked at once");
    assert!(drain_events(&mut c).is_empty());

    // A duplicate of a buffered message is re-acked and still delivered once.
    c.handle_frame(ms(0), &frames[2]).unwrap();
    assert_eq!(ack_of(&drain_transmit(&mut c)[0]).sequence_number, 2);

    c.handle_frame(ms(0), &frames[0]).unwrap();
    assert_eq!(
        received(&drain_events(&mut c)),
        vec![(0, b"0".to_vec()), (1, b"1".to_vec()), (2, b"2".to_vec())]
    );
    assert_eq!(c.expected_sequence(), 3);
}

#[test]
fn full_receive_buffer_drops_without_ack() {
    let frames = agent_frames(&[b"0", b"1", b"2", b"3"]);
    let mut config = ChannelConfig::new(Role::Client, EPOCH_MS);
    config.receive_buffer_limit = 2;
    let mut c = Channel::new(config);
    for f in &frames[1..] {
        c.handle_frame(ms(0), f).unwrap();
    }
    let acks: Vec<i64> = drain_transmit(&mut c)
        .iter()
        .map(|m| ack_of(m).sequence_number)
        .collect();
    assert_eq!(acks, vec![1, 2], "sequence 3 did not fit and is not acked");
    c.handle_frame(ms(0), &frames[0]).unwrap();
    c.handle_frame(ms(0), &frames[3]).unwrap();
    assert_eq!(received(&drain_events(&mut c)).len(), 4);
}

#[test]
fn invalid_frames_are_rejected_without_ack() {
    let mut frame = agent_frames(&[b"data"]).remove(0);
    let last = frame.len() - 1;
    frame[last] ^= 1;
    let mut c = client();
    assert!(matches!(
        c.handle_frame(ms(0), &frame),
        Err(ChannelError::Codec(CodecError::DigestMismatch))
    ));
    assert!(c.poll_transmit().is_none());
    assert!(c.poll_event().is_none());
    assert!(matches!(
        c.handle_frame(ms(0), b"{\"not\":\"binary\"}"),
        Err(ChannelError::Codec(CodecError::TooShort { .. }))
    ));
}

#[test]
fn own_stream_type_from_the_peer_is_ignored() {
    let mut c = client();
    c.send(ms(0), PayloadType::Output, b"x".to_vec()).unwrap();
    let frame = c.poll_transmit().unwrap();
    let mut other = client();
    assert!(matches!(
        other.handle_frame(ms(0), &frame),
        Err(ChannelError::Unexpected(MessageType::InputStreamData))
    ));
    assert!(other.poll_transmit().is_none());
}

#[test]
fn malformed_ack_is_an_error_and_changes_nothing() {
    let mut c = client();
    c.send(ms(0), PayloadType::Output, b"x".to_vec()).unwrap();
    let bad = codec::control_frame(MessageType::Acknowledge, EPOCH_MS, b"{".to_vec()).unwrap();
    assert!(matches!(
        c.handle_frame(ms(1), &bad),
        Err(ChannelError::BadAcknowledge(_))
    ));
    assert_eq!(c.unacked_len(), 1);
}

#[test]
fn rto_follows_jacobson_karels_from_reference_initial_values() {
    let mut c = client();
    assert_eq!(c.rto(), ms(200));
    assert_eq!(c.rtt(), ms(100));

    c.send(ms(0), PayloadType::Output, b"a".to_vec()).unwrap();
    c.handle_frame(ms(100), &ack_frame(0)).unwrap();
    // sample == RTT: variance stays 0, so RTO = RTT + 10 ms granularity.
    assert_eq!(c.rtt(), ms(100));
    assert_eq!(c.rto(), ms(110));

    c.send(ms(1000), PayloadType::Output, b"b".to_vec())
        .unwrap();
    c.handle_frame(ms(1020), &ack_frame(1)).unwrap();
    // sample 20 ms: RTTVAR = 80/4 = 20 ms; RTT = 100·7/8 + 20/8 = 90 ms; RTO = 90 + 80.
    assert_eq!(c.rtt(), ms(90));
    assert_eq!(c.rto(), ms(170));
    assert!(c.is_flushed());
}

#[test]
fn rto_is_capped_at_one_second() {
    let mut c = client();
    c.send(ms(0), PayloadType::Output, b"a".to_vec()).unwrap();
    // No timer ran in between, so this 5 s sample is clean: RTT = 712.5 ms,
    // RTTVAR = 1225 ms, uncapped RTO would be 5.6 s.
    c.handle_frame(ms(5_000), &ack_frame(0)).unwrap();
    assert_eq!(c.rto(), MAX_RTO);
    assert_eq!(c.rtt(), Duration::from_micros(712_500));
}

#[test]
fn retransmission_backs_off_to_the_cap() {
    let mut c = client();
    c.send(ms(0), PayloadType::Output, b"a".to_vec()).unwrap();
    let first = c.poll_transmit().unwrap();
    let mut fire_times = Vec::new();
    let mut now = ms(0);
    for _ in 0..6 {
        now = c.poll_timeout().unwrap();
        c.handle_timeout(now - ms(1));
        assert!(c.poll_transmit().is_none(), "nothing before the deadline");
        c.handle_timeout(now);
        assert_eq!(
            c.poll_transmit().unwrap(),
            first,
            "resent verbatim (same seq, id, bytes)"
        );
        fire_times.push(now.as_millis());
    }
    assert_eq!(fire_times, vec![200, 600, 1400, 2400, 3400, 4400]);
    assert_eq!(c.retransmissions(), 6);

    // Karn: the ack of a retransmitted message gives no RTT sample.
    c.handle_frame(now + ms(3), &ack_frame(0)).unwrap();
    assert_eq!(c.rto(), INITIAL_RTO);
    assert_eq!(c.poll_timeout(), None);
}

#[test]
fn only_the_oldest_unacked_message_is_retransmitted() {
    let mut c = client();
    for p in [b"a", b"b", b"c"] {
        c.send(ms(0), PayloadType::Output, p.to_vec()).unwrap();
    }
    drain_transmit(&mut c);
    c.handle_timeout(ms(200));
    let resent = drain_transmit(&mut c);
    assert_eq!(resent.len(), 1);
    assert_eq!(resent[0].sequence_number, 0);
    // Once the head is acked the next one is overdue and goes out at once.
    c.handle_frame(ms(210), &ack_frame(0)).unwrap();
    assert_eq!(c.poll_timeout(), Some(ms(200)));
    c.handle_timeout(ms(210));
    assert_eq!(drain_transmit(&mut c)[0].sequence_number, 1);
}

#[test]
fn gives_up_after_max_retransmits() {
    let mut config = ChannelConfig::new(Role::Client, EPOCH_MS);
    config.max_retransmits = 3;
    let mut c = Channel::new(config);
    c.send(ms(0), PayloadType::Output, b"a".to_vec()).unwrap();
    let mut now = ms(0);
    while let Some(t) = c.poll_timeout() {
        now = t;
        c.handle_timeout(now);
        assert!(now < ms(60_000));
    }
    assert_eq!(c.retransmissions(), 3);
    assert_eq!(
        drain_events(&mut c),
        vec![Event::RetransmitLimitReached { sequence_number: 0 }]
    );
    assert!(c.is_closed());
    assert_eq!(
        c.send(now, PayloadType::Output, b"b".to_vec()),
        Err(SendError::Closed)
    );
}

fn publication(ty: MessageType) -> Vec<u8> {
    // The service's publication frames are loose; CreatedDate 0 must still be accepted.
    let mut f = codec::control_frame(ty, 1, Vec::new()).unwrap();
    f[40..48].fill(0);
    f
}

#[test]
fn the_client_ignores_publication_control() {
    // Like the plugin: nothing a lost, duplicated or odd publication frame says can
    // stop a client from sending or retransmitting.
    let mut c = client();
    c.send(ms(0), PayloadType::Output, b"a".to_vec()).unwrap();
    drain_transmit(&mut c);
    c.handle_frame(ms(10), &publication(MessageType::PausePublication))
        .unwrap();
    assert_eq!(drain_events(&mut c), vec![]);
    c.send(ms(20), PayloadType::Output, b"b".to_vec()).unwrap();
    assert_eq!(drain_transmit(&mut c).len(), 1, "new data still goes out");
    assert_eq!(
        c.poll_timeout(),
        Some(ms(200)),
        "and the head still times out"
    );
    c.handle_timeout(ms(200));
    let resent = drain_transmit(&mut c);
    assert_eq!(resent.len(), 1);
    assert_eq!(resent[0].sequence_number, 0);
    c.handle_frame(ms(300), &publication(MessageType::StartPublication))
        .unwrap();
    assert_eq!(drain_events(&mut c), vec![]);
    assert!(
        drain_transmit(&mut c).is_empty(),
        "nothing is released twice"
    );
}

#[test]
fn the_agent_pauses_on_pause_publication_until_started() {
    let mut a = agent();
    a.send(ms(0), PayloadType::Output, b"a".to_vec()).unwrap();
    drain_transmit(&mut a);
    a.handle_frame(ms(10), &publication(MessageType::PausePublication))
        .unwrap();
    assert_eq!(drain_events(&mut a), vec![Event::Paused]);

    a.send(ms(20), PayloadType::Output, b"b".to_vec()).unwrap();
    assert!(a.poll_transmit().is_none(), "new data is held while paused");
    assert_eq!(a.poll_timeout(), None, "and nothing is retransmitted");
    a.handle_timeout(ms(5_000));
    assert!(a.poll_transmit().is_none());

    a.handle_frame(ms(6_000), &publication(MessageType::StartPublication))
        .unwrap();
    assert_eq!(drain_events(&mut a), vec![Event::Resumed]);
    let out = drain_transmit(&mut a);
    assert_eq!(out.len(), 1, "the held message goes out on resume");
    assert_eq!(out[0].sequence_number, 1);
    // The head (seq 0) was sent before the pause and is long overdue now.
    assert_eq!(a.poll_timeout(), Some(ms(200)));
}

#[test]
fn peer_traffic_unpauses_the_agent_and_acks_flow_while_paused() {
    let mut a = agent();
    a.handle_frame(ms(0), &publication(MessageType::PausePublication))
        .unwrap();
    a.send(ms(0), PayloadType::Output, b"q".to_vec()).unwrap();
    assert!(a.poll_transmit().is_none());
    let mut client = client();
    client
        .send(ms(0), PayloadType::Output, b"z".to_vec())
        .unwrap();
    let from_client = client.poll_transmit().unwrap();
    a.handle_frame(ms(1), &from_client).unwrap();
    let types: Vec<MessageType> = drain_transmit(&mut a)
        .into_iter()
        .map(|m| m.message_type)
        .collect();
    assert_eq!(
        types,
        vec![MessageType::OutputStreamData, MessageType::Acknowledge],
        "peer traffic un-pauses and releases the held message; the ack goes out too"
    );

    let mut a = agent();
    a.send(ms(0), PayloadType::Output, b"a".to_vec()).unwrap();
    a.send(ms(0), PayloadType::Output, b"b".to_vec()).unwrap();
    drain_transmit(&mut a);
    a.handle_frame(ms(1), &publication(MessageType::PausePublication))
        .unwrap();
    a.send(ms(1), PayloadType::Output, b"c".to_vec()).unwrap();
    assert!(a.poll_transmit().is_none());
    a.handle_frame(ms(2), &ack_frame(0)).unwrap();
    assert_eq!(drain_transmit(&mut a).len(), 1, "an ack un-pauses too");
}

#[test]
fn a_receiver_that_is_not_ready_drops_without_ack_until_retransmitted() {
    let mut c = client();
    for p in [b"a", b"b", b"c"] {
        c.send(ms(0), PayloadType::Output, p.to_vec()).unwrap();
    }
    let frames: Vec<_> = std::iter::from_fn(|| c.poll_transmit()).collect();
    let mut a = agent();
    a.set_accepting(false);
    for f in &frames {
        a.handle_frame(ms(1), f).unwrap();
    }
    let acked: Vec<i64> = drain_transmit(&mut a)
        .iter()
        .map(|m| ack_of(m).sequence_number)
        .collect();
    assert_eq!(
        acked,
        vec![1, 2],
        "the in-order one is refused, the rest kept"
    );
    assert_eq!(a.refused(), 1);
    assert!(drain_events(&mut a).is_empty());
    assert_eq!(a.expected_sequence(), 0);

    // Ready again: nothing is delivered until the peer resends the refused one…
    a.set_accepting(true);
    assert!(drain_events(&mut a).is_empty());
    c.handle_timeout(ms(200));
    let resent = c.poll_transmit().expect("the client retransmits the head");
    a.handle_frame(ms(201), &resent).unwrap();
    let acked: Vec<i64> = drain_transmit(&mut a)
        .iter()
        .map(|m| ack_of(m).sequence_number)
        .collect();
    assert_eq!(acked, vec![0]);
    // …then everything arrives in order, once.
    assert_eq!(
        received(&drain_events(&mut a)),
        vec![(0, b"a".to_vec()), (1, b"b".to_vec()), (2, b"c".to_vec())]
    );
}

#[test]
fn send_buffer_limit_gives_back_pressure() {
    let mut config = ChannelConfig::new(Role::Client, EPOCH_MS);
    config.send_buffer_limit = 2;
    let mut c = Channel::new(config);
    assert_eq!(c.send(ms(0), PayloadType::Output, b"a".to_vec()), Ok(0));
    assert!(c.can_send());
    assert_eq!(c.send(ms(0), PayloadType::Output, b"b".to_vec()), Ok(1));
    assert!(!c.can_send());
    assert_eq!(
        c.send(ms(0), PayloadType::Output, b"c".to_vec()),
        Err(SendError::Full)
    );
    assert_eq!(
        c.send_unlimited(ms(0), PayloadType::Flag, vec![0, 0, 0, 2]),
        Ok(2),
        "protocol messages bypass the limit"
    );
    c.handle_frame(ms(10), &ack_frame(0)).unwrap();
    assert!(drain_events(&mut c).is_empty(), "still at the limit");
    c.handle_frame(ms(10), &ack_frame(1)).unwrap();
    assert_eq!(drain_events(&mut c), vec![Event::Writable]);
    assert!(c.can_send());
}

#[test]
fn empty_payloads_are_refused() {
    let mut c = client();
    assert_eq!(
        c.send(ms(0), PayloadType::Output, Vec::new()),
        Err(SendError::Empty)
    );
    assert_eq!(c.next_sequence(), 0);
}

#[test]
fn channel_closed_ends_the_channel_with_its_reason() {
    let mut c = client();
    c.send(ms(0), PayloadType::Output, b"a".to_vec()).unwrap();
    let body = br#"{"MessageId":"m","CreatedDate":"x","DestinationId":"i-0abc","SessionId":"s-1",
        "MessageType":"channel_closed","SchemaVersion":1,"Output":"Session terminated"}"#;
    let frame = codec::control_frame(MessageType::ChannelClosed, EPOCH_MS, body.to_vec()).unwrap();
    c.handle_frame(ms(1), &frame).unwrap();
    match drain_events(&mut c).as_slice() {
        [Event::Closed(cc)] => {
            assert_eq!(cc.output, "Session terminated");
            assert_eq!(cc.session_id, "s-1");
        }
        other => panic!("unexpected events {other:?}"),
    }
    assert!(c.poll_transmit().is_none());
    assert_eq!(c.poll_timeout(), None);
    assert_eq!(
        c.send(ms(2), PayloadType::Output, b"b".to_vec()),
        Err(SendError::Closed)
    );
    // Later frames are ignored.
    c.handle_frame(ms(3), &agent_frames(&[b"late"])[0]).unwrap();
    assert!(c.poll_event().is_none());
}

/// A frame of ours rewritten in the service's `channel_closed` shape: HeaderLength 112
/// (no PayloadType field) and a NUL-padded MessageType.
fn service_shape(mut frame: Vec<u8>) -> Vec<u8> {
    frame.drain(112..116);
    frame[..4].copy_from_slice(&112u32.to_be_bytes());
    for b in &mut frame[4..36] {
        if *b == b' ' {
            *b = 0;
        }
    }
    frame
}

#[test]
fn the_services_112_byte_channel_closed_ends_the_channel() {
    let mut c = client();
    let body =
        br#"{"SessionId":"s-1","MessageType":"channel_closed","SchemaVersion":1,"Output":""}"#;
    let frame = codec::control_frame(MessageType::ChannelClosed, EPOCH_MS, body.to_vec()).unwrap();
    c.handle_frame(ms(1), &service_shape(frame)).unwrap();
    match drain_events(&mut c).as_slice() {
        [Event::Closed(cc)] => assert_eq!(cc.session_id, "s-1"),
        other => panic!("unexpected events {other:?}"),
    }
    assert!(c.is_closed());
}

#[test]
fn malformed_channel_closed_still_closes() {
    let mut c = client();
    let frame =
        codec::control_frame(MessageType::ChannelClosed, EPOCH_MS, b"gone".to_vec()).unwrap();
    c.handle_frame(ms(0), &frame).unwrap();
    match c.poll_event() {
        Some(Event::Closed(cc)) => assert_eq!(cc.output, "gone"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn resume_keeps_sequence_state_and_resends_unacked_at_once() {
    let mut c = client();
    for p in [b"a", b"b", b"c"] {
        c.send(ms(0), PayloadType::Output, p.to_vec()).unwrap();
    }
    let frames = agent_frames(&[b"0", b"1"]);
    c.handle_frame(ms(5), &frames[0]).unwrap();
    c.handle_frame(ms(5), &ack_frame(1)).unwrap();
    // The socket dies with all of this still queued.
    c.resume(ms(3_000));
    let out = drain_transmit(&mut c);
    let seqs: Vec<i64> = out.iter().map(|m| m.sequence_number).collect();
    assert_eq!(seqs, vec![0, 2], "unacked messages only, old queue dropped");
    assert!(out
        .iter()
        .all(|m| m.message_type == MessageType::InputStreamData));
    assert_eq!(c.poll_timeout(), Some(ms(3_000) + c.rto()));
    assert_eq!(c.send(ms(3_000), PayloadType::Output, b"d".to_vec()), Ok(3));
    // Receive state survived: the agent's resend of 0 is a duplicate, 1 is next.
    drain_events(&mut c);
    c.handle_frame(ms(3_001), &frames[0]).unwrap();
    assert!(c.poll_event().is_none());
    c.handle_frame(ms(3_001), &frames[1]).unwrap();
    assert_eq!(received(&drain_events(&mut c)), vec![(1, b"1".to_vec())]);
}

#[test]
fn created_date_is_never_zero() {
    let mut c = Channel::new(ChannelConfig::new(Role::Client, 0));
    c.send(ms(0), PayloadType::Output, b"a".to_vec()).unwrap();
    let m = codec::decode(&c.poll_transmit().unwrap()).unwrap();
    assert_eq!(m.created_date, 1);
}

/// Application side of one endpoint in the simulation.
struct Endpoint {
    ch: Channel,
    outgoing: Vec<u8>,
    offset: usize,
    incoming: Vec<u8>,
    next_seq: i64,
}

impl Endpoint {
    fn new(ch: Channel, outgoing: Vec<u8>) -> Self {
        Self {
            ch,
            outgoing,
            offset: 0,
            incoming: Vec::new(),
            next_seq: 0,
        }
    }

    fn produce(&mut self, now: Duration, net: &mut Net) {
        while self.offset < self.outgoing.len() && self.ch.can_send() {
            let n = net
                .rng
                .random_range(1..=codec::MAX_STREAM_PAYLOAD)
                .min(self.outgoing.len() - self.offset);
            let chunk = self.outgoing[self.offset..self.offset + n].to_vec();
            self.ch.send(now, PayloadType::Output, chunk).unwrap();
            self.offset += n;
        }
    }

    fn flush(&mut self, now: Duration, net: &mut Net, dir: Dir, seed: u64) {
        while let Some(f) = self.ch.poll_transmit() {
            net.send(now, dir, f.into());
        }
        while let Some(e) = self.ch.poll_event() {
            match e {
                Event::Received {
                    sequence_number,
                    payload,
                    ..
                } => {
                    assert_eq!(
                        sequence_number, self.next_seq,
                        "seed {seed}: out-of-order or repeated delivery"
                    );
                    self.next_seq += 1;
                    self.incoming.extend_from_slice(&payload);
                }
                Event::Writable => {}
                other => panic!("seed {seed}: unexpected event {other:?}"),
            }
        }
    }

    fn done(&self, peer_sent: &[u8]) -> bool {
        self.offset == self.outgoing.len()
            && self.ch.is_flushed()
            && self.incoming.len() == peer_sent.len()
    }
}

const SIM_TIME_LIMIT: Duration = Duration::from_secs(900);

/// What one seeded run went through, to show the faults were real.
#[derive(Default)]
struct SimStats {
    time: Duration,
    dropped: u64,
    duplicated: u64,
    retransmissions: u64,
}

/// Runs one seeded simulation.
fn simulate(seed: u64) -> SimStats {
    let mut net = Net::from_seed(seed);
    let up = random_bytes(&mut net.rng, 48 * 1024);
    let down = random_bytes(&mut net.rng, 48 * 1024);
    let limit = net.rng.random_range(1..=64usize);
    let mut cc = ChannelConfig::new(Role::Client, EPOCH_MS);
    cc.send_buffer_limit = limit;
    let mut ac = ChannelConfig::new(Role::Agent, EPOCH_MS);
    ac.send_buffer_limit = limit;
    ac.receive_buffer_limit = net.rng.random_range(1..=16usize);
    let mut c = Endpoint::new(Channel::new(cc), up.clone());
    let mut a = Endpoint::new(Channel::new(ac), down.clone());

    let mut now = Duration::ZERO;
    loop {
        c.produce(now, &mut net);
        a.produce(now, &mut net);
        c.flush(now, &mut net, Dir::ToAgent, seed);
        a.flush(now, &mut net, Dir::ToClient, seed);
        if c.done(&down) && a.done(&up) {
            break;
        }
        let next = earliest([
            net.next_delivery(),
            c.ch.poll_timeout(),
            a.ch.poll_timeout(),
        ]);
        let next = next.unwrap_or_else(|| panic!("seed {seed}: stalled at {now:?}"));
        now = now.max(next);
        assert!(
            now < SIM_TIME_LIMIT,
            "seed {seed}: not finished after {now:?} ({:?})",
            net.faults()
        );
        while let Some((dir, frame)) = net.pop_due(now) {
            let to = match dir {
                Dir::ToAgent => &mut a.ch,
                Dir::ToClient => &mut c.ch,
            };
            to.handle_frame(now, &frame)
                .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        }
        c.ch.handle_timeout(now);
        a.ch.handle_timeout(now);
    }
    assert!(a.incoming == up, "seed {seed}: client→agent bytes differ");
    assert!(c.incoming == down, "seed {seed}: agent→client bytes differ");
    SimStats {
        time: now,
        dropped: net.dropped,
        duplicated: net.duplicated,
        retransmissions: c.ch.retransmissions() + a.ch.retransmissions(),
    }
}

#[test]
fn lossy_network_delivers_everything_exactly_once_in_order() {
    let mut total = SimStats::default();
    for seed in seeds(200) {
        let run = simulate(seed);
        total.time = total.time.max(run.time);
        total.dropped += run.dropped;
        total.duplicated += run.duplicated;
        total.retransmissions += run.retransmissions;
    }
    // Printed with --nocapture; a sense of how hard the seeds were.
    println!(
        "slowest run {:?}; frames dropped {}, duplicated {}; retransmissions {}",
        total.time, total.dropped, total.duplicated, total.retransmissions
    );
    if std::env::var("EC2SSH_SIM_SEED").is_err() {
        assert!(total.dropped > 0 && total.duplicated > 0 && total.retransmissions > 0);
    }
}
