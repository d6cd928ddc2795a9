//! The HTTP front: one handler that tells the protocols apart (JSON 1.1 by its
//! `X-Amz-Target`, EC2 and STS query by the `Action` form field), verifies the SigV4
//! signature (which also gives the region), applies denials, and renders errors the
//! way AWS does. The data-channel websocket is not signed (its first frame carries
//! the session's token), so it is routed before authentication.

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::Router;

use super::auth::{self, Protocol};
use super::{ec2, gateway, instance_connect, sessions, ssm, throttle, vpc, ApiError, SimState};

pub async fn serve(listener: tokio::net::TcpListener, state: Arc<SimState>) {
    let api = state.clone();
    let app = Router::new()
        .route("/v1/data-channel/{session}", get(gateway::upgrade))
        .route("/sim/stats", get(stats))
        .with_state(state)
        .fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let state = api.clone();
                async move { handle(&state, &method, &uri, &headers, &body).await }
            },
        );
    // Small frames (acks, keystrokes) must not wait for Nagle's algorithm.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "simulator stopped");
    }
}

/// `GET /sim/stats`: the data channels' counters, for tests (not an AWS API).
async fn stats(axum::extract::State(state): axum::extract::State<Arc<SimState>>) -> Response {
    let body = serde_json::to_string(&state.stats.snapshot()).unwrap_or_default();
    ([("content-type", "application/json")], body).into_response()
}

/// One API request: which protocol it speaks and which service signs for it.
enum Call<'a> {
    Json { target: &'a str },
    Query { params: ec2::Params },
}

impl Call<'_> {
    fn protocol(&self) -> Protocol {
        match self {
            Call::Json { .. } => Protocol::Json,
            Call::Query { params } if is_sts(params) => Protocol::Sts,
            Call::Query { .. } => Protocol::Ec2,
        }
    }

    /// The SigV4 signing name the operation expects (its credential scope's service).
    fn service(&self) -> &'static str {
        match self {
            Call::Json { target } if target.starts_with("AWSEC2InstanceConnectService.") => {
                "ec2-instance-connect"
            }
            Call::Json { .. } => "ssm",
            Call::Query { params } if is_sts(params) => "sts",
            Call::Query { .. } => "ec2",
        }
    }
}

fn is_sts(params: &ec2::Params) -> bool {
    params.get("Action").map(String::as_str) == Some("GetCallerIdentity")
}

async fn handle(
    state: &SimState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    if !state.opts.latency.is_zero() {
        tokio::time::sleep(state.opts.latency).await;
    }
    let call = match headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        Some(target) => Call::Json { target },
        None => Call::Query {
            params: form_urlencoded::parse(body).into_owned().collect(),
        },
    };

    // Authentication, before anything looks at what is asked.
    let request = auth::Request {
        method: method.as_str(),
        uri: uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"),
        headers,
        body,
    };
    let caller = match auth::verify(&state.accounts, &request, call.service(), SystemTime::now()) {
        Ok(caller) => caller,
        Err(e) => {
            tracing::debug!(error = %e, "request refused");
            return error_response(state, call.protocol(), e.api_error(call.protocol()));
        }
    };

    if let Some(busy) = throttle(state, &call) {
        return busy;
    }
    // The caller's account is all a request can see or act on.
    let who = Who {
        account: &caller.account_id,
        region: &caller.region,
    };
    match call {
        Call::Json { target } => json_call(state, who, target, body),
        Call::Query { params } => query_call(state, who, &params),
    }
}

/// Who calls, and where: the account of the signing key and the signed region.
#[derive(Clone, Copy)]
struct Who<'a> {
    account: &'a str,
    region: &'a str,
}

