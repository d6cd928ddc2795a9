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
