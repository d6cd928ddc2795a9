//! EC2 Instance Connect Endpoints: `DescribeInstanceConnectEndpoints` (EC2 query/XML,
//! the model's element names) and the `openTunnel` websocket, which does what the
//! service does: it checks the presigned URL's SigV4 signature and expiry against the
//! run's credentials, the endpoint, the port, the address and the security groups
//! between them, takes at most [`MAX_CONNECTIONS`] tunnels per endpoint, relays raw
//! bytes in BINARY messages to the instance's target, and ends the tunnel after its
//! `maxTunnelDuration`.
//!
//! ```toml
//! [[instance_connect_endpoint]]
//! id = "eice-0123456789abcdef0"
//! vpc_id = "vpc-1"
//! subnet_id = "subnet-1"
//! security_groups = ["sg-eice"]   # egress must reach the instance on the port
//! private_ip = "10.0.0.250"       # its ENI's address, for CIDR rules
//! # state = "create-complete", preserve_client_ip = false, max_connections = 20
//! ```
//!
//! Where the public sources are silent the simulator chooses, and says so here:
//! - HTTP refusals of the upgrade carry `{"ErrorCode","Message"}` JSON (the shape seen
//!   from the real service): 403 `AccessDeniedException` for a missing, bad or expired
//!   signature and for a denied OpenTunnel; 400 `InvalidParameter` for a bad endpoint
//!   id, port, address or duration; 429 `LimitExceededException` for a full endpoint.
//! - A target that cannot be reached (no instance at that address in the endpoint's
//!   VPC, or a security group in the way, where a real SYN would go unanswered) and a
//!   target that refuses: the upgrade succeeds and the tunnel is closed at once with
//!   code 1011 and a reason (`Connection timed out` / `Connection refused`).
//! - The end of `maxTunnelDuration`: a CLOSE with code 1000 and the reason
//!   `Maximum tunnel duration reached`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::auth;
use super::query::{escape, Params};
use super::{ApiError, SimState};

/// Tunnels one endpoint takes at once (AWS documents 20).
pub const MAX_CONNECTIONS: usize = 20;
/// The service's longest tunnel, seconds.
const MAX_DURATION: u64 = 3600;
const CLOSE_EXPIRED: &str = "Maximum tunnel duration reached";

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SimEice {
    pub id: String,
    pub vpc_id: String,
    pub subnet_id: String,
    /// Default: the VPC's region, else the fleet's default region.
    pub region: Option<String>,
    pub state: String,
    pub security_groups: Vec<String>,
    pub preserve_client_ip: bool,
    /// The endpoint's network interface address (what CIDR rules see).
    pub private_ip: Option<String>,
    pub max_connections: usize,
}

impl Default for SimEice {
    fn default() -> Self {
        SimEice {
            id: String::new(),
            vpc_id: String::new(),
            subnet_id: String::new(),
            region: None,
            state: "create-complete".into(),
            security_groups: Vec::new(),
            preserve_client_ip: false,
            private_ip: None,
            max_connections: MAX_CONNECTIONS,
        }
    }
}

impl SimEice {
    pub fn region<'a>(&'a self, state: &'a SimState) -> &'a str {
        self.region.as_deref().unwrap_or_else(|| {
            state
                .fleet
                .vpcs
                .iter()
                .find(|v| v.id == self.vpc_id)
                .and_then(|v| v.region.as_deref())
                .unwrap_or(&state.fleet.default_region)
        })
    }

    /// A DNS name in the service's shape.
    pub fn dns_name(&self, region: &str, fips: bool) -> String {
        let tag: String = self
            .id
            .bytes()
            .map(|b| format!("{:x}", b % 16))
            .take(8)
            .collect();
        let fips = if fips { "fips." } else { "" };
        format!(
            "{}.{tag}.{fips}ec2-instance-connect-endpoint.{region}.amazonaws.com",
            self.id
        )
    }
}

/// Tunnels open per endpoint.
#[derive(Debug, Default)]
pub struct Tunnels(Mutex<HashMap<String, usize>>);

/// One counted tunnel; dropping it frees its place.
struct Slot {
    tunnels: Arc<SimState>,
    endpoint: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut map = self
            .tunnels
            .tunnels
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.endpoint) {
            *n = n.saturating_sub(1);
        }
    }
}

