//! Turns SDK errors into `AwsError`: what failed (the IAM action, the region), why,
//! and the one thing to do about it. Every AWS failure a user sees goes through here.
//! The service's code and message are untrusted text: they are made inert for a
//! terminal when the error is built, so no later print can forget it.

use std::fmt;

use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use serde::Serialize;

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
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.summary())
    }
}

impl AwsError {
    /// One line: what failed and why, inert for a terminal.
    pub fn summary(&self) -> String {
        sanitize(&self.raw_summary()).into_owned()
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
        match self.kind {
            AwsErrorKind::AccessDenied => format!(
                "allow {action} for your IAM identity (the policy ec2ssh needs is in the README, \"IAM permissions\")"
            ),
            AwsErrorKind::NoCredentials => "configure credentials (`aws configure`, `aws sso login --profile NAME`, or AWS_PROFILE / AWS_ACCESS_KEY_ID), or try `ec2ssh demo`".to_string(),
            AwsErrorKind::InvalidCredentials => "check the access key and profile in use (`aws sts get-caller-identity`), or pick another with --profile".to_string(),
            AwsErrorKind::ExpiredCredentials => "refresh them: `aws sso login --profile NAME` for SSO, or renew your session credentials".to_string(),
            AwsErrorKind::ClockSkew => "set the system clock right (e.g. turn on NTP: `timedatectl set-ntp true`)".to_string(),
            AwsErrorKind::Unreachable => "check the network or proxy, the region name, and any AWS_ENDPOINT_URL* override; from a private VPC you need its interface endpoints".to_string(),
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
        R: fmt::Debug,
    {
        let context = DisplayErrorContext(err).to_string();
        let (kind, code, message) = match err {
            SdkError::ServiceError(se) => {
                let e = se.err();
                let code = e.code().map(|c| sanitize(c).into_owned());
                let message = sanitize(e.message().unwrap_or_default()).into_owned();
                (kind_for_code(code.as_deref(), &message), code, message)
            }
            SdkError::TimeoutError(_) => (AwsErrorKind::Unreachable, None, "timed out".into()),
            SdkError::DispatchFailure(df) => {
                if let Some(kind) = credentials_kind(&context) {
                    (kind, None, context.clone())
                } else if df.is_io() || df.is_timeout() {
                    (AwsErrorKind::Unreachable, None, io_reason(&context))
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
        tracing::debug!(action, region, error = %sanitize(&context), "AWS call failed");
        AwsError {
            action: action.to_string(),
            region: region.to_string(),
            kind,
            code,
            message: sanitize(&message).into_owned(),
        }
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

fn credentials_kind(context: &str) -> Option<AwsErrorKind> {
    let lower = context.to_ascii_lowercase();
    if lower.contains("expired") && (lower.contains("token") || lower.contains("sso")) {
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

/// The innermost part of an I/O error chain, e.g. "Connection refused (os error 111)".
fn io_reason(context: &str) -> String {
    context
        .rsplit(": ")
        .next()
        .unwrap_or(context)
        .trim()
        .to_string()
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
        }
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

    #[test]
    fn io_reason_keeps_the_innermost_cause() {
        assert_eq!(
            io_reason("dispatch failure: io error: client error (Connect): tcp connect error: Connection refused (os error 111)"),
            "Connection refused (os error 111)"
        );
    }
}
