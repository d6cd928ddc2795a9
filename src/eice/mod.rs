//! The second way to a machine's port 22, beside `session/`: an EC2 Instance Connect
//! Endpoint (EICE) tunnel. A websocket to `wss://<endpoint DNS>/openTunnel`, presigned
//! with SigV4 ([`presign`]), carries the raw TCP bytes of one connection to the
//! instance's private IP ([`tunnel`]). No agent is involved, so it reaches machines
//! Session Manager cannot; IAM's `ec2-instance-connect:OpenTunnel` authorises it.

pub mod presign;
pub mod tunnel;

use std::net::IpAddr;

use crate::aws::AwsContext;
use crate::error::AppError;
use crate::net::ProxyError;
pub use presign::TunnelRequest;
pub use tunnel::{Finish, Opener};

/// The service's limit on a tunnel's life, seconds.
pub const MAX_DURATION: u32 = 3600;
/// Concurrent connections one endpoint takes (AWS documents 20).
pub const MAX_CONNECTIONS: usize = 20;

/// Why a tunnel could not be opened or ended badly.
#[derive(Debug, thiserror::Error)]
pub enum EiceError {
    #[error("cannot presign the openTunnel request: {0}")]
    Sign(String),
    #[error("cannot reach the EC2 Instance Connect Endpoint at {host}: {reason}")]
    Connect { host: String, reason: String },
    #[error(transparent)]
    Proxy(ProxyError),
    #[error("OpenTunnel was denied: {message}")]
    Denied { message: String },
    #[error("the EC2 Instance Connect Endpoint {endpoint} is full ({message})")]
    Full { endpoint: String, message: String },
    #[error(
        "the EC2 Instance Connect Endpoint refused the tunnel: HTTP {status} {code}: {message}"
    )]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    #[error("the tunnel reached its {secs} s limit (maxTunnelDuration) and was closed")]
    Expired { secs: u64 },
    #[error("the endpoint closed the tunnel (code {code}): {reason}")]
    Closed { code: u16, reason: String },
    #[error("the tunnel broke: {0}")]
    Lost(String),
    #[error("the endpoint sent {0}, not tunnel bytes")]
    Protocol(String),
}

impl EiceError {
    /// An HTTP refusal of the upgrade: the service's JSON body says which
    /// (`{"ErrorCode": …, "Message": …}`); 429 is the endpoint's connection limit.
    pub fn refused(status: u16, body: &str, endpoint: &str) -> EiceError {
        let json: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        let field = |k: &str| crate::text::sanitize(json[k].as_str().unwrap_or("")).into_owned();
        let (code, message) = (field("ErrorCode"), field("Message"));
        match (status, code.as_str()) {
            (429, _) => EiceError::Full {
                endpoint: endpoint.to_string(),
                message,
            },
            (_, "AccessDeniedException") | (403, _) => EiceError::Denied { message },
            _ => EiceError::Refused {
                status,
                code,
                message,
            },
        }
    }

    /// The one-line fix for `instance` through `endpoint`.
    pub fn fix(&self, instance: &str, endpoint: &str) -> String {
        match self {
            EiceError::Sign(_) => "check the AWS credentials (`ec2ssh doctor`)".into(),
            EiceError::Connect { .. } => "the endpoint's DNS name must resolve and port 443 be reachable from here (check proxies and firewalls), or use Session Manager: --via ssm".into(),
            EiceError::Proxy(e) => e.fix(),
            EiceError::Denied { message } if message.contains("expired") || message.contains("Signature") => {
                "check this machine's clock (the presigned URL is valid 60 s) and the AWS credentials".into()
            }
            EiceError::Denied { .. } => format!("allow ec2-instance-connect:OpenTunnel on {endpoint} with remotePort 22 and maxTunnelDuration up to 3600 (`ec2ssh iam-policy --eice`)"),
            EiceError::Full { .. } => format!("an endpoint takes {MAX_CONNECTIONS} connections at once: close other tunnels through {endpoint} or try again later, or use Session Manager: --via ssm"),
            EiceError::Refused { .. } => format!("`ec2ssh doctor {instance}` checks the endpoint and the instance"),
            EiceError::Expired { .. } => "connect again; a tunnel lives at most 3600 s (config max_tunnel_duration)".into(),
            EiceError::Closed { .. } => format!("the instance did not accept the connection from {endpoint}: sshd must run on it and its security group admit the endpoint's on TCP 22 (`ec2ssh doctor {instance}`)"),
            EiceError::Lost(_) | EiceError::Protocol(_) => "connect again".into(),
        }
    }

    pub fn into_app(self, instance: &str, endpoint: &str) -> AppError {
        let fix = self.fix(instance, endpoint);
        AppError::other(self.to_string(), fix)
    }
}

/// Everything a tunnel to one instance needs, resolved before any byte flows (from
/// the fleet, or from the proxy's command line: no AWS call is needed then).
#[derive(Debug, Clone)]
pub struct Target {
    pub instance: String,
    pub region: String,
    pub endpoint_id: String,
    pub dns_name: String,
    pub ip: IpAddr,
}

