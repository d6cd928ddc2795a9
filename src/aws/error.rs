//! Turns SDK errors into `AwsError`: what failed (the IAM action, the region), why,
//! and the one thing to do about it. Every AWS failure a user sees goes through here.
//! The service's code and message are untrusted text: they are made inert for a
//! terminal when the error is built, so no later print can forget it.

use std::fmt;

use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::result::ConnectorError;
use serde::Serialize;

use crate::net::ProxyError;
use crate::text::sanitize;

/// The broad reason a call failed; it decides the advice we give.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AwsErrorKind {
    AccessDenied,
    NoCredentials,
    InvalidCredentials,
    ExpiredCredentials,
    /// The request's date is more than 15 minutes from AWS's clock.
    ClockSkew,
    Unreachable,
    /// The HTTP proxy in the way refused or failed (the message says which, and why).
    Proxy,
    Throttled,
    NotImplemented,
    /// Session Manager cannot reach the target's agent (`TargetNotConnected`).
    TargetNotConnected,
    Other,
}

/// One failed AWS call, explained.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
pub struct AwsError {
    /// The IAM action, e.g. `ssm:DescribeInstanceInformation`.
    pub action: String,
    pub region: String,
    pub kind: AwsErrorKind,
    /// The service's error code (`AccessDeniedException`), when it sent one.
    pub code: Option<String>,
    pub message: String,
    /// The AWS profile(s) the call was made with, when one was named (`a, b` once
    /// merged): every line of a multi-account listing says whose it is. Boxed: most
    /// errors have none, and every `Result` carrying an error stays small.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<Box<ProfileTag>>,
}

/// Whose credentials a call was made with (serialized as the profile's name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileTag {
    pub name: String,
    /// The SSO login those credentials come from (`aws sso login --sso-session S`).
    pub sso_login: Option<String>,
}

impl Serialize for ProfileTag {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name)
    }
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.summary())
    }
}

impl AwsError {
    /// One line: what failed and why, inert for a terminal.
    pub fn summary(&self) -> String {
        let summary = match self.profile() {
            Some(p) if p.contains(", ") => format!("profiles {p}: {}", self.raw_summary()),
            Some(p) => format!("profile {p}: {}", self.raw_summary()),
            None => self.raw_summary(),
        };
        sanitize(&summary).into_owned()
    }

    /// The same error, as met with `profile` (and its SSO login, if any).
    pub fn in_profile(mut self, profile: Option<&str>, sso_login: Option<String>) -> Self {
        self.profile = profile.map(|name| {
            Box::new(ProfileTag {
                name: name.to_string(),
                sso_login,
            })
        });
        self
    }

    /// The profile(s) the call was made with, if one was named.
    pub fn profile(&self) -> Option<&str> {
        self.profile.as_deref().map(|t| t.name.as_str())
    }

    /// The command that logs those credentials in again, for an SSO profile.
    pub fn sso_login(&self) -> Option<&str> {
        self.profile.as_deref().and_then(|t| t.sso_login.as_deref())
    }

    /// Credentials that an SSO login would renew.
    fn needs_login(&self) -> bool {
        matches!(
            self.kind,
            AwsErrorKind::ExpiredCredentials
                | AwsErrorKind::NoCredentials
                | AwsErrorKind::InvalidCredentials
        )
    }

    fn raw_summary(&self) -> String {
        let code = self
            .code
            .as_deref()
            .map(|c| format!(" ({c})"))
            .unwrap_or_default();
        let (action, region) = (&self.action, &self.region);
        match self.kind {
            AwsErrorKind::AccessDenied => format!("{action} was denied in {region}{code}"),
            AwsErrorKind::NoCredentials => "no AWS credentials were found".to_string(),
            AwsErrorKind::InvalidCredentials => {
                format!("AWS rejected the credentials for {action} in {region}{code}")
            }
            AwsErrorKind::ExpiredCredentials => {
                format!("the AWS credentials have expired ({action} in {region}){code}")
            }
            AwsErrorKind::ClockSkew => format!(
                "AWS refused {action} in {region}: this computer's clock is more than 15 minutes off{code}"
            ),
            AwsErrorKind::Unreachable => {
                format!(
                    "could not reach AWS for {action} in {region}: {}",
                    self.message
                )
            }
            AwsErrorKind::Proxy => format!("{action} in {region}: {}", self.message),
            AwsErrorKind::Throttled => format!("{action} was throttled in {region}{code}"),
            AwsErrorKind::NotImplemented => {
                format!("the endpoint for {region} does not implement {action}{code}")
            }
            AwsErrorKind::TargetNotConnected => {
                let msg = self.message.trim_end_matches('.');
                format!("Session Manager cannot reach the instance in {region}: {msg}")
            }
            AwsErrorKind::Other => {
                let msg = if self.message.is_empty() {
                    String::new()
                } else {
                    format!(": {}", self.message)
                };
                format!("{action} failed in {region}{code}{msg}")
            }
        }
    }