impl Tunnels {
    fn take(state: &Arc<SimState>, endpoint: &str, max: usize) -> Option<Slot> {
        let mut map = state.tunnels.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(endpoint.to_string()).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Slot {
            tunnels: state.clone(),
            endpoint: endpoint.to_string(),
        })
    }

    /// Tunnels open now, all endpoints.
    pub fn open(&self) -> usize {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .sum()
    }
}

const FILTERS: [&str; 4] = [
    "instance-connect-endpoint-id",
    "state",
    "subnet-id",
    "vpc-id",
];

/// `DescribeInstanceConnectEndpoints`: ids, the four filters, MaxResults/NextToken.
pub fn describe(state: &SimState, region: &str, p: &Params) -> Result<String, ApiError> {
    let filters = super::query::filters(p, |n| FILTERS.contains(&n))?;
    let ids: Vec<String> = super::query::indexed(p, "InstanceConnectEndpointId")
        .map(str::to_string)
        .collect();
    let max: usize = match p.get("MaxResults") {
        None => 50,
        Some(m) => m.parse().ok().filter(|m| (1..=50).contains(m)).ok_or_else(|| {
            ApiError::new(
                400,
                "InvalidParameterValue",
                format!("Value ( {m} ) for parameter maxResults is invalid. Parameter must be between 1 and 50."),
            )
        })?,
    };
    let start: usize = match p.get("NextToken") {
        None => 0,
        Some(t) => t.parse().map_err(|_| {
            ApiError::new(
                400,
                "InvalidParameterValue",
                format!("Invalid value '{t}' for nextToken"),
            )
        })?,
    };
    if let Some(missing) = ids
        .iter()
        .find(|id| !state.fleet.eice_endpoints.iter().any(|e| &e.id == *id))
    {
        return Err(ApiError::new(
            400,
            "InvalidInstanceConnectEndpointId.NotFound",
            format!("The instanceConnectEndpoint ID '{missing}' does not exist"),
        ));
    }
    let matching: Vec<&SimEice> = state
        .fleet
        .eice_endpoints
        .iter()
        .filter(|e| {
            e.region(state) == region
                && (ids.is_empty() || ids.contains(&e.id))
                && super::vpc::matches(&filters, "instance-connect-endpoint-id", &e.id)
                && super::vpc::matches(&filters, "state", &e.state)
                && super::vpc::matches(&filters, "subnet-id", &e.subnet_id)
                && super::vpc::matches(&filters, "vpc-id", &e.vpc_id)
        })
        .collect();
    let mut xml = String::from("<instanceConnectEndpointSet>");
    for e in matching.iter().skip(start).take(max) {
        let az = format!("{region}a");
        xml.push_str(&format!(
            "<item><ownerId>{owner}</ownerId><instanceConnectEndpointId>{id}</instanceConnectEndpointId><instanceConnectEndpointArn>arn:aws:ec2:{region}:{owner}:instance-connect-endpoint/{id}</instanceConnectEndpointArn><state>{st}</state><stateMessage/><dnsName>{dns}</dnsName><fipsDnsName>{fips}</fipsDnsName><networkInterfaceIdSet><item>eni-{sfx}</item></networkInterfaceIdSet><vpcId>{vpc}</vpcId><availabilityZone>{az}</availabilityZone><createdAt>{created}</createdAt><subnetId>{subnet}</subnetId><preserveClientIp>{pci}</preserveClientIp><securityGroupIdSet>",
            owner = auth::ACCOUNT_ID,
            id = escape(&e.id),
            st = escape(&e.state),
            dns = escape(&e.dns_name(region, false)),
            fips = escape(&e.dns_name(region, true)),
            sfx = escape(e.id.trim_start_matches("eice-")),
            vpc = escape(&e.vpc_id),
            created = state.days_ago(30).replace('Z', ".000Z"),
            subnet = escape(&e.subnet_id),
            pci = e.preserve_client_ip,
        ));
        for g in &e.security_groups {
            xml.push_str(&format!("<item>{}</item>", escape(g)));
        }
        xml.push_str("</securityGroupIdSet><tagSet/><ipAddressType>ipv4</ipAddressType></item>");
    }
    xml.push_str("</instanceConnectEndpointSet>");
    if start + max < matching.len() {
        xml.push_str(&format!("<nextToken>{}</nextToken>", start + max));
    }
    Ok(super::vpc::response(
        "DescribeInstanceConnectEndpoints",
        &state.request_id(),
        &xml,
    ))
}

