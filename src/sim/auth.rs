//! Who may call the simulator: a store of accounts (access key id → secret and account
//! id) and the SigV4 check AWS makes on every request, in the `Authorization` header or
//! in a presigned URL's query string. The expected signature is computed by the
//! `aws-sigv4` crate from the request as received; nothing here signs by hand.
//!
//! What AWS answers when the check fails depends on the protocol; [`AuthError::api_error`]
//! gives each protocol's codes, statuses and messages (sources cited there).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{
    sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
};
use aws_sigv4::sign::v4;
use axum::http::HeaderMap;

use super::ApiError;
use crate::aws::AccessKey;

/// The account every simulated resource belongs to (in ARNs, owner ids).
pub const ACCOUNT_ID: &str = "123456789012";
/// How far a request's date may be from the simulator's clock, as at AWS.
pub const MAX_SKEW: Duration = Duration::from_secs(15 * 60);
/// The longest a presigned URL may be valid (seven days, as at AWS).
const MAX_EXPIRES: u64 = 7 * 24 * 3600;
const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// An AWS account of the simulator and the key pair that acts in it.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: String,
    pub key: AccessKey,
}

/// Every account the simulator knows, by access key id.
#[derive(Debug, Clone, Default)]
pub struct Accounts {
    by_key: BTreeMap<String, Account>,
}

impl Accounts {
    /// One account ([`ACCOUNT_ID`]) acting with `key`.
    pub fn single(key: AccessKey) -> Self {
        let mut accounts = Accounts::default();
        accounts.add(Account {
            id: ACCOUNT_ID.to_string(),
            key,
        });
        accounts
    }

    pub fn add(&mut self, account: Account) {
        self.by_key.insert(account.key.id.clone(), account);
    }