    /// One line: what to do about it.
    pub fn fix(&self) -> String {
        let action = &self.action;
        if let (Some(login), true) = (self.sso_login(), self.needs_login()) {
            return format!("log in again: `{login}`, then press Ctrl-r (or run again)");
        }
        let profile = self.profile();
        match self.kind {
            AwsErrorKind::AccessDenied => format!(
                "allow {action} for {} (the policy ec2ssh needs is in the README, \"IAM permissions\")",
                profile.map_or("your IAM identity".to_string(), |p| format!("the IAM identity of profile {p}"))
            ),
            AwsErrorKind::ExpiredCredentials if profile.is_some() => format!(
                "refresh them: `aws sso login --profile {}` for SSO, or renew that profile's session credentials",
                profile.unwrap_or_default()
            ),
            AwsErrorKind::NoCredentials => "configure credentials (`aws configure`, `aws sso login --profile NAME`, or AWS_PROFILE / AWS_ACCESS_KEY_ID), or try `ec2ssh demo`".to_string(),
            AwsErrorKind::InvalidCredentials => "check the access key and profile in use (`aws sts get-caller-identity`), or pick another with --profile".to_string(),
            AwsErrorKind::ExpiredCredentials => "refresh them: `aws sso login --profile NAME` for SSO, or renew your session credentials".to_string(),
            AwsErrorKind::ClockSkew => "set the system clock right (e.g. turn on NTP: `timedatectl set-ntp true`)".to_string(),
            AwsErrorKind::Unreachable => "check the network or proxy, the region name, and any AWS_ENDPOINT_URL* override; from a private VPC you need its interface endpoints".to_string(),
            AwsErrorKind::Proxy => "check https_proxy/HTTPS_PROXY, http_proxy, ALL_PROXY and NO_PROXY (see the README's \"Proxies\"): the proxy must allow CONNECT to the AWS endpoints on port 443".to_string(),
            AwsErrorKind::Throttled => "wait a moment and press Ctrl-r (or run again); fewer regions at once also helps".to_string(),
            AwsErrorKind::NotImplemented => "point AWS_ENDPOINT_URL* at a service that implements it, or unset the override".to_string(),
            AwsErrorKind::TargetNotConnected => "check that `ec2ssh list` shows it Online: the instance must be running, its SSM agent started, and able to reach the ssm, ssmmessages and ec2messages endpoints (NAT, or VPC interface endpoints)".to_string(),
            AwsErrorKind::Other => "run again with -v for details".to_string(),
        }
    }

    /// Classifies any SDK error (all AWS SDK crates share these types).
    pub fn from_sdk<E, R>(action: &str, region: &str, err: &SdkError<E, R>) -> AwsError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: fmt::Debug + 'static,
    {
        // The Display of every layer, never the Debug dump DisplayErrorContext ends with.
        let context = chain_text(err);
        let (kind, code, message) = match err {
            SdkError::ServiceError(se) => {
                let e = se.err();
                let code = e.code().map(|c| sanitize(c).into_owned());
                let message = sanitize(e.message().unwrap_or_default()).into_owned();
                (kind_for_code(code.as_deref(), &message), code, message)
            }
            SdkError::TimeoutError(_) => (
                AwsErrorKind::Unreachable,
                None,
                format!("timed out waiting for {}", endpoint_host(action, region)),
            ),
            SdkError::DispatchFailure(df) => {
                if let Some(e) = df.as_connector_error().and_then(proxy_error) {
                    (AwsErrorKind::Proxy, None, e.to_string())
                } else if let Some(kind) = credentials_kind(&context) {
                    (kind, None, context.clone())
                } else if df.is_io() || df.is_timeout() {
                    let host = endpoint_host(action, region);
                    (AwsErrorKind::Unreachable, None, network_reason(err, &host))
                } else {
                    (AwsErrorKind::Other, None, context.clone())
                }
            }
            SdkError::ResponseError(_) => (
                AwsErrorKind::NotImplemented,
                None,
                "the response could not be understood".into(),
            ),
            _ => (
                credentials_kind(&context).unwrap_or(AwsErrorKind::Other),
                None,
                context.clone(),
            ),
        };
        tracing::debug!(action, region, error = %sanitize(&DisplayErrorContext(err).to_string()), "AWS call failed");
        AwsError {
            action: action.to_string(),
            region: region.to_string(),
            kind,
            code,
            message: sanitize(&message).into_owned(),
            profile: None,
        }
    }