/// A refusal of the upgrade: HTTP status and the JSON body's code and message.
struct Refusal(ApiError);

fn refuse(status: u16, code: &str, message: impl Into<String>) -> Refusal {
    Refusal(ApiError::new(status, code, message))
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let e = self.0;
        let body = serde_json::json!({ "ErrorCode": e.code, "Message": e.message }).to_string();
        let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
        (status, [("content-type", "application/json")], body).into_response()
    }
}

/// What an accepted request opens.
struct Accepted {
    endpoint: SimEice,
    relay: Result<SocketAddr, &'static str>,
    duration: Duration,
}

fn invalid(message: &str) -> Refusal {
    refuse(400, "InvalidParameter", message)
}

/// The checks before the upgrade, in the service's order: who (signature, expiry),
/// may they (IAM), what (parameters, endpoint), then where (address, groups).
fn accept(
    state: &SimState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Accepted, Refusal> {
    let path_and_query = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let query: Params = form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    // Only a presigned URL opens a tunnel.
    if !query.contains_key("X-Amz-Signature") {
        return Err(refuse(
            403,
            "AccessDeniedException",
            "Missing Authentication Token",
        ));
    }
    let request = auth::Request {
        method: method.as_str(),
        uri: path_and_query,
        headers,
        body: &[],
    };
    let caller = auth::verify(
        &state.accounts,
        &request,
        "ec2-instance-connect",
        SystemTime::now(),
    )
    .map_err(|e| {
        tracing::debug!(error = %e, "openTunnel refused");
        let api = e.api_error(auth::Protocol::Json);
        refuse(403, "AccessDeniedException", api.message)
    })?;
    let id = query
        .get("instanceConnectEndpointId")
        .cloned()
        .unwrap_or_default();
    let arn = format!(
        "arn:aws:ec2:{}:{}:instance-connect-endpoint/{id}",
        caller.region,
        auth::ACCOUNT_ID
    );
    if state
        .opts
        .denied_actions
        .contains("ec2-instance-connect:OpenTunnel")
    {
        return Err(refuse(403, "AccessDeniedException", format!("User: arn:aws:iam::{}:user/demo is not authorized to perform: ec2-instance-connect:OpenTunnel on resource: {arn} because no identity-based policy allows the ec2-instance-connect:OpenTunnel action", auth::ACCOUNT_ID)));
    }
    let endpoint = state
        .fleet
        .eice_endpoints
        .iter()
        .find(|e| e.id == id && e.region(state) == caller.region)
        .ok_or_else(|| invalid("The specified InstanceConnectEndpointId is not valid."))?;
    if !crate::fleet::reach::usable_state(&endpoint.state) {
        return Err(invalid(&format!(
            "The instance connect endpoint {id} is in state {} and cannot open tunnels.",
            endpoint.state
        )));
    }
    let port: u16 = query
        .get("remotePort")
        .and_then(|p| p.parse().ok())
        .filter(|p| *p > 0)
        .ok_or_else(|| invalid("The specified RemotePort is not valid."))?;
    let ip: std::net::IpAddr = query
        .get("privateIpAddress")
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| invalid("The specified PrivateIpAddress is not valid."))?;
    let secs: u64 = match query.get("maxTunnelDuration") {
        None => MAX_DURATION,
        Some(d) => d
            .parse()
            .ok()
            .filter(|d| (1..=MAX_DURATION).contains(d))
            .ok_or_else(|| invalid("The specified MaxTunnelDuration is not valid. Specify a value between 1 and 3600."))?,
    };
    Ok(Accepted {
        relay: route(state, endpoint, &ip.to_string(), port),
        endpoint: endpoint.clone(),
        duration: Duration::from_secs(secs),
    })
}