impl Who<'_> {
    /// IAM's check of this account's identity.
    fn deny(&self, state: &SimState, action: &str, ec2: bool) -> Result<(), ApiError> {
        if state.is_denied(self.account, action) {
            Err(ApiError::denied(action, ec2, self.account))
        } else {
            Ok(())
        }
    }

    /// A denial that names the resource acted on, as the service's do.
    fn deny_on(&self, state: &SimState, action: &str, resource: &str) -> Result<(), ApiError> {
        let wildcard = format!("arn:aws:ssm:*:{}:*", self.account);
        self.deny(state, action, false).map_err(|mut e| {
            e.message = e.message.replace(&wildcard, resource);
            e
        })
    }

    /// What IAM calls an instance (StartSession's and SendSSHPublicKey's resource):
    /// in the caller's account, whoever owns the id.
    fn instance_arn(&self, id: Option<&str>) -> String {
        format!(
            "arn:aws:ec2:{}:{}:instance/{}",
            self.region,
            self.account,
            id.unwrap_or("*")
        )
    }

    /// What IAM calls a session (ResumeSession's and TerminateSession's resource).
    fn session_arn(&self, id: Option<&str>) -> String {
        format!(
            "arn:aws:ssm:{}:{}:session/{}",
            self.region,
            self.account,
            id.unwrap_or("*")
        )
    }
}

/// An error as `protocol`'s service renders it.
fn error_response(state: &SimState, protocol: Protocol, e: ApiError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    match protocol {
        Protocol::Json => {
            let mut body = serde_json::json!({ "__type": e.code });
            if !e.message.is_empty() {
                body["message"] = e.message.clone().into();
            }
            let body = body.to_string();
            (
                status,
                [
                    ("content-type", "application/x-amz-json-1.1"),
                    ("x-amzn-errortype", e.code.as_str()),
                ],
                body,
            )
                .into_response()
        }
        Protocol::Ec2 => {
            let xml = format!(
                r#"<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>{}</Code><Message>{}</Message></Error></Errors><RequestID>{}</RequestID></Response>"#,
                ec2::escape(&e.code),
                ec2::escape(&e.message),
                state.request_id()
            );
            (status, [("content-type", "text/xml;charset=UTF-8")], xml).into_response()
        }
        Protocol::Sts => {
            let xml = format!(
                r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{}</RequestId></ErrorResponse>"#,
                ec2::escape(&e.code),
                ec2::escape(&e.message),
                state.request_id()
            );
            (status, [("content-type", "text/xml")], xml).into_response()
        }
    }
}

fn json_call(state: &SimState, who: Who, target: &str, body: &[u8]) -> Response {
    let (region, account) = (who.region, who.account);
    let (service, op) = target.split_once('.').unwrap_or(("", target));
    let req = match parse_json_body(body) {
        Ok(req) => req,
        Err(e) => return error_response(state, Protocol::Json, e),
    };
    let result = match (service, op) {
        ("AmazonSSM", "DescribeInstanceInformation") => who
            .deny(state, "ssm:DescribeInstanceInformation", false)
            .and_then(|_| ssm::describe_instance_information(state, account, region, &req)),
        ("AmazonSSM", "StartSession") => who
            .deny_on(
                state,
                "ssm:StartSession",
                &who.instance_arn(req["Target"].as_str()),
            )
            .and_then(|_| sessions::start_session(state, account, region, &req)),
        ("AWSEC2InstanceConnectService", "SendSSHPublicKey") => who
            .deny_on(
                state,
                "ec2-instance-connect:SendSSHPublicKey",
                &who.instance_arn(req["InstanceId"].as_str()),
            )
            .and_then(|_| instance_connect::send_ssh_public_key(state, account, region, &req)),
        ("AmazonSSM", "ResumeSession") => who
            .deny_on(
                state,
                "ssm:ResumeSession",
                &who.session_arn(req["SessionId"].as_str()),
            )
            .and_then(|_| sessions::resume_session(state, account, &req)),
        ("AmazonSSM", "TerminateSession") => who
            .deny_on(
                state,
                "ssm:TerminateSession",
                &who.session_arn(req["SessionId"].as_str()),
            )
            .and_then(|_| sessions::terminate_session(state, account, &req)),
        ("AmazonSSM", "DescribeSessions") => who
            .deny_on(
                state,
                "ssm:DescribeSessions",
                &format!("arn:aws:ssm:{region}:{account}:*"),
            )
            .and_then(|_| sessions::describe_sessions(state, account, &req)),
        _ => Err(ApiError::new(
            400,
            "UnknownOperationException",
            format!("Unknown operation {target}"),
        )),
    };
    match result {
        Ok(v) => (
            StatusCode::OK,
            [("content-type", "application/x-amz-json-1.1")],
            v.to_string(),
        )
            .into_response(),
        Err(e) => error_response(state, Protocol::Json, e),
    }
}

