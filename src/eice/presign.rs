//! The openTunnel URL and its SigV4 query-string signature, made by the `aws-sigv4`
//! crate exactly as the AWS CLI's `ec2-instance-connect open-tunnel` makes it: GET
//! `/openTunnel`, the operation's parameters form-encoded in the CLI's order, only
//! `host` signed, the SHA-256 of the empty body (not `UNSIGNED-PAYLOAD`), 60 s expiry,
//! a session token signed into the query.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{
    sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
};
use aws_sigv4::sign::v4;

/// The service's signing name (the same as SendSSHPublicKey's).
pub const SIGNING_NAME: &str = "ec2-instance-connect";
/// How long a presigned URL is valid (the AWS CLI's value).
pub const EXPIRES: Duration = Duration::from_secs(60);

/// What one tunnel opens: which endpoint, to which address and port, for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelRequest {
    pub endpoint_id: String,
    pub ip: IpAddr,
    pub port: u16,
    /// Seconds, 1..=3600 (ec2ssh always sends it, so `NumericLessThanEquals`
    /// conditions on `ec2-instance-connect:maxTunnelDuration` can match).
    pub max_duration: u32,
}

/// Where the websocket goes: `wss://DNS` for a real endpoint, or the scheme and
/// authority of an endpoint override (`http://127.0.0.1:PORT` → `ws://127.0.0.1:PORT`).
pub fn base_url(dns_name: &str, endpoint_override: Option<&str>) -> Result<String, String> {
    let Some(url) = endpoint_override else {
        return Ok(format!("wss://{dns_name}"));
    };
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("the endpoint override {url:?} has no scheme"))?;
    let scheme = match scheme {
        "http" | "ws" => "ws",
        "https" | "wss" => "wss",
        other => {
            return Err(format!(
                "the endpoint override uses {other}://, not http(s)"
            ))
        }
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() {
        return Err(format!("the endpoint override {url:?} names no host"));
    }
    Ok(format!("{scheme}://{authority}"))
}

/// The unsigned URL: `BASE/openTunnel?instanceConnectEndpointId=…&remotePort=…&privateIpAddress=…&maxTunnelDuration=…`.
pub fn unsigned_url(base: &str, t: &TunnelRequest) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("instanceConnectEndpointId", &t.endpoint_id)
        .append_pair("remotePort", &t.port.to_string())
        .append_pair("privateIpAddress", &t.ip.to_string())
        .append_pair("maxTunnelDuration", &t.max_duration.to_string())
        .finish();
    format!("{base}/openTunnel?{query}")
}

/// Credentials to sign with (from the SDK's provider chain).
pub type Credentials = aws_sdk_ec2::config::Credentials;

/// `url` with the X-Amz-* query parameters of a SigV4 presign for `region` at `time`.
pub fn presign(
    url: &str,
    creds: &Credentials,
    region: &str,
    time: SystemTime,
) -> Result<String, String> {
    let identity = creds.clone().into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(EXPIRES);
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SIGNING_NAME)
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let request = SignableRequest::new("GET", url, std::iter::empty(), SignableBody::Bytes(&[]))
        .map_err(|e| e.to_string())?;
    let (instructions, _) = sign(request, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in instructions.params() {
        query.append_pair(name, value);
    }
    Ok(format!("{url}&{}", query.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The AWS CLI's own functional test of `open-tunnel` (test_opentunnel.py): the
    /// same inputs must give the same signature.
    #[test]
    fn the_aws_cli_test_vector_signs_bit_exactly() {
        let creds = Credentials::new("access_key", "secret_key", None, None, "test");
        let t = TunnelRequest {
            endpoint_id: "eice-123".into(),
            ip: "10.0.0.0".parse().unwrap(),
            port: 22,
            max_duration: 1,
        };
        let base = base_url(
            "eice-123.ec2-instance-connect-endpoint.us-west-2.amazonaws.com",
            None,
        )
        .unwrap();
        let url = unsigned_url(&base, &t);
        assert_eq!(url, "wss://eice-123.ec2-instance-connect-endpoint.us-west-2.amazonaws.com/openTunnel?instanceConnectEndpointId=eice-123&remotePort=22&privateIpAddress=10.0.0.0&maxTunnelDuration=1");
        let time = humantime::parse_rfc3339("2020-01-01T01:01:01Z").unwrap();
        let signed = presign(&url, &creds, "us-west-2", time).unwrap();
        assert!(signed.starts_with(&url), "{signed}");
        let query: Vec<(String, String)> =
            form_urlencoded::parse(signed.split_once('?').unwrap().1.as_bytes())
                .into_owned()
                .collect();
        let get = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("X-Amz-Algorithm"), Some("AWS4-HMAC-SHA256"));
        assert_eq!(
            get("X-Amz-Credential"),
            Some("access_key/20200101/us-west-2/ec2-instance-connect/aws4_request")
        );
        assert_eq!(get("X-Amz-Date"), Some("20200101T010101Z"));
        assert_eq!(get("X-Amz-Expires"), Some("60"));
        assert_eq!(get("X-Amz-SignedHeaders"), Some("host"));
        assert_eq!(
            get("X-Amz-Signature"),
            Some("3a56740422a5b9aebd22d860b7a30c729e459a6f71a83bc0de3a2b44b7353f28")
        );
    }

    #[test]
    fn a_session_token_is_signed_into_the_query() {
        let creds = Credentials::new("AKIDEXAMPLE", "secret", Some("to/ken+=".into()), None, "t");
        let signed = presign(
            "wss://h/openTunnel?a=1",
            &creds,
            "eu-west-1",
            SystemTime::now(),
        )
        .unwrap();
        assert!(
            signed.contains("X-Amz-Security-Token=to%2Fken%2B%3D"),
            "{signed}"
        );
    }

    #[test]
    fn an_override_keeps_its_scheme_and_authority_only() {
        assert_eq!(
            base_url("x", Some("http://127.0.0.1:4566/")).unwrap(),
            "ws://127.0.0.1:4566"
        );
        assert_eq!(
            base_url("x", Some("https://vpce.example:8443/a?b")).unwrap(),
            "wss://vpce.example:8443"
        );
        assert!(base_url("x", Some("ftp://h")).is_err());
        assert!(base_url("x", Some("h:1")).is_err());
        let v6 = TunnelRequest {
            endpoint_id: "eice-1".into(),
            ip: "fd00::1".parse().unwrap(),
            port: 22,
            max_duration: 3600,
        };
        assert!(unsigned_url("wss://h", &v6).contains("privateIpAddress=fd00%3A%3A1"));
    }
}
