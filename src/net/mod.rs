//! The ways out of this machine: which HTTP proxy, if any, a URL goes through (decided
//! from the environment with curl's rules), and the two users of that decision: the
//! websocket dialer of the data channels and the AWS SDK's HTTP client. Both ask the
//! same [`proxy::ProxyEnv`], so `list` and a session can never disagree about a proxy.

pub mod proxy;
pub mod sdk;
#[cfg(test)]
mod testpeer;
pub mod tunnel;
pub mod websocket;

pub use proxy::{ProxyEnv, ProxyError, Route};

/// Whether the CIDR block (or single address) `cidr` holds the address `ip`: security
/// group rules, the endpoint's reach, NO_PROXY entries. False for anything unparsable.
pub fn cidr_contains(cidr: &str, ip: &str) -> bool {
    ip.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| proxy::ip_entry_matches(cidr, ip))
}

#[cfg(test)]
mod cidr_tests {
    use super::cidr_contains;

    #[test]
    fn cidrs() {
        assert!(cidr_contains("10.0.0.0/16", "10.0.3.4"));
        assert!(!cidr_contains("10.0.0.0/16", "10.1.0.1"));
        assert!(cidr_contains("0.0.0.0/0", "192.168.1.1"));
        assert!(cidr_contains("10.0.0.5/32", "10.0.0.5"));
        assert!(cidr_contains("10.0.0.5", "10.0.0.5"));
        assert!(!cidr_contains("10.0.0.0/33", "10.0.0.5"));
        assert!(!cidr_contains("nonsense", "10.0.0.5"));
        assert!(cidr_contains("fd00::/8", "fd12::1"));
    }
}