    pub fn by_access_key(&self, access_key_id: &str) -> Option<&Account> {
        self.by_key.get(access_key_id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Account> {
        self.by_key.values()
    }
}

/// A fresh key pair shaped like IAM's: `AKIA` and 16 base32 characters, and a
/// 40-character secret, from the operating system's random source.
pub fn random_access_key() -> AccessKey {
    use rand::Rng;
    const ID_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    const SECRET_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut rng = rand::rng();
    let mut pick = |chars: &[u8], n: usize| -> String {
        (0..n)
            .map(|_| chars[rng.random_range(0..chars.len())] as char)
            .collect()
    };
    let id = format!("AKIA{}", pick(ID_CHARS, 16));
    AccessKey::new(id, pick(SECRET_CHARS, 40))
}

/// Signs a request as the AWS SDKs do, for the simulator's own tests and tools that
/// speak to it without an SDK: the headers to add (`x-amz-date`, `authorization`).
/// `url` is absolute; `headers` are the ones to sign besides `host`.
#[allow(clippy::too_many_arguments)]
pub fn sign_headers(
    key: &AccessKey,
    region: &str,
    service: &str,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    time: SystemTime,
) -> Result<Vec<(String, String)>, String> {
    let identity =
        aws_sdk_ec2::config::Credentials::new(&key.id, key.secret(), None, None, "ec2ssh-sim")
            .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let signable = SignableRequest::new(
        method,
        url,
        headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| e.to_string())?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    Ok(instructions
        .headers()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

/// The parts of an HTTP request a signature covers, as received.
pub struct Request<'a> {
    pub method: &'a str,
    /// Path and query, still percent-encoded (`/`, `/v1/x?X-Amz-Date=…`).
    pub uri: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// Who a verified request comes from, and the scope it was signed for.
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    pub account_id: String,
    pub access_key_id: String,
    pub region: String,
    pub service: String,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AuthError {
    #[error("the request is not signed")]
    Missing,
    #[error("the signature is malformed: {0}")]
    Incomplete(String),
    #[error("unknown access key {0}")]
    UnknownKey(String),
    #[error("the signature does not match")]
    BadSignature,
    /// Signed for another service than the one called.
    #[error("signed for service {signed:?}, not {expected:?}")]
    WrongService { signed: String, expected: String },
    /// The request date (`signed`, `YYYYMMDDTHHMMSSZ`) is more than 15 minutes from `now`.
    #[error("the request date {signed} is more than 15 minutes from {now}")]
    Skewed {
        signed: String,
        now: String,
        in_future: bool,
    },
    /// A presigned URL used after its `X-Amz-Expires`.
    #[error("the presigned URL expired")]
    Expired,
}

/// The wire protocols the simulator answers in, which word their refusals differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// JSON 1.1 (SSM, EC2 Instance Connect).
    Json,
    /// EC2's query protocol.
    Ec2,
    /// STS's query protocol.
    Sts,
}

const BAD_SIGNATURE: &str = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";
const INVALID_TOKEN: &str = "The security token included in the request is invalid.";
const EC2_AUTH_FAILURE: &str = "AWS was not able to validate the provided access credentials";

impl AuthError {
    /// The refusal as `protocol`'s service sends it. Codes, statuses and messages are
    /// the ones AWS returns, as recorded in public reports of real responses:
    /// - JSON 1.1: `UnrecognizedClientException` 400 (aws-sdk-php#2444, DynamoDB in
    ///   yegor256/s3auth#244); `InvalidSignatureException` 400, with "Signature expired:
    ///   … (… - 15 min.)" for a stale date (aws-sdk-js#254, upmc-enterprises/registry-creds#24;
    ///   "Signature not yet current: … (… + 15 min.)" for a future one, basak/glacier-cli#36);
    ///   `MissingAuthenticationTokenException`, `IncompleteSignatureException` (the
    ///   services' common errors pages).
    /// - EC2: `AuthFailure` 401 "AWS was not able to validate the provided access
    ///   credentials" (aws/aws-sdk-java#2508, aws/aws-sdk-java-v2#2981);
    ///   `SignatureDoesNotMatch` 403 (mitchellh/vagrant-aws#138, aws/aws-cli#134);
    ///   `RequestExpired` 400 "Request has expired." for the date (aws/aws-sdk-java#1443,
    ///   aws/aws-sdk-go-v2#1674; EC2 API reference, common client errors).
    /// - STS: `InvalidClientTokenId` 403, `SignatureDoesNotMatch` 403 (with "Signature
    ///   expired" for the date, aws/aws-cli#6676), `MissingAuthenticationToken` 403
    ///   (amzn/selling-partner-api-docs#3081).
    ///
    /// Not known from public sources: what EC2 answers a request with no signature at
    /// all (the simulator says `AuthFailure`), and the status of an expired presigned
    /// URL outside S3 (it says 403 `AccessDeniedException`/`AuthFailure`).
    pub fn api_error(&self, protocol: Protocol) -> ApiError {
        use Protocol::*;
        fn e(status: u16, code: &str, message: impl Into<String>) -> ApiError {
            ApiError::new(status, code, message)
        }
        match (self, protocol) {
            (AuthError::Missing, Json) => e(
                400,
                "MissingAuthenticationTokenException",
                "Missing Authentication Token",
            ),
            (AuthError::Missing, Ec2) => e(401, "AuthFailure", EC2_AUTH_FAILURE),
            (AuthError::Missing, Sts) => e(
                403,
                "MissingAuthenticationToken",
                "Request is missing Authentication Token",
            ),
            (AuthError::Incomplete(m), Json) => e(400, "IncompleteSignatureException", m.clone()),
            (AuthError::Incomplete(m), Ec2 | Sts) => e(400, "IncompleteSignature", m.clone()),
            (AuthError::UnknownKey(_), Json) => {
                e(400, "UnrecognizedClientException", INVALID_TOKEN)
            }
            (AuthError::UnknownKey(_), Ec2) => e(401, "AuthFailure", EC2_AUTH_FAILURE),
            (AuthError::UnknownKey(_), Sts) => e(403, "InvalidClientTokenId", INVALID_TOKEN),
            (AuthError::BadSignature, Json) => e(400, "InvalidSignatureException", BAD_SIGNATURE),
            (AuthError::BadSignature, Ec2 | Sts) => e(403, "SignatureDoesNotMatch", BAD_SIGNATURE),
            (AuthError::WrongService { expected, .. }, _) => {
                let m = format!("Credential should be scoped to correct service: '{expected}'. ");
                match protocol {
                    Json => e(400, "InvalidSignatureException", m),
                    Ec2 | Sts => e(403, "SignatureDoesNotMatch", m),
                }
            }
            (
                AuthError::Skewed {
                    signed,
                    now,
                    in_future,
                },
                _,
            ) => {
                let now_t = parse_amz_date(now).unwrap_or(SystemTime::UNIX_EPOCH);
                let m = if *in_future {
                    format!(
                        "Signature not yet current: {signed} is still later than {} ({now} + 15 min.)",
                        amz_date(now_t + MAX_SKEW)
                    )
                } else {
                    format!(
                        "Signature expired: {signed} is now earlier than {} ({now} - 15 min.)",
                        amz_date(now_t - MAX_SKEW)
                    )
                };
                match protocol {
                    Json => e(400, "InvalidSignatureException", m),
                    Ec2 => e(400, "RequestExpired", "Request has expired."),
                    Sts => e(403, "SignatureDoesNotMatch", m),
                }
            }
            (AuthError::Expired, Json) => e(403, "AccessDeniedException", "Request has expired"),
            (AuthError::Expired, Ec2 | Sts) => e(400, "RequestExpired", "Request has expired."),
        }
    }
}

/// Checks `req`'s SigV4 signature, in its `Authorization` header or (presigned) its
/// query string, against `accounts` at time `now`; `service` is the signing name the
/// operation called expects (`ssm`, `ec2`, …).
pub fn verify(
    accounts: &Accounts,
    req: &Request,
    service: &str,
    now: SystemTime,
) -> Result<Caller, AuthError> {
    if req.headers.contains_key("authorization") {
        verify_header(accounts, req, service, now)
    } else if query_param(req.uri, "X-Amz-Signature").is_some() {
        verify_query(accounts, req, service, now)
    } else {
        Err(AuthError::Missing)
    }
}

/// The credential scope `AKID/DATE/REGION/SERVICE/aws4_request`.
struct Scope {
    access_key_id: String,
    date: String,
    region: String,
    service: String,
}

fn parse_scope(credential: &str) -> Result<Scope, AuthError> {
    let parts: Vec<&str> = credential.split('/').collect();
    match parts.as_slice() {
        [akid, date, region, service, "aws4_request"]
            if !akid.is_empty() && !region.is_empty() && !service.is_empty() =>
        {
            Ok(Scope {
                access_key_id: akid.to_string(),
                date: date.to_string(),
                region: region.to_string(),
                service: service.to_string(),
            })
        }
        _ => Err(AuthError::Incomplete(format!(
            "Credential should be scoped to a valid region, not '{}'. ",
            parts.get(2).copied().unwrap_or("")
        ))),
    }
}

/// What both kinds of signature carry, as received.
struct Parts {
    credential: String,
    date: String,
    signed_headers: String,
    signature: String,
}

/// What both kinds of signature carry, once parsed.
struct Claim<'a> {
    scope: Scope,
    date: String,
    signed_headers: Vec<String>,
    signature: String,
    account: &'a Account,
}

/// Parses the claim and finds its account; the caller checks the date.
fn claim<'a>(
    accounts: &'a Accounts,
    parts: &Parts,
    service: &str,
) -> Result<(Claim<'a>, SystemTime), AuthError> {
    let Parts {
        credential,
        date,
        signed_headers,
        signature,
    } = parts;
    let scope = parse_scope(credential)?;
    let account = accounts
        .by_access_key(&scope.access_key_id)
        .ok_or_else(|| AuthError::UnknownKey(scope.access_key_id.clone()))?;
    let time = parse_amz_date(date).ok_or_else(|| {
        AuthError::Incomplete(format!(
            "Date must be in ISO-8601 'basic format'. Got '{date}'. See http://en.wikipedia.org/wiki/ISO_8601"
        ))
    })?;
    if scope.service != service {
        return Err(AuthError::WrongService {
            signed: scope.service,
            expected: service.to_string(),
        });
    }
    let signed_headers = signed_headers
        .split(';')
        .filter(|h| !h.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    Ok((
        Claim {
            scope,
            date: date.to_string(),
            signed_headers,
            signature: signature.to_string(),
            account,
        },
        time,
    ))
}

/// Refuses a request date more than 15 minutes in the future, or more than
/// `max_age` in the past.
fn check_date(
    date: &str,
    time: SystemTime,
    now: SystemTime,
    max_age: Duration,
) -> Result<(), AuthError> {
    let skew = |in_future| AuthError::Skewed {
        signed: date.to_string(),
        now: amz_date(now),
        in_future,
    };
    match time.duration_since(now) {
        Ok(ahead) if ahead > MAX_SKEW => Err(skew(true)),
        Err(behind) if behind.duration() > max_age => Err(skew(false)),
        _ => Ok(()),
    }
}

fn verify_header(
    accounts: &Accounts,
    req: &Request,
    service: &str,
    now: SystemTime,
) -> Result<Caller, AuthError> {
    let auth = req
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or(AuthError::Missing)?;
    let fields = auth.strip_prefix(ALGORITHM).ok_or_else(|| {
        AuthError::Incomplete(format!(
            "Unsupported AWS 'algorithm': '{}'",
            auth.split_whitespace().next().unwrap_or("")
        ))
    })?;
    let field = |name: &str| {
        fields
            .split(',')
            .filter_map(|f| f.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    };
    let (Some(credential), Some(signed_headers), Some(signature)) = (
        field("Credential"),
        field("SignedHeaders"),
        field("Signature"),
    ) else {
        // One sentence per missing parameter, then the header, as the services say it.
        let missing: String = ["Credential", "Signature", "SignedHeaders"]
            .into_iter()
            .filter(|name| field(name).is_none())
            .map(|name| format!("Authorization header requires '{name}' parameter. "))
            .collect();
        return Err(AuthError::Incomplete(format!(
            "{missing}Authorization={auth}"
        )));
    };
    let date = header(req.headers, "x-amz-date").ok_or_else(|| {
        AuthError::Incomplete(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
                .into(),
        )
    })?;
    let parts = Parts {
        credential,
        date,
        signed_headers,
        signature,
    };
    let (claim, time) = claim(accounts, &parts, service)?;
    check_date(&parts.date, time, now, MAX_SKEW)?;
    expect_signature(req, req.uri, claim, time, SignatureLocation::Headers, None)
}

fn verify_query(
    accounts: &Accounts,
    req: &Request,
    service: &str,
    now: SystemTime,
) -> Result<Caller, AuthError> {
    let param = |name: &str| query_param(req.uri, name);
    if param("X-Amz-Algorithm").as_deref() != Some(ALGORITHM) {
        return Err(AuthError::Incomplete(
            "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"".into(),
        ));
    }
    let need = |name: &str| {
        param(name).ok_or_else(|| {
            AuthError::Incomplete(format!(
                "Query-string authentication requires the {name} parameter."
            ))
        })
    };
    let (credential, date, expires, signed_headers, signature) = (
        need("X-Amz-Credential")?,
        need("X-Amz-Date")?,
        need("X-Amz-Expires")?,
        need("X-Amz-SignedHeaders")?,
        need("X-Amz-Signature")?,
    );
    let expires: u64 = expires
        .parse()
        .ok()
        .filter(|s| (1..=MAX_EXPIRES).contains(s))
        .ok_or_else(|| {
            AuthError::Incomplete(format!(
                "X-Amz-Expires must be a number of seconds between 1 and {MAX_EXPIRES}"
            ))
        })?;
    let parts = Parts {
        credential,
        date,
        signed_headers,
        signature,
    };
    let (claim, time) = claim(accounts, &parts, service)?;
    // The date may be old (up to X-Amz-Expires), never far in the future.
    match check_date(&parts.date, time, now, Duration::from_secs(expires)) {
        Err(AuthError::Skewed {
            in_future: false, ..
        }) => return Err(AuthError::Expired),
        other => other?,
    }
    // The signer adds the X-Amz-* parameters itself; it signs what remains.
    let (path, query) = req.uri.split_once('?').unwrap_or((req.uri, ""));
    let rest: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .filter(|(k, _)| !SIGNING_PARAMS.contains(&k.as_str()))
        .collect();
    let uri = if rest.is_empty() {
        path.to_string()
    } else {
        let q = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(rest)
            .finish();
        format!("{path}?{q}")
    };
    expect_signature(
        req,
        &uri,
        claim,
        time,
        SignatureLocation::QueryParams,
        Some(Duration::from_secs(expires)),
    )
}

/// The rest of both checks: no session token, then the signature the claim's
/// account would have made over what was received (with `uri` as signed).
fn expect_signature(
    req: &Request,
    uri: &str,
    claim: Claim,
    time: SystemTime,
    location: SignatureLocation,
    expires_in: Option<Duration>,
) -> Result<Caller, AuthError> {
    no_session_token(req, &claim)?;
    let headers = signed_header_values(req.headers, &claim.signed_headers)?;
    let settings = verifier_settings(location, expires_in);
    let expected = expected_signature(req, uri, &headers, &claim, time, settings)?;
    check(&expected, claim)
}

const SIGNING_PARAMS: [&str; 7] = [
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
    "X-Amz-Security-Token",
];

/// The simulator issues no temporary credentials, so a session token is never valid.
fn no_session_token(req: &Request, claim: &Claim) -> Result<(), AuthError> {
    let in_header = req.headers.contains_key("x-amz-security-token");
    let in_query = query_param(req.uri, "X-Amz-Security-Token").is_some();
    if in_header || in_query {
        Err(AuthError::UnknownKey(claim.scope.access_key_id.clone()))
    } else {
        Ok(())
    }
}

/// Settings that sign exactly what the client listed: nothing excluded, nothing added
/// beyond what SigV4 always covers (`host`, `x-amz-date`).
fn verifier_settings(location: SignatureLocation, expires_in: Option<Duration>) -> SigningSettings {
    let mut settings = SigningSettings::default();
    settings.signature_location = location;
    settings.expires_in = expires_in;
    settings.excluded_headers = None;
    settings
}

/// `(name, value)` of each header the client says it signed, in the client's order;
/// one it signed but did not send cannot match.
fn signed_header_values<'h>(
    headers: &'h HeaderMap,
    names: &[String],
) -> Result<Vec<(&'h str, &'h str)>, AuthError> {
    let mut out = Vec::new();
    for name in names {
        let mut found = false;
        for (k, v) in headers.iter().filter(|(k, _)| k.as_str() == name) {
            out.push((k.as_str(), v.to_str().map_err(|_| AuthError::BadSignature)?));
            found = true;
        }
        if !found {
            return Err(AuthError::BadSignature);
        }
    }
    Ok(out)
}

fn expected_signature(
    req: &Request,
    uri: &str,
    headers: &[(&str, &str)],
    claim: &Claim,
    time: SystemTime,
    settings: SigningSettings,
) -> Result<String, AuthError> {
    // The scope's date must be the request date's day: the signer derives it from
    // the time, so a different one will not match.
    if !claim.date.starts_with(&claim.scope.date) {
        return Err(AuthError::BadSignature);
    }
    let identity = aws_sdk_ec2::config::Credentials::new(
        &claim.account.key.id,
        claim.account.key.secret(),
        None,
        None,
        "ec2ssh-sim",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&claim.scope.region)
        .name(&claim.scope.service)
        .time(time)
        .settings(settings)
        .build()
        .map_err(|_| AuthError::BadSignature)?
        .into();
    let signable = SignableRequest::new(
        req.method,
        uri,
        headers.iter().copied(),
        SignableBody::Bytes(req.body),
    )
    .map_err(|_| AuthError::BadSignature)?;
    let (_, signature) = sign(signable, &params)
        .map_err(|_| AuthError::BadSignature)?
        .into_parts();
    Ok(signature)
}

fn check(expected: &str, claim: Claim) -> Result<Caller, AuthError> {
    if !constant_time_eq(expected.as_bytes(), claim.signature.as_bytes()) {
        return Err(AuthError::BadSignature);
    }
    Ok(Caller {
        account_id: claim.account.id.clone(),
        access_key_id: claim.scope.access_key_id,
        region: claim.scope.region,
        service: claim.scope.service,
    })
}

/// Compares without stopping at the first difference, so timing reveals nothing.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn query_param(uri: &str, name: &str) -> Option<String> {
    let query = uri.split_once('?')?.1;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// `YYYYMMDDTHHMMSSZ`, SigV4's date format.
pub fn amz_date(t: SystemTime) -> String {
    let s = humantime::format_rfc3339_seconds(t).to_string();
    // 2026-11-23T10:11:12Z → 20261123T101112Z
    s.chars().filter(|c| *c != '-' && *c != ':').collect()
}

fn parse_amz_date(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' || !digits(0..8) || !digits(9..15) {
        return None;
    }
    let rfc3339 = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &s[0..4],
        &s[4..6],
        &s[6..8],
        &s[9..11],
        &s[11..13],
        &s[13..15]
    );
    humantime::parse_rfc3339(&rfc3339).ok()
}

#[cfg(test)]
mod tests;