/// Whether the AWS configuration asks for FIPS endpoints (`AWS_USE_FIPS_ENDPOINT`).
fn use_fips() -> bool {
    std::env::var("AWS_USE_FIPS_ENDPOINT").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
}

impl Target {
    /// The tunnel to `i` through `e`, to `ip` (default: its private IP): the id, the
    /// DNS name (`FipsDnsName` when FIPS is asked for) and the address checked, so
    /// they are safe on a command line and in a URL.
    pub fn for_row(
        i: &crate::fleet::Instance,
        e: &crate::fleet::EiceEndpoint,
        ip: Option<IpAddr>,
    ) -> Result<Target, AppError> {
        let id = crate::text::sanitize(&i.id);
        let ip = ip
            .or_else(|| i.private_ip.as_deref()?.parse().ok())
            .ok_or_else(|| {
                AppError::other(
                    format!("{id} has no private IP to tunnel to"),
                    "pass --ip, or use Session Manager: --via ssm",
                )
            })?;
        let dns = if use_fips() {
            e.fips_dns_name.clone().ok_or_else(|| {
                AppError::other(
                    format!("{} has no FIPS DNS name", crate::text::sanitize(&e.id)),
                    "unset AWS_USE_FIPS_ENDPOINT, or use Session Manager: --via ssm",
                )
            })?
        } else {
            e.dns_name.clone()
        };
        if !crate::names::is_eice_id(&e.id) || !crate::names::is_dns_name(&dns) {
            return Err(AppError::other(
                format!(
                    "the EC2 Instance Connect Endpoint {:?} ({:?}) of {id} is malformed",
                    crate::text::sanitize(&e.id),
                    crate::text::sanitize(&dns)
                ),
                "run `ec2ssh list --json` to see it, or use Session Manager: --via ssm",
            ));
        }
        Ok(Target {
            instance: i.id.clone(),
            region: i.region.clone(),
            endpoint_id: e.id.clone(),
            dns_name: dns,
            ip,
        })
    }

    /// The opener for `port`, dialling the context's endpoint override if it has one
    /// (`AWS_ENDPOINT_URL_EC2_INSTANCE_CONNECT`, `AWS_ENDPOINT_URL`, or the simulator).
    pub fn opener(
        &self,
        ctx: &AwsContext,
        port: u16,
        max_duration: u32,
    ) -> Result<Opener, AppError> {
        let base = presign::base_url(&self.dns_name, ctx.eice_endpoint_override().as_deref())
            .map_err(|e| {
                AppError::other(
                    e,
                    "fix AWS_ENDPOINT_URL_EC2_INSTANCE_CONNECT (e.g. https://host:port)",
                )
            })?;
        Ok(Opener {
            base,
            region: self.region.clone(),
            request: TunnelRequest {
                endpoint_id: self.endpoint_id.clone(),
                ip: self.ip,
                port,
                max_duration,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_told_apart_by_status_and_code() {
        let body = r#"{"ErrorCode":"AccessDeniedException","Message":"User: x is not authorized to perform: ec2-instance-connect:OpenTunnel"}"#;
        let e = EiceError::refused(403, body, "eice-1");
        assert!(matches!(&e, EiceError::Denied { message } if message.contains("OpenTunnel")));
        assert!(e.fix("i-1", "eice-1").contains("iam-policy --eice"));
        let full = EiceError::refused(
            429,
            r#"{"ErrorCode":"LimitExceededException","Message":"m"}"#,
            "eice-1",
        );
        assert!(matches!(full, EiceError::Full { .. }));
        let odd = EiceError::refused(400, "<html>\u{1b}[31m", "eice-1");
        assert!(matches!(odd, EiceError::Refused { status: 400, .. }));
        let bad = EiceError::refused(
            400,
            r#"{"ErrorCode":"InvalidParameter","Message":"bad\u001b[2J"}"#,
            "eice-1",
        );
        assert!(!bad.to_string().contains('\u{1b}'), "{bad}");
    }

    #[test]
    fn a_row_with_a_hostile_endpoint_name_gets_no_tunnel() {
        let e = crate::fleet::EiceEndpoint {
            id: "eice-0123".into(),
            dns_name: "evil.example/openTunnel?x=".into(),
            ..Default::default()
        };
        let i = crate::fleet::Instance {
            id: "i-0123456789abcdef0".into(),
            private_ip: Some("10.0.0.5".into()),
            ..Default::default()
        };
        assert!(Target::for_row(&i, &e, None).is_err());
        let good = crate::fleet::EiceEndpoint {
            dns_name: "eice-0123.a.ec2-instance-connect-endpoint.us-east-1.amazonaws.com".into(),
            ..e
        };
        let t = Target::for_row(&i, &good, None).unwrap();
        assert_eq!(t.ip.to_string(), "10.0.0.5");
        let other: IpAddr = "10.0.0.9".parse().unwrap();
        assert_eq!(Target::for_row(&i, &good, Some(other)).unwrap().ip, other);
        let no_ip = crate::fleet::Instance {
            private_ip: None,
            ..i
        };
        assert!(Target::for_row(&no_ip, &good, None).is_err());
    }
}