    /// The same failure, whichever call and region hit it: what the user reads (the
    /// summary without action and region) and does about it is the same.
    fn same_failure(&self, other: &AwsError) -> bool {
        let call_independent = matches!(
            self.kind,
            AwsErrorKind::NoCredentials
                | AwsErrorKind::InvalidCredentials
                | AwsErrorKind::ExpiredCredentials
                | AwsErrorKind::Unreachable
        );
        // One SSO login renews every profile of its session: one line for all of them.
        let same_login = self.needs_login()
            && self.sso_login().is_some()
            && self.sso_login() == other.sso_login();
        // A profile whose credentials fail fails every call alike: one line for it.
        let same_profile_credentials =
            call_independent && self.kind != AwsErrorKind::Unreachable && self.profile.is_some();
        (self.profile() == other.profile() || same_login)
            && self.kind == other.kind
            && self.code == other.code
            && (self.action == other.action
                || (call_independent && self.message == other.message)
                || same_profile_credentials)
    }
}

/// One error per distinct failure, naming every action and region it happened in:
/// a denied action in five regions is one line, and missing credentials (which sink
/// every call alike) are said once, not once per service.
pub fn merge(errors: Vec<AwsError>) -> Vec<AwsError> {
    fn add(list: &mut String, item: &str) {
        if !list.split(", ").any(|x| x == item) {
            list.push_str(", ");
            list.push_str(item);
        }
    }
    let mut out: Vec<AwsError> = Vec::new();
    for e in errors {
        match out.iter_mut().find(|o| o.same_failure(&e)) {
            Some(o) => {
                add(&mut o.action, &e.action);
                add(&mut o.region, &e.region);
                if let (Some(tag), Some(p)) = (o.profile.as_mut(), e.profile()) {
                    add(&mut tag.name, p);
                }
            }
            None => out.push(e),
        }
    }
    out
}

/// The host a call to `action` in `region` goes to: the endpoint override from the
/// environment (`AWS_ENDPOINT_URL_<SERVICE>`, `AWS_ENDPOINT_URL`) or AWS's regional
/// endpoint. (An `endpoint_url` set only in the AWS config file is not seen here.)
fn endpoint_host(action: &str, region: &str) -> String {
    let service = action.split(':').next().unwrap_or(action);
    let var = format!(
        "AWS_ENDPOINT_URL_{}",
        service.to_ascii_uppercase().replace('-', "_")
    );
    let url = [var.as_str(), "AWS_ENDPOINT_URL"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()));
    match url {
        Some(u) => {
            let rest = u.split_once("://").map_or(u.as_str(), |(_, r)| r);
            rest.split(['/', '?']).next().unwrap_or(rest).to_string()
        }
        None if region.starts_with("cn-") => format!("{service}.{region}.amazonaws.com.cn"),
        None => format!("{service}.{region}.amazonaws.com"),
    }
}

