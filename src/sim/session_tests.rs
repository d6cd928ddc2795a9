//! The simulator's session side against ec2ssh's own driver, in process: the real
//! SDK for the API calls, a real websocket, and a TCP echo server as the target.

use std::net::SocketAddr;
use std::time::Duration;

use rand::{RngCore, SeedableRng};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use super::stats::Snapshot;
use super::{start, FaultConfig, FleetFile, SimHandle, SimOptions};
use crate::aws::{AwsContext, AwsErrorKind};
use crate::session::api::{SessionApi, Started};
use crate::session::driver::{self, Dial, DriverConfig, Finish, Resume};

const ONLINE: &str = "i-0feed000000000001";
const LOST: &str = "i-0feed000000000002";

/// A TCP server that echoes every connection.
async fn echo_server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

async fn sim(faults: &str) -> (SimHandle, SessionApi) {
    sim_with(SimOptions {
        faults: faults.parse::<FaultConfig>().unwrap(),
        ..SimOptions::default()
    })
    .await
}

async fn sim_with(opts: SimOptions) -> (SimHandle, SessionApi) {
    if let Ok(filter) = std::env::var("EC2SSH_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
    let target = echo_server().await;
    let fleet: FleetFile = toml::from_str(&format!(
        r#"
        [[instance]]
        id = "{ONLINE}"
        state = "running"
        ping = "Online"
        agent_version = "3.3.1611.0"
        target = "{target}"
        [[instance]]
        id = "{LOST}"
        state = "running"
        ping = "ConnectionLost"
        "#
    ))
    .unwrap();
    let handle = start(fleet, opts).await.unwrap();
    let ctx = AwsContext::for_endpoint(&handle.endpoint(), handle.regions(), &handle.access_key());
    let api = SessionApi::new(ctx.ssm("us-east-1"), "us-east-1");
    (handle, api)
}

/// For sessions that must never need a resume.
struct NoResume;

impl Resume for NoResume {
    async fn resume(&self) -> Result<Option<String>, crate::aws::AwsError> {
        Ok(None)
    }
}

struct Resumer<'a>(&'a SessionApi, String);

impl Resume for Resumer<'_> {
    async fn resume(&self) -> Result<Option<String>, crate::aws::AwsError> {
        self.0.resume(&self.1).await
    }
}

/// Sends `size` random bytes through the tunnel to the echo target and checks they
/// come back exactly; returns how the driver finished.
async fn echo_through(api: &SessionApi, started: &Started, size: usize, seed: u64) -> Finish {
    echo_checked(api, started, size, seed)
        .await
        .expect("tunnel failed")
}

async fn echo_checked(
    api: &SessionApi,
    started: &Started,
    size: usize,
    seed: u64,
) -> Result<Finish, driver::TunnelError> {
    let mut data = vec![0u8; size];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut data);
    let (tx, rx) = mpsc::channel(4);
    let (out_w, mut out_r) = tokio::io::duplex(1 << 16);
    let resumer = Resumer(api, started.session_id.clone());
    let dial = Dial {
        stream_url: started.stream_url.clone(),
        token: started.token.clone(),
    };
    let config = DriverConfig {
        connect_attempts: 8,
        ..DriverConfig::default()
    };
    let tunnel = driver::run(dial, rx, out_w, None, &resumer, &config);
    let input = data.clone();
    let check = async move {
        let feed = async {
            for chunk in input.chunks(7_000) {
                tx.send(driver::Input::Data(chunk.to_vec())).await.unwrap();
            }
            tx
        };
        let read = async {
            let mut back = vec![0u8; size];
            out_r.read_exact(&mut back).await.unwrap();
            back
        };
        let (tx, back) = tokio::join!(feed, read);
        assert!(
            back == data,
            "the echo differs from what was sent (seed {seed})"
        );
        drop(tx); // end of input
    };
    let check = async move {
        check.await;
        std::future::pending::<()>().await
    };
    tokio::time::timeout(Duration::from_secs(30), async {
        tokio::select! {
            finish = tunnel => finish,
            () = check => unreachable!(),
        }
    })
    .await
    .expect("tunnel timed out")
}

