//! The HTTP front: one handler that tells the protocols apart (JSON 1.1 by its
//! `X-Amz-Target`, EC2 query by its `Action` form field), finds the region in the
//! SigV4 credential scope, applies denials, and renders errors the way AWS does.

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::Router;

use super::{ec2, gateway, instance_connect, sessions, ssm, throttle, vpc, ApiError, SimState};

pub async fn serve(listener: tokio::net::TcpListener, state: Arc<SimState>) {
    let api = state.clone();
    let app = Router::new()
        .route("/v1/data-channel/{session}", get(gateway::upgrade))
        .with_state(state)
        .fallback(move |headers: HeaderMap, body: Bytes| {
            let state = api.clone();
            async move { handle(&state, &headers, &body).await }
        });
    // Small frames (acks, keystrokes) must not wait for Nagle's algorithm.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "simulator stopped");
    }
}

/// The region from `Authorization: AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/SERVICE/aws4_request`.
pub fn region_of(headers: &HeaderMap) -> Option<String> {
    let auth = headers.get("authorization")?.to_str().ok()?;
    let scope = auth.split("Credential=").nth(1)?;
    scope.split('/').nth(2).map(str::to_string)
}

async fn handle(state: &SimState, headers: &HeaderMap, body: &[u8]) -> Response {
    if !state.opts.latency.is_zero() {
        tokio::time::sleep(state.opts.latency).await;
    }
    if let Some(busy) = throttle(state, headers, body) {
        return busy;
    }
    let region = region_of(headers).unwrap_or_else(|| state.fleet.default_region.clone());
    match headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        Some(target) => json_call(state, &region, target, body),
        None => query_call(state, &region, body),
    }
}

fn json_call(state: &SimState, region: &str, target: &str, body: &[u8]) -> Response {
    let (service, op) = target.split_once('.').unwrap_or(("", target));
    let req: serde_json::Value = serde_json::from_slice(body).unwrap_or(serde_json::Value::Null);
    let result = match (service, op) {
        ("AmazonSSM", "DescribeInstanceInformation") => {
            deny(state, "ssm:DescribeInstanceInformation", false)
                .and_then(|_| ssm::describe_instance_information(state, region, &req))
        }
        ("AmazonSSM", "StartSession") => deny_on(
            state,
            "ssm:StartSession",
            &instance_arn(region, req["Target"].as_str()),
        )
        .and_then(|_| sessions::start_session(state, region, &req)),
        ("AWSEC2InstanceConnectService", "SendSSHPublicKey") => deny_on(
            state,
            "ec2-instance-connect:SendSSHPublicKey",
            &instance_arn(region, req["InstanceId"].as_str()),
        )
        .and_then(|_| instance_connect::send_ssh_public_key(state, region, &req)),
        ("AmazonSSM", "ResumeSession") => deny_on(
            state,
            "ssm:ResumeSession",
            &session_arn(region, req["SessionId"].as_str()),
        )
        .and_then(|_| sessions::resume_session(state, &req)),
        ("AmazonSSM", "TerminateSession") => deny_on(
            state,
            "ssm:TerminateSession",
            &session_arn(region, req["SessionId"].as_str()),
        )
        .and_then(|_| sessions::terminate_session(state, &req)),
        ("AmazonSSM", "DescribeSessions") => deny_on(
            state,
            "ssm:DescribeSessions",
            &format!("arn:aws:ssm:{region}:123456789012:*"),
        )
        .and_then(|_| sessions::describe_sessions(state, &req)),
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
        Err(e) => json_error(&e),
    }
}

/// An error in the JSON 1.1 protocol's shape.
fn json_error(e: &ApiError) -> Response {
    let body = serde_json::json!({ "__type": e.code, "message": e.message }).to_string();
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
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

fn query_call(state: &SimState, region: &str, body: &[u8]) -> Response {
    let params: ec2::Params = form_urlencoded::parse(body).into_owned().collect();
    let action = params.get("Action").map(String::as_str).unwrap_or("");
    let result = match action {
        "DescribeInstances" => deny(state, "ec2:DescribeInstances", true)
            .and_then(|_| ec2::describe_instances(state, region, &params)),
        "DescribeRouteTables" => deny(state, "ec2:DescribeRouteTables", true)
            .and_then(|_| vpc::describe_route_tables(state, region, &params)),
        "DescribeVpcEndpoints" => deny(state, "ec2:DescribeVpcEndpoints", true)
            .and_then(|_| vpc::describe_vpc_endpoints(state, region, &params)),
        "DescribeVpcAttribute" => deny(state, "ec2:DescribeVpcAttribute", true)
            .and_then(|_| vpc::describe_vpc_attribute(state, region, &params)),
        "DescribeSecurityGroups" => deny(state, "ec2:DescribeSecurityGroups", true)
            .and_then(|_| vpc::describe_security_groups(state, region, &params)),
        // STS cannot deny GetCallerIdentity, so neither does the simulator.
        "GetCallerIdentity" => Ok(vpc::get_caller_identity(state)),
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
        Err(e) => query_error(state, &e),
    }
}

/// An error in the EC2 query protocol's shape.
fn query_error(state: &SimState, e: &ApiError) -> Response {
    let xml = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>{}</Code><Message>{}</Message></Error></Errors><RequestID>{}</RequestID></Response>"#,
        ec2::escape(&e.code),
        ec2::escape(&e.message),
        state.request_id()
    );
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    (status, [("content-type", "text/xml;charset=UTF-8")], xml).into_response()
}

/// `--throttle`: answers this share of calls with the service's throttling error.
fn throttle(state: &SimState, headers: &HeaderMap, body: &[u8]) -> Option<Response> {
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok());
    let action = match target {
        Some(_) => String::new(),
        None => form_urlencoded::parse(body)
            .find(|(k, _)| k == "Action")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default(),
    };
    let e = throttle::answer(target, &action)?;
    if !state.throttle.roll() {
        return None;
    }
    Some(match target {
        Some(_) => json_error(&e),
        None => query_error(state, &e),
    })
}

fn deny(state: &SimState, action: &str, ec2: bool) -> Result<(), ApiError> {
    if state.opts.denied_actions.contains(action) {
        Err(ApiError::denied(action, ec2))
    } else {
        Ok(())
    }
}

/// A denial that names the resource acted on, as the service's do.
fn deny_on(state: &SimState, action: &str, resource: &str) -> Result<(), ApiError> {
    deny(state, action, false).map_err(|mut e| {
        e.message = e.message.replace("arn:aws:ssm:*:123456789012:*", resource);
        e
    })
}

/// What IAM calls an instance (StartSession's and SendSSHPublicKey's resource).
fn instance_arn(region: &str, id: Option<&str>) -> String {
    format!(
        "arn:aws:ec2:{region}:123456789012:instance/{}",
        id.unwrap_or("*")
    )
}

/// What IAM calls a session (ResumeSession's and TerminateSession's resource).
fn session_arn(region: &str, id: Option<&str>) -> String {
    format!(
        "arn:aws:ssm:{region}:123456789012:session/{}",
        id.unwrap_or("*")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_from_sigv4_scope() {
        let mut h = HeaderMap::new();
        h.insert(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKID/20261123/eu-west-1/ec2/aws4_request, SignedHeaders=host, Signature=abc"
                .parse()
                .unwrap(),
        );
        assert_eq!(region_of(&h).as_deref(), Some("eu-west-1"));
        assert_eq!(region_of(&HeaderMap::new()), None);
    }
}