/// The Display of `err` and each of its sources, joined by ": ", a layer left out
/// when the next one already says it.
fn chain_text(err: &(dyn std::error::Error + 'static)) -> String {
    let layers: Vec<String> = std::iter::successors(Some(err), |e| e.source())
        .map(|e| e.to_string())
        .collect();
    let mut parts: Vec<&str> = Vec::new();
    for (n, l) in layers.iter().enumerate() {
        if layers
            .get(n + 1)
            .is_some_and(|next| l.contains(next.as_str()))
        {
            continue;
        }
        parts.push(l);
    }
    parts.join(": ")
}

/// Why a request never got an answer, in words, from the error's source chain: name
/// resolution, a refused or reset connection, TLS, a timeout; else the innermost cause.
fn network_reason(err: &(dyn std::error::Error + 'static), host: &str) -> String {
    let chain: Vec<&(dyn std::error::Error + 'static)> =
        std::iter::successors(Some(err), |e| e.source()).collect();
    let layer = |prefix: &str| chain.iter().any(|e| e.to_string().starts_with(prefix));
    let innermost = chain.last().map(|e| e.to_string()).unwrap_or_default();
    let io = chain
        .iter()
        .rev()
        .find_map(|e| e.downcast_ref::<std::io::Error>());
    use std::io::ErrorKind as K;
    if layer("dns error") {
        return format!("name resolution failed for {host} ({innermost})");
    }
    if layer("TLS handshake failed") || layer("tls") {
        return format!("TLS error with {host}: {innermost}");
    }
    match io.map(std::io::Error::kind) {
        Some(K::ConnectionRefused) => format!("connection refused by {host}"),
        Some(K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe) => {
            format!("{host} closed the connection ({innermost})")
        }
        Some(K::TimedOut) => format!("timed out connecting to {host}"),
        _ if chain
            .iter()
            .any(|e| e.to_string() == "timeout" || e.to_string().contains("timed out")) =>
        {
            format!("timed out waiting for {host}")
        }
        _ => format!("{host}: {innermost}"),
    }
}

fn kind_for_code(code: Option<&str>, message: &str) -> AwsErrorKind {
    match code.unwrap_or_default() {
        "AccessDeniedException" | "AccessDenied" | "UnauthorizedOperation" => {
            AwsErrorKind::AccessDenied
        }
        "ExpiredToken" | "ExpiredTokenException" => AwsErrorKind::ExpiredCredentials,
        "RequestExpired" | "RequestTimeTooSkewed" | "RequestInTheFuture" => AwsErrorKind::ClockSkew,
        "InvalidSignatureException" | "SignatureDoesNotMatch"
            if message.starts_with("Signature expired")
                || message.starts_with("Signature not yet current") =>
        {
            AwsErrorKind::ClockSkew
        }
        "AuthFailure"
        | "InvalidClientTokenId"
        | "UnrecognizedClientException"
        | "SignatureDoesNotMatch"
        | "InvalidSignatureException"
        | "IncompleteSignature"
        | "IncompleteSignatureException"
        | "MissingAuthenticationToken"
        | "MissingAuthenticationTokenException" => AwsErrorKind::InvalidCredentials,
        "Throttling"
        | "ThrottlingException"
        | "RequestLimitExceeded"
        | "TooManyRequestsException" => AwsErrorKind::Throttled,
        "TargetNotConnected" => AwsErrorKind::TargetNotConnected,
        "UnknownOperationException" | "InvalidAction" | "NotImplemented" => {
            AwsErrorKind::NotImplemented
        }
        "" if message.to_ascii_lowercase().contains("not yet implemented") => {
            AwsErrorKind::NotImplemented
        }
        _ => AwsErrorKind::Other,
    }
}

/// The proxy's own account of a failed connection, if a proxy was in the way.
fn proxy_error(e: &ConnectorError) -> Option<&ProxyError> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if let Some(p) = err.downcast_ref::<ProxyError>() {
            return Some(p);
        }
        next = err.source();
    }
    None
}

fn credentials_kind(context: &str) -> Option<AwsErrorKind> {
    let lower = context.to_ascii_lowercase();
    // The SSO portal's 401 for a token it no longer knows, and a missing token cache
    // file: both need `aws sso login`, like an expired token.
    let sso_login = lower.contains("unauthorizedexception")
        || lower.contains("session token not found or invalid")
        || lower.contains("failed to load the cached sso token")
        || lower.contains("sso/cache");
    if sso_login
        || (lower.contains("expired") && (lower.contains("token") || lower.contains("sso")))
    {
        Some(AwsErrorKind::ExpiredCredentials)
    } else if lower.contains("no credentials")
        || lower.contains("failed to load credentials")
        || lower.contains("credentials provider was not enabled")
        || lower.contains("no credential")
    {
        Some(AwsErrorKind::NoCredentials)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(kind: AwsErrorKind, code: Option<&str>) -> AwsError {
        AwsError {
            action: "ssm:DescribeInstanceInformation".into(),
            region: "us-east-1".into(),
            kind,
            code: code.map(Into::into),
            message: "User: x is not authorized".into(),
            profile: None,
        }
    }

    #[test]
    fn sso_failures_need_a_login() {
        for text in [
            "dispatch failure: other: an error occurred while loading credentials: an error occurred while loading credentials: an error occurred while loading an access token: the SSO token has expired and cannot be refreshed (ExpiredToken)",
            "dispatch failure: other: an error occurred while loading credentials: an error occurred while loading credentials: service error: UnauthorizedException: Session token not found or invalid: x",
            "dispatch failure: other: an error occurred while loading credentials: an error occurred while loading credentials: an error occurred while loading an access token: failed to load the cached SSO token (x)",
        ] {
            assert_eq!(credentials_kind(text), Some(AwsErrorKind::ExpiredCredentials), "{text}");
        }
    }

    #[test]
    fn profile_errors_name_the_profile_and_one_login_serves_its_session() {
        let expired = |p: &str| {
            AwsError {
                kind: AwsErrorKind::ExpiredCredentials,
                code: None,
                ..err(AwsErrorKind::ExpiredCredentials, None)
            }
            .in_profile(Some(p), Some("aws sso login --sso-session corp".into()))
        };
        let merged = merge(vec![expired("dev"), expired("stage")]);
        assert_eq!(merged.len(), 1);
        assert!(
            merged[0].summary().starts_with("profiles dev, stage: "),
            "{}",
            merged[0].summary()
        );
        assert_eq!(
            merged[0].fix(),
            "log in again: `aws sso login --sso-session corp`, then press Ctrl-r (or run again)"
        );
        // A denial stays one line per profile, naming the action and the profile.
        let denied = |p: &str| {
            err(AwsErrorKind::AccessDenied, Some("AccessDeniedException")).in_profile(Some(p), None)
        };
        let merged = merge(vec![denied("dev"), denied("prod")]);
        assert_eq!(merged.len(), 2);
        assert!(merged[1]
            .summary()
            .starts_with("profile prod: ssm:DescribeInstanceInformation was denied"));
        assert!(
            merged[1].fix().contains("the IAM identity of profile prod"),
            "{}",
            merged[1].fix()
        );
    }

    #[test]
    fn access_denied_names_the_action_and_the_fix() {
        let e = err(AwsErrorKind::AccessDenied, Some("AccessDeniedException"));
        assert_eq!(
            e.summary(),
            "ssm:DescribeInstanceInformation was denied in us-east-1 (AccessDeniedException)"
        );
        assert!(e.fix().starts_with("allow ssm:DescribeInstanceInformation"));
    }

    #[test]
    fn codes_map_to_kinds() {
        assert_eq!(
            kind_for_code(Some("UnauthorizedOperation"), ""),
            AwsErrorKind::AccessDenied
        );
        assert_eq!(
            kind_for_code(Some("ExpiredToken"), ""),
            AwsErrorKind::ExpiredCredentials
        );
        assert_eq!(
            kind_for_code(Some("AuthFailure"), ""),
            AwsErrorKind::InvalidCredentials
        );
        assert_eq!(
            kind_for_code(Some("ThrottlingException"), ""),
            AwsErrorKind::Throttled
        );
        assert_eq!(kind_for_code(Some("Weird"), ""), AwsErrorKind::Other);
        assert_eq!(
            kind_for_code(
                Some("InvalidSignatureException"),
                "The request signature we calculated does not match"
            ),
            AwsErrorKind::InvalidCredentials
        );
        assert_eq!(
            kind_for_code(
                Some("InvalidSignatureException"),
                "Signature expired: 20261123T100000Z is now earlier than 20261123T100100Z (20261123T101600Z - 15 min.)"
            ),
            AwsErrorKind::ClockSkew
        );
        assert_eq!(
            kind_for_code(Some("RequestExpired"), "Request has expired."),
            AwsErrorKind::ClockSkew
        );
        assert_eq!(
            kind_for_code(Some("UnrecognizedClientException"), ""),
            AwsErrorKind::InvalidCredentials
        );
    }

    #[test]
    fn credential_problems_are_recognised_in_error_chains() {
        assert_eq!(
            credentials_kind("dispatch failure: no credentials in the property bag"),
            Some(AwsErrorKind::NoCredentials)
        );
        assert_eq!(
            credentials_kind("the SSO token has expired"),
            Some(AwsErrorKind::ExpiredCredentials)
        );
        assert_eq!(credentials_kind("connection refused"), None);
    }

    fn failure(action: &str, region: &str, kind: AwsErrorKind, message: &str) -> AwsError {
        AwsError {
            action: action.into(),
            region: region.into(),
            kind,
            code: None,
            message: message.into(),
            profile: None,
        }
    }

    #[test]
    fn merge_says_a_call_independent_failure_once() {
        let no_creds = |a: &str, r: &str| failure(a, r, AwsErrorKind::NoCredentials, "x");
        let merged = merge(vec![
            no_creds("ec2:DescribeInstances", "us-east-1"),
            no_creds("ssm:DescribeInstanceInformation", "us-east-1"),
            no_creds("ec2:DescribeInstances", "eu-west-1"),
        ]);
        assert_eq!(merged.len(), 1);
        assert_eq!(merged[0].region, "us-east-1, eu-west-1");
        assert_eq!(merged[0].summary(), "no AWS credentials were found");
        // Unreachable: one line when the reason is the same, two when it differs.
        let down = |a: &str, m: &str| failure(a, "us-east-1", AwsErrorKind::Unreachable, m);
        let merged = merge(vec![
            down("ec2:DescribeInstances", "connection refused by 127.0.0.1:9"),
            down(
                "ssm:DescribeInstanceInformation",
                "connection refused by 127.0.0.1:9",
            ),
            down("sts:GetCallerIdentity", "timed out waiting for 127.0.0.1:9"),
        ]);
        assert_eq!(merged.len(), 2);
        assert_eq!(
            merged[0].summary(),
            "could not reach AWS for ec2:DescribeInstances, ssm:DescribeInstanceInformation in us-east-1: connection refused by 127.0.0.1:9"
        );
        // A denial is per action.
        let denied = |a: &str| AwsError {
            code: Some("AccessDenied".into()),
            ..failure(a, "us-east-1", AwsErrorKind::AccessDenied, "")
        };
        assert_eq!(merge(vec![denied("ec2:A"), denied("ssm:B")]).len(), 2);
    }

    /// An error with a source chain, like the HTTP client's.
    #[derive(Debug)]
    struct Layer(
        &'static str,
        Option<Box<dyn std::error::Error + Send + Sync>>,
    );

    impl fmt::Display for Layer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    fn chain(layers: &[&'static str], inner: std::io::Error) -> Layer {
        let mut e: Box<dyn std::error::Error + Send + Sync> = Box::new(inner);
        for l in layers[1..].iter().rev() {
            e = Box::new(Layer(l, Some(e)));
        }
        Layer(layers[0], Some(e))
    }

    #[test]
    fn network_failures_are_named_from_the_source_chain() {
        use std::io::{Error, ErrorKind};
        let head = ["dispatch failure", "io error", "client error (Connect)"];
        let with = |last: &'static str, inner: Error| {
            let mut l = head.to_vec();
            l.push(last);
            network_reason(&chain(&l, inner), "h:1")
        };
        assert_eq!(
            with(
                "tcp connect error",
                Error::from(ErrorKind::ConnectionRefused)
            ),
            "connection refused by h:1"
        );
        assert_eq!(
            with(
                "dns error",
                Error::other("failed to lookup address information: Name or service not known")
            ),
            "name resolution failed for h:1 (failed to lookup address information: Name or service not known)"
        );
        assert_eq!(
            with(
                "TLS handshake failed",
                Error::other("received corrupt message of type InvalidContentType")
            ),
            "TLS error with h:1: received corrupt message of type InvalidContentType"
        );
        assert_eq!(
            with(
                "timeout",
                Error::other("HTTP read timeout occurred after 1s")
            ),
            "timed out waiting for h:1"
        );
        let text = chain_text(&chain(&head, Error::other("boom")));
        assert_eq!(
            text,
            "dispatch failure: io error: client error (Connect): boom"
        );
        assert!(!text.contains('}'), "no Debug dump");
    }

    #[test]
    fn endpoint_hosts() {
        // Tests run in parallel: only the default form, with no override set for sts.
        if std::env::var_os("AWS_ENDPOINT_URL").is_none()
            && std::env::var_os("AWS_ENDPOINT_URL_STS").is_none()
        {
            assert_eq!(
                endpoint_host("sts:GetCallerIdentity", "eu-west-1"),
                "sts.eu-west-1.amazonaws.com"
            );
            assert_eq!(
                endpoint_host("sts:GetCallerIdentity", "cn-north-1"),
                "sts.cn-north-1.amazonaws.com.cn"
            );
        }
    }
}