/// Where the endpoint's connection to `ip:port` lands, or why it goes nowhere.
fn route(state: &SimState, e: &SimEice, ip: &str, port: u16) -> Result<SocketAddr, &'static str> {
    let default = &state.fleet.default_region;
    let instance = state
        .fleet
        .instances
        .iter()
        .find(|i| {
            i.private_ip.as_deref() == Some(ip)
                && i.vpc_id.as_deref() == Some(e.vpc_id.as_str())
                && i.region(default) == e.region(state)
                && i.state.as_deref() == Some("running")
        })
        .ok_or("Connection timed out")?;
    let groups = |ids: &[String]| -> Vec<&super::vpc::SimSecurityGroup> {
        state
            .fleet
            .security_groups
            .iter()
            .filter(|g| ids.contains(&g.id))
            .collect()
    };
    let port = i32::from(port);
    // Out of the endpoint: its groups' egress must reach the instance.
    let egress = groups(&e.security_groups).iter().any(|g| match &g.egress {
        None => true,
        Some(rules) => rules
            .iter()
            .filter_map(|r| super::vpc::parse_rule(r))
            .any(|r| {
                r.allows(port)
                    && (instance.security_groups.contains(&r.source) || rule_covers(&r.source, ip))
            }),
    });
    // Into the instance: its groups' ingress must admit the endpoint.
    let source_ip = if e.preserve_client_ip {
        Some("127.0.0.1")
    } else {
        e.private_ip.as_deref()
    };
    let ingress = groups(&instance.security_groups).iter().any(|g| {
        g.ingress
            .iter()
            .filter_map(|r| super::vpc::parse_rule(r))
            .any(|r| {
                r.allows(port)
                    && (e.security_groups.contains(&r.source)
                        || source_ip.is_some_and(|s| rule_covers(&r.source, s)))
            })
    });
    if !(egress && ingress) {
        return Err("Connection timed out");
    }
    let relay = instance
        .target
        .or(state.opts.default_target)
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], port as u16)));
    Ok(relay)
}

/// `GET /openTunnel?…`: the checks, then the upgrade and the relay.
pub async fn open_tunnel(
    State(state): State<Arc<SimState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let accepted = match accept(&state, &method, &uri, &headers) {
        Ok(a) => a,
        Err(refusal) => return refusal.into_response(),
    };
    let Some(slot) = Tunnels::take(
        &state,
        &accepted.endpoint.id,
        accepted.endpoint.max_connections,
    ) else {
        return refuse(
            429,
            "LimitExceededException",
            format!(
                "The maximum number of concurrent connections ({}) for instance connect endpoint {} has been reached.",
                accepted.endpoint.max_connections, accepted.endpoint.id
            ),
        )
        .into_response();
    };
    ws.on_upgrade(move |socket| async move {
        relay(socket, accepted.relay, accepted.duration).await;
        drop(slot);
    })
}

async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await;
}

/// Bytes both ways until either side ends or the duration passes.
async fn relay(mut socket: WebSocket, target: Result<SocketAddr, &'static str>, limit: Duration) {
    let addr = match target {
        Ok(a) => a,
        Err(why) => return close(&mut socket, 1011, why).await,
    };
    let mut tcp =
        match tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr))
            .await
        {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(_)) => return close(&mut socket, 1011, "Connection refused").await,
            Err(_) => return close(&mut socket, 1011, "Connection timed out").await,
        };
    let _ = tcp.set_nodelay(true);
    let deadline = tokio::time::sleep(limit);
    tokio::pin!(deadline);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        tokio::select! {
            n = tcp.read(&mut buf) => match n {
                Ok(0) | Err(_) => return close(&mut socket, 1000, "").await,
                Ok(n) => {
                    if socket.send(Message::Binary(buf[..n].to_vec().into())).await.is_err() {
                        return;
                    }
                }
            },
            msg = socket.recv() => match msg {
                Some(Ok(Message::Binary(b))) => {
                    if tcp.write_all(&b).await.is_err() {
                        return close(&mut socket, 1000, "").await;
                    }
                }
                Some(Ok(Message::Text(_))) => {
                    return close(&mut socket, 1003, "Unsupported data").await;
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
            _ = &mut deadline => return close(&mut socket, 1000, CLOSE_EXPIRED).await,
        }
    }
}

