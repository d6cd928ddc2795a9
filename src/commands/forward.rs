//! `ec2ssh forward TARGET [LOCAL:]REMOTE_PORT [--host HOST]`: listens on
//! 127.0.0.1:LOCAL and forwards every connection to REMOTE_PORT on the instance (or
//! on HOST as the instance reaches it) through one Session Manager port session.
//! The session is terminated on every way out.

use std::io::Write;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::proxy::tunnel_error;
use crate::aws::AwsContext;
use crate::cli::ForwardArgs;
use crate::error::AppError;
use crate::fleet::{self, select};
use crate::forward::{self, Mode};
use crate::session::api::{Session, SessionApi, Started};
use crate::session::client::{version_greater, SessionType, TERMINATE_FLAG_MIN_AGENT_VERSION};
use crate::session::driver::{self, Dial, DriverConfig, Finish, Input, Notice};
use crate::session::messages::Flag;
use crate::signals::{self, Signals};
use crate::text::sanitize;

/// Bytes of the session's output in flight to the forwarding engine.
const OUTPUT_BUFFER: usize = 64 * 1024;
/// After the in-band TerminateSession flag, how long to wait for the service to close.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(1);

pub async fn run(ctx: &AwsContext, args: &ForwardArgs) -> Result<u8, AppError> {
    // Before anything else, so that a signal can never skip the cleanup below.
    let mut signals = Signals::install();
    let inventory = fleet::fetch(ctx).await?;
    let instance = select::find_online(&inventory.instances, &args.target)?;
    // The listed version only decides how to say goodbye; the forwarding mode is the
    // agent's own, from its handshake.
    let agent_version = instance.agent_version.as_deref();
    let in_band_goodbye =
        agent_version.is_some_and(|v| version_greater(v, TERMINATE_FLAG_MIN_AGENT_VERSION));

    // Bound before StartSession: a busy port fails before any session exists.
    let listener = TcpListener::bind(("127.0.0.1", args.ports.local))
        .await
        .map_err(|e| {
            AppError::other(
                format!("cannot listen on 127.0.0.1:{}: {e}", args.ports.local),
                "pick another local port, or 0 for a free one",
            )
        })?;
    let local = listener
        .local_addr()
        .map_err(|e| AppError::other(format!("cannot read the local address: {e}"), "try again"))?;

    let name = match instance.display_name() {
        "" => sanitize(&instance.id).into_owned(),
        n => sanitize(n).to_string(),
    };
    let remote = args.ports.remote;
    let dest = match &args.host {
        Some(host) => format!("{}:{remote}", sanitize(host)),
        None => format!("{name}:{remote}"),
    };

    if let Some(n) = signals.pending() {
        return Err(signals::as_error(n));
    }
    let api = SessionApi::new(
        ctx.for_instance(instance)?.ssm(&instance.region),
        &instance.region,
    );
    let started = api
        .start_port_forwarding(&instance.id, args.host.as_deref(), remote, local.port())
        .await?;
    tracing::info!(session = %started.session_id, "port forwarding session started");
    let session = Session {
        api: &api,
        id: started.session_id.clone(),
    };

    // From here on every path ends with the session terminated.
    let outcome = match signals.pending() {
        Some(n) => Err(signals::as_error(n)),
        None => {
            // Scripts read the address from stdout; people read stderr.
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "{local}");
            let _ = stdout.flush();
            drop(stdout);
            let via = match &args.host {
                Some(_) => format!(" via {name}"),
                None => String::new(),
            };
            eprintln!("forwarding {local} → {dest}{via} (Ctrl-C ends)");
            let plan = Plan {
                in_band_goodbye,
                dest: &dest,
                name: &name,
            };
            tunnel(&session, &started, listener, &plan, &mut signals).await
        }
    };
    let closed_by_service = matches!(outcome, Ok(Finish::Closed { .. }));
    if !closed_by_service {
        session.terminate().await;
    }
    match outcome {
        Ok(Finish::Closed { reason }) if !reason.is_empty() => Err(AppError::other(
            format!("the session ended: {}", sanitize(&reason)),
            format!("check that something listens on {dest} (as seen from {name})"),
        )),
        Ok(_) => {
            eprintln!("ec2ssh: the port forwarding session ended");
            Ok(0)
        }
        Err(e) => Err(e),
    }
}

/// What the tunnel needs to know besides the session.
struct Plan<'a> {
    /// The agent honours the TerminateSession flag.
    in_band_goodbye: bool,
    /// Where connections go, for hints (`web-1:80`).
    dest: &'a str,
    /// The instance, for error messages.
    name: &'a str,
}