#[tokio::test]
async fn echoes_exactly_and_ends_the_session_in_band() {
    let (sim, api) = sim("").await;
    let started = api.start_ssh(ONLINE, 22).await.unwrap();
    assert_eq!(sim.active_sessions(), 1);
    let finish = echo_through(&api, &started, 1 << 20, 1).await;
    assert!(
        matches!(
            finish,
            Finish::InputDone { drained: true, .. } | Finish::Closed { .. }
        ),
        "{finish:?}"
    );
    wait_until_no_sessions(&sim).await;
}

/// Echoes `size` bytes under `faults`, then terminates through the API; returns what
/// the simulator counted.
async fn echo_case(faults: &str, size: usize, seed: u64) -> Snapshot {
    let (sim, api) = sim(faults).await;
    let started = api.start_ssh(ONLINE, 22).await.unwrap();
    echo_through(&api, &started, size, seed).await;
    api.terminate(&started.session_id).await.unwrap();
    wait_until_no_sessions(&sim).await;
    sim.stats()
}

/// Every kind of fault was applied, both ways.
fn assert_faults_happened(s: &Snapshot) {
    for (what, n) in [
        ("dropped to the client", s.dropped_to_client),
        ("dropped from the client", s.dropped_from_client),
        ("duplicated to the client", s.duplicated_to_client),
        ("duplicated from the client", s.duplicated_from_client),
        ("reordered to the client", s.reordered_to_client),
        ("reordered from the client", s.reordered_from_client),
        ("delayed to the client", s.delayed_to_client),
        ("delayed from the client", s.delayed_from_client),
    ] {
        assert!(n > 0, "no frame was {what}: {s:?}");
    }
}

/// The websocket was cut and every cut was resumed on a new connection.
fn assert_cut_and_resumed(s: &Snapshot, at_least: u64) {
    assert!(s.cuts >= at_least, "{} cuts: {s:?}", s.cuts);
    assert_eq!(s.websockets_opened, s.cuts + 1, "{s:?}");
    assert!(s.resumes_with_token >= s.cuts, "{s:?}");
    assert_eq!(s.resumes_without_token, 0, "{s:?}");
}

#[tokio::test]
async fn echoes_exactly_under_faults_and_websocket_cuts() {
    let stats = echo_case(
        "drop=0.03,duplicate=0.03,reorder=0.03,delay=0.03,delay-ms=5,cut-after=2500000,seed=9",
        2 << 20,
        2,
    )
    .await;
    assert_faults_happened(&stats);
    assert_cut_and_resumed(&stats, 1);
}

#[tokio::test]
async fn echoes_exactly_across_websocket_cuts() {
    // 2 MiB each way is over 4 MB on the wire: at least one cut.
    let stats = echo_case("cut-after=2500000,seed=9", 2 << 20, 3).await;
    assert_cut_and_resumed(&stats, 1);
    assert_eq!(stats.dropped_to_client + stats.dropped_from_client, 0);
}

#[tokio::test]
async fn echoes_exactly_under_faults() {
    let stats = echo_case(
        "drop=0.03,duplicate=0.03,reorder=0.03,delay=0.03,delay-ms=5,seed=9",
        1 << 20,
        4,
    )
    .await;
    assert_faults_happened(&stats);
    assert_eq!(stats.cuts, 0);
    assert_eq!(stats.websockets_opened, 1);
}

#[tokio::test]
async fn a_session_that_expired_while_the_client_was_away_is_reported_as_timed_out() {
    // The websocket is cut early; ResumeSession answers after 600 ms, by which time
    // the Disconnected session has expired (after 200 ms).
    let (sim, api) = sim_with(SimOptions {
        faults: "cut-after=200000,seed=1".parse().unwrap(),
        disconnect_timeout: Some(Duration::from_millis(200)),
        latency: Duration::from_millis(600),
        ..SimOptions::default()
    })
    .await;
    let started = api.start_ssh(ONLINE, 22).await.unwrap();
    let err = echo_checked(&api, &started, 1 << 20, 5).await.unwrap_err();
    assert!(matches!(err, driver::TunnelError::Expired), "{err}");
    assert!(err.to_string().contains("timed out"), "{err}");
    let stats = sim.stats();
    assert_eq!(stats.cuts, 1, "{stats:?}");
    assert_eq!(stats.sessions_expired, 1, "{stats:?}");
    assert_eq!(stats.resumes_without_token, 1, "{stats:?}");
    wait_until_no_sessions(&sim).await;
}