/// Whether a security group rule's IPv4 CIDR source (`10.0.0.0/16`) covers `ip`, as EC2
/// evaluates it. The simulator's own reading, kept apart from the client's matcher so a
/// mistake in one is not repeated by the other.
fn rule_covers(cidr: &str, ip: &str) -> bool {
    let Some((net, bits)) = cidr.split_once('/') else {
        return false; // EC2 rules always carry a prefix length
    };
    let (Ok(net), Ok(bits), Ok(ip)) = (
        net.parse::<std::net::Ipv4Addr>(),
        bits.parse::<u32>(),
        ip.parse::<std::net::Ipv4Addr>(),
    ) else {
        return false;
    };
    if bits > 32 {
        return false;
    }
    let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
    u32::from(net) & mask == u32::from(ip) & mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_cover_their_block_only() {
        assert!(rule_covers("10.0.0.0/16", "10.0.3.4"));
        assert!(!rule_covers("10.0.0.0/16", "10.1.0.1"));
        assert!(rule_covers("0.0.0.0/0", "192.168.1.1"));
        assert!(rule_covers("10.0.0.5/32", "10.0.0.5") && !rule_covers("10.0.0.5/32", "10.0.0.6"));
        assert!(!rule_covers("10.0.0.0/33", "10.0.0.5") && !rule_covers("nonsense", "10.0.0.5"));
    }
    use crate::sim::{FleetFile, SimOptions};

    fn state() -> SimState {
        let fleet = FleetFile::parse(
            r#"
[[vpc]]
id = "vpc-1"
[[vpc]]
id = "vpc-2"
region = "eu-west-1"
[[instance_connect_endpoint]]
id = "eice-1"
vpc_id = "vpc-1"
subnet_id = "subnet-1"
security_groups = ["sg-e"]
[[instance_connect_endpoint]]
id = "eice-2"
vpc_id = "vpc-1"
subnet_id = "subnet-2"
state = "delete-complete"
[[instance_connect_endpoint]]
id = "eice-3"
vpc_id = "vpc-2"
subnet_id = "subnet-3"
"#,
        )
        .unwrap();
        SimState::new(fleet, SimOptions::default(), "127.0.0.1:1".parse().unwrap())
    }

    fn params(pairs: &[(&str, &str)]) -> Params {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn ids(xml: &str) -> Vec<&str> {
        xml.split("<instanceConnectEndpointId>")
            .skip(1)
            .map(|s| s.split('<').next().unwrap())
            .collect()
    }

    #[test]
    fn describe_filters_pages_and_keeps_to_the_region() {
        let s = state();
        let all = describe(&s, "us-east-1", &params(&[])).unwrap();
        assert_eq!(ids(&all), ["eice-1", "eice-2"]);
        assert!(all.contains("<dnsName>eice-1."), "{all}");
        assert!(all.contains(".ec2-instance-connect-endpoint.us-east-1.amazonaws.com</dnsName>"));
        assert!(all.contains("<securityGroupIdSet><item>sg-e</item></securityGroupIdSet>"));
        let usable = describe(
            &s,
            "us-east-1",
            &params(&[
                ("Filter.1.Name", "state"),
                ("Filter.1.Value.1", "create-complete"),
            ]),
        )
        .unwrap();
        assert_eq!(ids(&usable), ["eice-1"]);
        let page = describe(&s, "us-east-1", &params(&[("MaxResults", "1")])).unwrap();
        assert_eq!(ids(&page), ["eice-1"]);
        assert!(page.contains("<nextToken>1</nextToken>"));
        let next = describe(
            &s,
            "us-east-1",
            &params(&[("MaxResults", "1"), ("NextToken", "1")]),
        )
        .unwrap();
        assert_eq!(ids(&next), ["eice-2"]);
        assert!(!next.contains("nextToken"));
        assert_eq!(
            ids(&describe(&s, "eu-west-1", &params(&[])).unwrap()),
            ["eice-3"]
        );
        let bad = describe(&s, "us-east-1", &params(&[("Filter.1.Name", "owner")])).unwrap_err();
        assert_eq!(bad.code, "InvalidParameterValue");
        let missing = describe(
            &s,
            "us-east-1",
            &params(&[("InstanceConnectEndpointId.1", "eice-9")]),
        )
        .unwrap_err();
        assert_eq!(missing.code, "InvalidInstanceConnectEndpointId.NotFound");
    }
}