/// A JSON 1.1 request body: an object (an empty body counts as `{}`). Anything else
/// is refused before the operation runs, as the services' front end does: 400 and
/// `{"__type":"SerializationException"}` with no message (a real answer is quoted in
/// pplu/aws-sdk-perl#237).
pub fn parse_json_body(body: &[u8]) -> Result<serde_json::Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::json!({}));
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) if v.is_object() => Ok(v),
        _ => Err(ApiError::new(400, "SerializationException", "")),
    }
}

fn query_call(state: &SimState, who: Who, params: &ec2::Params) -> Response {
    let (region, account) = (who.region, who.account);
    let action = params.get("Action").map(String::as_str).unwrap_or("");
    let result = match action {
        "DescribeInstances" => who
            .deny(state, "ec2:DescribeInstances", true)
            .and_then(|_| ec2::describe_instances(state, account, region, params)),
        "DescribeRouteTables" => who
            .deny(state, "ec2:DescribeRouteTables", true)
            .and_then(|_| vpc::describe_route_tables(state, region, params)),
        "DescribeVpcEndpoints" => who
            .deny(state, "ec2:DescribeVpcEndpoints", true)
            .and_then(|_| vpc::describe_vpc_endpoints(state, region, params)),
        "DescribeVpcAttribute" => who
            .deny(state, "ec2:DescribeVpcAttribute", true)
            .and_then(|_| vpc::describe_vpc_attribute(state, region, params)),
        "DescribeSecurityGroups" => who
            .deny(state, "ec2:DescribeSecurityGroups", true)
            .and_then(|_| vpc::describe_security_groups(state, region, params)),
        // STS cannot deny GetCallerIdentity, so neither does the simulator.
        "GetCallerIdentity" => Ok(vpc::get_caller_identity(state, account)),
        _ => Err(ApiError::new(
            400,
            "InvalidAction",
            format!("The action {action} is not valid for this web service."),
        )),
    };
    match result {
        Ok(xml) => (
            StatusCode::OK,
            [("content-type", "text/xml;charset=UTF-8")],
            xml,
        )
            .into_response(),
        Err(e) => error_response(state, Protocol::Ec2, e),
    }
}

/// `--throttle`: answers this share of calls with the service's throttling error.
fn throttle(state: &SimState, call: &Call) -> Option<Response> {
    let e = match call {
        Call::Json { target } => throttle::answer(Some(target), "")?,
        Call::Query { params } => {
            throttle::answer(None, params.get("Action").map_or("", String::as_str))?
        }
    };
    state
        .throttle
        .roll()
        .then(|| error_response(state, call.protocol(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_json_bodies_are_serialization_exceptions() {
        assert_eq!(parse_json_body(b"").unwrap(), serde_json::json!({}));
        assert_eq!(parse_json_body(b"{\"a\":1}").unwrap()["a"], 1);
        for bad in [
            &b"{"[..],
            b"nul",
            b"[1,2]",
            b"\"x\"",
            b"{\"a\":}",
            b"\xff\xfe",
        ] {
            let e = parse_json_body(bad).unwrap_err();
            assert_eq!(
                (e.status, e.code.as_str()),
                (400, "SerializationException"),
                "{bad:?}"
            );
        }
    }
}