#[tokio::test]
async fn the_services_channel_closed_ends_the_tunnel() {
    let (sim, api) = sim("").await;
    let started = api.start_ssh(ONLINE, 22).await.unwrap();
    let (tx, rx) = mpsc::channel(1);
    let (out_w, mut out_r) = tokio::io::duplex(1 << 16);
    let resumer = Resumer(&api, started.session_id.clone());
    let dial = Dial {
        stream_url: started.stream_url.clone(),
        token: started.token.clone(),
    };
    let config = DriverConfig::default();
    let tunnel = driver::run(dial, rx, out_w, None, &resumer, &config);
    let terminate = async {
        tx.send(driver::Input::Data(b"hello".to_vec()))
            .await
            .unwrap();
        let mut back = [0u8; 5];
        out_r.read_exact(&mut back).await.unwrap();
        api.terminate(&started.session_id).await.unwrap();
        std::future::pending::<()>().await
    };
    let finish = tokio::time::timeout(Duration::from_secs(10), async {
        tokio::select! {
            finish = tunnel => finish,
            () = terminate => unreachable!(),
        }
    })
    .await
    .expect("the tunnel ends on channel_closed")
    .unwrap();
    assert_eq!(
        finish,
        Finish::Closed {
            reason: String::new()
        }
    );
    let stats = sim.stats();
    assert_eq!(stats.channel_closed_sent, 1);
    assert_eq!(stats.resumes_with_token + stats.resumes_without_token, 0);
    drop(tx);
}

