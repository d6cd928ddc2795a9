//! Local port forwarding over a Session Manager port session (`ec2ssh forward`): the
//! pure decisions (which `[LOCAL:]REMOTE_PORT`, which mode for which agent) here, and
//! the two engines that bridge a local listener to the session's byte stream: [`mux`]
//! (smux, many connections at once) and [`basic`] (one connection at a time).

pub mod basic;
pub mod eice;
pub mod mux;

use crate::session::client::{agent_multiplexes, version_greater};

/// Agents up to this one expect smux keepalives (NOP every 10 s).
pub const NOP_MAX_AGENT_VERSION: &str = "3.1.1511.0";

/// `[LOCAL:]REMOTE_PORT`; LOCAL 0 (or omitted) picks a free port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    pub local: u16,
    pub remote: u16,
}

/// Parses `[LOCAL:]REMOTE_PORT` (a clap value parser, so a bad value is a usage error).
pub fn parse_ports(s: &str) -> Result<Ports, String> {
    let port = |p: &str, zero_ok: bool| -> Result<u16, String> {
        match p.parse::<u16>() {
            Ok(0) if !zero_ok => Err("the remote port must be 1-65535".into()),
            Ok(n) => Ok(n),
            Err(_) => Err(format!("{p:?} is not a port number (0-65535)")),
        }
    };
    match s.split_once(':') {
        Some((local, remote)) => Ok(Ports {
            local: port(local, true)?,
            remote: port(remote, false)?,
        }),
        None => Ok(Ports {
            local: 0,
            remote: port(s, false)?,
        }),
    }
}

/// How the session carries the forwarded connections. Both ends pick it from the
/// other's version in the handshake: the agent from our HandshakeResponse's
/// ClientVersion, which the client session claims by the same rule as `for_agent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One connection at a time; `DisconnectToPort` between connections.
    Basic,
    /// smux: a stream per connection. `keepalive`: the agent expects NOPs.
    Mux { keepalive: bool },
}

impl Mode {
    /// The mode for the AgentVersion of the session's HandshakeRequest; basic when it
    /// is missing or unreadable (the reference plugin's fallback too).
    pub fn for_agent(agent_version: Option<&str>) -> Mode {
        match agent_version {
            Some(v) if agent_multiplexes(v) => Mode::Mux {
                keepalive: !version_greater(v, NOP_MAX_AGENT_VERSION),
            },
            _ => Mode::Basic,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_parse_with_and_without_local() {
        assert_eq!(
            parse_ports("80"),
            Ok(Ports {
                local: 0,
                remote: 80
            })
        );
        assert_eq!(
            parse_ports("8080:80"),
            Ok(Ports {
                local: 8080,
                remote: 80
            })
        );
        assert_eq!(
            parse_ports("0:5432"),
            Ok(Ports {
                local: 0,
                remote: 5432
            })
        );
        for bad in ["", "0", "x", "80:", ":80", "1:2:3", "70000", "8080:0", "-1"] {
            assert!(parse_ports(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mode_follows_the_agent_version() {
        assert_eq!(Mode::for_agent(None), Mode::Basic);
        assert_eq!(Mode::for_agent(Some("3.0.196.0")), Mode::Basic);
        assert_eq!(Mode::for_agent(Some("3.0.161.0")), Mode::Basic);
        assert_eq!(Mode::for_agent(Some("garbage")), Mode::Basic);
        assert_eq!(
            Mode::for_agent(Some("3.0.222.0")),
            Mode::Mux { keepalive: true }
        );
        assert_eq!(
            Mode::for_agent(Some("3.1.1511.0")),
            Mode::Mux { keepalive: true }
        );
        assert_eq!(
            Mode::for_agent(Some("3.3.1611.0")),
            Mode::Mux { keepalive: false }
        );
        // The plugin's comparison: same number of components, strictly greater.
        assert_eq!(Mode::for_agent(Some("3.1")), Mode::Basic);
        assert_eq!(Mode::for_agent(Some("3.0.196.0.1")), Mode::Basic);
        assert_eq!(Mode::for_agent(Some("")), Mode::Basic);
    }
}