/// Runs the driver and the forwarding engine together until the session ends, the
/// engine fails, or a signal arrives.
async fn tunnel(
    session: &Session<'_>,
    started: &Started,
    listener: TcpListener,
    plan: &Plan<'_>,
    signals: &mut Signals,
) -> Result<Finish, AppError> {
    let (dest, name) = (plan.dest, plan.name);
    let dial = Dial {
        stream_url: started.stream_url.clone(),
        token: started.token.clone(),
    };
    let config = DriverConfig::default();
    let (input_tx, input_rx) = mpsc::channel(16);
    let (notice_tx, mut notice_rx) = mpsc::unbounded_channel();
    let (to_engine, from_driver) = tokio::io::duplex(OUTPUT_BUFFER);
    let driver = driver::run(dial, input_rx, to_engine, Some(notice_tx), session, &config);
    let engine_input = input_tx.clone();
    let engine = async move {
        // Which engine serves the listener is the agent's choice, made from what the
        // handshake said: wait for it (connections queue in the listen backlog).
        let (agent_version, session_type) = loop {
            match notice_rx.recv().await {
                Some(Notice::Established {
                    agent_version,
                    session_type,
                }) => break (agent_version, session_type),
                Some(_) => continue,
                // The driver ended before the handshake; its result is what counts.
                None => return std::future::pending().await,
            }
        };
        check_port_forwarding(session_type.as_ref())?;
        let mode = Mode::for_agent(agent_version.as_deref());
        tracing::info!(?mode, ?agent_version, "the agent's forwarding mode");
        match mode {
            Mode::Mux { keepalive } => {
                forward::mux::run(listener, engine_input, from_driver, notice_rx, keepalive, dest)
                    .await
                    .map_err(|e| AppError::other(
                        format!("the agent's port forwarding stream is unreadable: {e}"),
                        "update the SSM agent on the instance (AWS-UpdateSSMAgent), or report this with -vv output",
                    ))
            }
            Mode::Basic => {
                eprintln!(
                    "ec2ssh: the SSM agent on {name} ({}) forwards one connection at a time; others wait their turn (update the agent for concurrent connections)",
                    sanitize(agent_version.as_deref().unwrap_or("unknown version"))
                );
                drop(notice_rx);
                forward::basic::run(listener, engine_input, from_driver).await;
                Ok(())
            }
        }
    };
    tokio::pin!(driver, engine);
    tokio::select! {
        result = &mut driver => result.map_err(|e| tunnel_error(e, plan.name)),
        result = &mut engine => result.map(|()| Finish::OutputClosed),
        n = signals.recv() => {
            if plan.in_band_goodbye && input_tx.try_send(Input::Flag(Flag::TerminateSession)).is_ok() {
                // Give the flag a moment to leave; TerminateSession follows regardless.
                let _ = tokio::time::timeout(GOODBYE_TIMEOUT, &mut driver).await;
            }
            Err(signals::as_error(n))
        }
    }
}

/// The handshake must describe the session StartSession was asked for; an agent that
/// answers with another kind would carry the forwarded bytes somewhere else.
fn check_port_forwarding(session_type: Option<&SessionType>) -> Result<(), AppError> {
    match session_type {
        Some(t) if t.is_port_forwarding() => Ok(()),
        other => Err(AppError::other(
            format!(
                "the SSM agent started {}, not the port forwarding session ec2ssh asked for",
                other.map_or("a session of no stated type".into(), |t| format!(
                    "a {} session",
                    t.name()
                ))
            ),
            "update the SSM agent on the instance (AWS-UpdateSSMAgent), or report this with -vv output",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::messages::PortProperties;

    #[test]
    fn only_a_port_forwarding_handshake_is_accepted() {
        let forwarding = SessionType::Port(PortProperties {
            kind: Some("LocalPortForwarding".into()),
            ..PortProperties::default()
        });
        assert!(check_port_forwarding(Some(&forwarding)).is_ok());
        for (other, named) in [
            (
                Some(SessionType::Port(PortProperties::default())),
                "a Port session",
            ),
            (
                Some(SessionType::StandardStream),
                "a Standard_Stream session",
            ),
            (None, "a session of no stated type,"),
        ] {
            let e = check_port_forwarding(other.as_ref()).unwrap_err();
            let (what, fix) = e.explain().remove(0);
            assert!(what.contains(named), "{what}");
            assert!(what.contains("not the port forwarding session"), "{what}");
            assert!(fix.unwrap().contains("AWS-UpdateSSMAgent"));
        }
    }
}