async fn wait_until_no_sessions(sim: &SimHandle) {
    for _ in 0..100 {
        if sim.active_sessions() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{} sessions still active", sim.active_sessions());
}

#[tokio::test]
async fn refuses_offline_and_unknown_targets_with_target_not_connected() {
    let (_sim, api) = sim("").await;
    for target in [LOST, "i-0000000000000dead"] {
        let err = api.start_ssh(target, 22).await.unwrap_err();
        assert_eq!(err.kind, AwsErrorKind::TargetNotConnected, "{err:?}");
        assert_eq!(err.code.as_deref(), Some("TargetNotConnected"));
        assert!(err.message.contains(target), "{}", err.message);
    }
}

#[tokio::test]
async fn a_terminated_session_cannot_be_resumed() {
    let (sim, api) = sim("").await;
    let started = api.start_ssh(ONLINE, 22).await.unwrap();
    assert!(api.resume(&started.session_id).await.unwrap().is_some());
    api.terminate(&started.session_id).await.unwrap();
    api.terminate(&started.session_id).await.unwrap(); // idempotent
    assert_eq!(api.resume(&started.session_id).await.unwrap(), None);
    assert_eq!(sim.active_sessions(), 0);
    let err = api.resume("demo-00000000000000000").await.unwrap_err();
    assert_eq!(err.code.as_deref(), Some("DoesNotExistException"));
}

#[tokio::test]
async fn a_wrong_token_is_refused_without_a_handshake() {
    let (_sim, api) = sim("").await;
    let started = api.start_ssh(ONLINE, 22).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::connect_async(started.stream_url.as_str())
        .await
        .unwrap();
    use futures::{SinkExt, StreamExt};
    let open = crate::session::ClientSession::new(1).open_data_channel("not-the-token");
    ws.send(tokio_tungstenite::tungstenite::Message::Text(open.into()))
        .await
        .unwrap();
    // The gateway closes the socket; no binary frame (handshake) ever arrives.
    let next = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("the gateway should close the socket");
    assert!(
        !matches!(
            next,
            Some(Ok(tokio_tungstenite::tungstenite::Message::Binary(_)))
        ),
        "{next:?}"
    );
}

#[tokio::test]
async fn describe_sessions_reports_the_life_of_a_session() {
    let (_sim, api) = sim("").await;
    let started = api.start_ssh(ONLINE, 22).await.unwrap();
    let ssm = AwsContext::for_endpoint(&_sim.endpoint(), _sim.regions(), &_sim.access_key())
        .ssm("us-east-1");
    let describe = |state: aws_sdk_ssm::types::SessionState| {
        let ssm = ssm.clone();
        async move {
            ssm.describe_sessions()
                .state(state)
                .send()
                .await
                .unwrap()
                .sessions()
                .iter()
                .map(|s| {
                    (
                        s.session_id().unwrap_or_default().to_string(),
                        s.status().map(|st| st.as_str().to_string()),
                        s.target().unwrap_or_default().to_string(),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    let active = describe(aws_sdk_ssm::types::SessionState::Active).await;
    assert_eq!(
        active,
        vec![(
            started.session_id.clone(),
            Some("Connecting".into()),
            ONLINE.into()
        )]
    );
    api.terminate(&started.session_id).await.unwrap();
    assert!(describe(aws_sdk_ssm::types::SessionState::Active)
        .await
        .is_empty());
    let history = describe(aws_sdk_ssm::types::SessionState::History).await;
    assert_eq!(history[0].1.as_deref(), Some("Terminated"));
}

#[tokio::test]
async fn the_handshake_times_out_when_the_agent_never_answers() {
    // A websocket server that accepts and then says nothing.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(s).await.unwrap();
        use futures::StreamExt;
        while ws.next().await.is_some() {}
    });
    let (_tx, rx) = mpsc::channel(1);
    let config = DriverConfig {
        handshake_timeout: Some(Duration::from_millis(300)),
        ..DriverConfig::default()
    };
    let dial = Dial {
        stream_url: format!("ws://{addr}/v1/data-channel/x"),
        token: "t".into(),
    };
    let err = driver::run(dial, rx, tokio::io::sink(), None, &NoResume, &config)
        .await
        .unwrap_err();
    assert!(
        matches!(err, driver::TunnelError::HandshakeTimeout(_)),
        "{err}"
    );
}

/// A websocket server that answers the OpenDataChannel frame with shell output (no
/// handshake, as a shell session) only after `after`.
async fn slow_shell_agent(after: Duration) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(s).await.unwrap();
        use futures::{SinkExt, StreamExt};
        let _open = ws.next().await;
        tokio::time::sleep(after).await;
        let mut agent = crate::session::Channel::new(crate::session::ChannelConfig::new(
            crate::session::Role::Agent,
            1_700_000_000_000,
        ));
        agent
            .send(
                Duration::ZERO,
                crate::session::PayloadType::Output,
                b"$ ".to_vec(),
            )
            .unwrap();
        while let Some(frame) = agent.poll_transmit() {
            ws.send(tokio_tungstenite::tungstenite::Message::Binary(frame))
                .await
                .unwrap();
        }
        while ws.next().await.is_some() {}
    });
    format!("ws://{addr}/v1/data-channel/x")
}

#[tokio::test]
async fn without_a_deadline_the_driver_waits_for_a_slow_agent() {
    let slow = Duration::from_millis(1200);
    // What `ec2ssh shell` uses: no deadline at all.
    let (_tx, rx) = mpsc::channel(1);
    let (out_w, mut out_r) = tokio::io::duplex(1 << 10);
    let dial = Dial {
        stream_url: slow_shell_agent(slow).await,
        token: "t".into(),
    };
    let config = DriverConfig {
        waiting_notice: Some(Duration::from_millis(100)),
        ..DriverConfig::shell()
    };
    let tunnel = driver::run(dial, rx, out_w, None, &NoResume, &config);
    tokio::pin!(tunnel);
    let mut prompt = [0u8; 2];
    tokio::select! {
        r = &mut tunnel => panic!("the driver gave up: {r:?}"),
        r = out_r.read_exact(&mut prompt) => r.unwrap(),
    };
    assert_eq!(&prompt, b"$ ");
    // The same agent with a deadline shorter than its silence: an error.
    let (_tx, rx) = mpsc::channel(1);
    let dial = Dial {
        stream_url: slow_shell_agent(slow).await,
        token: "t".into(),
    };
    let config = DriverConfig {
        handshake_timeout: Some(Duration::from_millis(300)),
        ..DriverConfig::shell()
    };
    let err = driver::run(dial, rx, tokio::io::sink(), None, &NoResume, &config)
        .await
        .unwrap_err();
    assert!(
        matches!(err, driver::TunnelError::HandshakeTimeout(_)),
        "{err}"
    );
}
