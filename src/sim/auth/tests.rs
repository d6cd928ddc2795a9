use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{
    sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
};
use aws_sigv4::sign::v4;
use axum::http::{HeaderMap, Request as HttpRequest};

use super::*;

const BODY: &[u8] = br#"{"MaxResults":50}"#;

fn key() -> AccessKey {
    AccessKey::new("AKIAEXAMPLE000000001", "s3cr3t/with+chars")
}

fn accounts() -> Accounts {
    Accounts::single(key())
}

/// 2026-11-23T10:00:00Z.
fn t0() -> SystemTime {
    humantime::parse_rfc3339("2026-11-23T10:00:00Z").unwrap()
}

/// What a client (the SDK's signer) sends: an SSM call signed at `at` with `key`.
struct Signed {
    uri: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Signed {
    fn request(&self) -> Request<'_> {
        Request {
            method: "POST",
            uri: &self.uri,
            headers: &self.headers,
            body: &self.body,
        }
    }
}

fn sign_with(
    key: &AccessKey,
    service: &str,
    at: SystemTime,
    location: SignatureLocation,
) -> Signed {
    let mut req = HttpRequest::builder()
        .method("POST")
        .uri("/?keep=me%20too")
        .header("host", "127.0.0.1:4566")
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amz-target", "AmazonSSM.DescribeInstanceInformation")
        .header("user-agent", "aws-sdk-rust/1.0")
        .body(())
        .unwrap();
    let identity =
        aws_sdk_ec2::config::Credentials::new(&key.id, key.secret(), None, None, "t").into();
    let mut settings = SigningSettings::default();
    settings.signature_location = location;
    if location == SignatureLocation::QueryParams {
        settings.expires_in = Some(Duration::from_secs(60));
    }
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("eu-west-1")
        .name(service)
        .time(at)
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
        .collect();
    let signable = SignableRequest::new(
        "POST",
        "http://127.0.0.1:4566/?keep=me%20too",
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(BODY),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    instructions.apply_to_request_http1x(&mut req);
    Signed {
        uri: req.uri().path_and_query().unwrap().to_string(),
        headers: req.headers().clone(),
        body: BODY.to_vec(),
    }
}

fn signed(key: &AccessKey, at: SystemTime) -> Signed {
    sign_with(key, "ssm", at, SignatureLocation::Headers)
}

#[test]
fn a_request_signed_with_the_accounts_key_is_accepted() {
    let s = signed(&key(), t0());
    let caller = verify(&accounts(), &s.request(), "ssm", t0()).unwrap();
    assert_eq!(caller.account_id, ACCOUNT_ID);
    assert_eq!(caller.access_key_id, "AKIAEXAMPLE000000001");
    assert_eq!(
        (caller.region.as_str(), caller.service.as_str()),
        ("eu-west-1", "ssm")
    );
}

#[test]
fn an_unknown_key_is_refused_with_each_protocols_error() {
    let s = signed(&AccessKey::new("AKIAOTHER", "s3cr3t/with+chars"), t0());
    let e = verify(&accounts(), &s.request(), "ssm", t0()).unwrap_err();
    assert_eq!(e, AuthError::UnknownKey("AKIAOTHER".into()));
    let j = e.api_error(Protocol::Json);
    assert_eq!(
        (j.status, j.code.as_str()),
        (400, "UnrecognizedClientException")
    );
    assert_eq!(
        j.message,
        "The security token included in the request is invalid."
    );
    let q = e.api_error(Protocol::Ec2);
    assert_eq!((q.status, q.code.as_str()), (401, "AuthFailure"));
    assert_eq!(
        q.message,
        "AWS was not able to validate the provided access credentials"
    );
    let sts = e.api_error(Protocol::Sts);
    assert_eq!(
        (sts.status, sts.code.as_str()),
        (403, "InvalidClientTokenId")
    );
}

#[test]
fn a_wrong_secret_or_a_changed_request_does_not_match() {
    let s = signed(&AccessKey::new("AKIAEXAMPLE000000001", "guessed"), t0());
    let e = verify(&accounts(), &s.request(), "ssm", t0()).unwrap_err();
    assert_eq!(e, AuthError::BadSignature);
    let j = e.api_error(Protocol::Json);
    assert_eq!(
        (j.status, j.code.as_str()),
        (400, "InvalidSignatureException")
    );
    assert!(j
        .message
        .starts_with("The request signature we calculated does not match"));
    let q = e.api_error(Protocol::Ec2);
    assert_eq!((q.status, q.code.as_str()), (403, "SignatureDoesNotMatch"));

    // Same key, but the body, a signed header or the query changed on the way.
    let mut s = signed(&key(), t0());
    s.body = br#"{"MaxResults":5}"#.to_vec();
    assert_eq!(
        verify(&accounts(), &s.request(), "ssm", t0()),
        Err(AuthError::BadSignature)
    );
    let mut s = signed(&key(), t0());
    s.headers
        .insert("x-amz-target", "AmazonSSM.StartSession".parse().unwrap());
    assert_eq!(
        verify(&accounts(), &s.request(), "ssm", t0()),
        Err(AuthError::BadSignature)
    );
    let mut s = signed(&key(), t0());
    s.uri = "/?keep=other".into();
    assert_eq!(
        verify(&accounts(), &s.request(), "ssm", t0()),
        Err(AuthError::BadSignature)
    );
    // Dropping a signed header is no way around it either.
    let mut s = signed(&key(), t0());
    s.headers.remove("x-amz-target");
    assert_eq!(
        verify(&accounts(), &s.request(), "ssm", t0()),
        Err(AuthError::BadSignature)
    );
}

#[test]
fn unsigned_headers_may_change() {
    let mut s = signed(&key(), t0());
    s.headers
        .insert("user-agent", "a proxy rewrote me".parse().unwrap());
    s.headers.insert("x-extra", "added later".parse().unwrap());
    assert!(verify(&accounts(), &s.request(), "ssm", t0()).is_ok());
}

#[test]
fn a_date_more_than_15_minutes_off_is_refused() {
    let min = |m: u64| Duration::from_secs(60 * m);
    let s = signed(&key(), t0());
    assert!(verify(&accounts(), &s.request(), "ssm", t0() + min(14)).is_ok());
    assert!(verify(&accounts(), &s.request(), "ssm", t0() - min(14)).is_ok());

    let e = verify(&accounts(), &s.request(), "ssm", t0() + min(16)).unwrap_err();
    assert!(
        matches!(
            e,
            AuthError::Skewed {
                in_future: false,
                ..
            }
        ),
        "{e:?}"
    );
    let j = e.api_error(Protocol::Json);
    assert_eq!(
        (j.status, j.code.as_str()),
        (400, "InvalidSignatureException")
    );
    assert_eq!(
        j.message,
        "Signature expired: 20261123T100000Z is now earlier than 20261123T100100Z (20261123T101600Z - 15 min.)"
    );
    let q = e.api_error(Protocol::Ec2);
    assert_eq!(
        (q.status, q.code.as_str(), q.message.as_str()),
        (400, "RequestExpired", "Request has expired.")
    );
    let sts = e.api_error(Protocol::Sts);
    assert_eq!(
        (sts.status, sts.code.as_str()),
        (403, "SignatureDoesNotMatch")
    );

    let e = verify(&accounts(), &s.request(), "ssm", t0() - min(16)).unwrap_err();
    assert!(
        matches!(
            e,
            AuthError::Skewed {
                in_future: true,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        e.api_error(Protocol::Json).message,
        "Signature not yet current: 20261123T100000Z is still later than 20261123T095900Z (20261123T094400Z + 15 min.)"
    );
}

#[test]
fn unsigned_and_malformed_requests_are_refused() {
    let empty = HeaderMap::new();
    let req = Request {
        method: "POST",
        uri: "/",
        headers: &empty,
        body: b"{}",
    };
    let e = verify(&accounts(), &req, "ssm", t0()).unwrap_err();
    assert_eq!(e, AuthError::Missing);
    assert_eq!(
        e.api_error(Protocol::Json).code,
        "MissingAuthenticationTokenException"
    );
    assert_eq!(e.api_error(Protocol::Sts).status, 403);

    for auth in [
        "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE000000001/20261123/eu-west-1/ssm/aws4_request, SignedHeaders=host, Signature=00",
        "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE000000001/20261123/eu-west-1/ssm, SignedHeaders=host;x-amz-date, Signature=00",
        "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE000000001/20261123/eu-west-1/ssm/aws4_request",
        "AWS3 Credential=x",
    ] {
        let mut h = HeaderMap::new();
        h.insert("authorization", auth.parse().unwrap());
        h.insert("host", "127.0.0.1".parse().unwrap());
        let req = Request {
            method: "POST",
            uri: "/",
            headers: &h,
            body: b"{}",
        };
        // No x-amz-date, a short scope, missing fields, another algorithm.
        let e = verify(&accounts(), &req, "ssm", t0()).unwrap_err();
        assert!(matches!(e, AuthError::Incomplete(_)), "{auth}: {e:?}");
        assert_eq!(e.api_error(Protocol::Json).code, "IncompleteSignatureException");
    }
}

#[test]
fn a_signature_for_another_service_is_refused() {
    let s = sign_with(&key(), "ec2", t0(), SignatureLocation::Headers);
    let e = verify(&accounts(), &s.request(), "ssm", t0()).unwrap_err();
    assert!(matches!(e, AuthError::WrongService { .. }), "{e:?}");
    assert_eq!(
        e.api_error(Protocol::Json).message,
        "Credential should be scoped to correct service: 'ssm'. "
    );
}

#[test]
fn a_session_token_the_simulator_never_issued_is_refused() {
    let mut s = signed(&key(), t0());
    s.headers
        .insert("x-amz-security-token", "FwoGZXIvYXdzE".parse().unwrap());
    assert!(matches!(
        verify(&accounts(), &s.request(), "ssm", t0()),
        Err(AuthError::UnknownKey(_))
    ));
}

#[test]
fn presigned_urls_are_verified_from_the_query_string() {
    let s = sign_with(&key(), "ssmmessages", t0(), SignatureLocation::QueryParams);
    assert!(!s.headers.contains_key("authorization"));
    assert!(s.uri.contains("X-Amz-Signature="), "{}", s.uri);
    let caller = verify(
        &accounts(),
        &s.request(),
        "ssmmessages",
        t0() + Duration::from_secs(59),
    )
    .unwrap();
    assert_eq!(caller.service, "ssmmessages");
    // Past X-Amz-Expires (60 s).
    assert_eq!(
        verify(
            &accounts(),
            &s.request(),
            "ssmmessages",
            t0() + Duration::from_secs(61)
        ),
        Err(AuthError::Expired)
    );
    // A parameter of its own changed.
    let mut t = sign_with(&key(), "ssmmessages", t0(), SignatureLocation::QueryParams);
    t.uri = t.uri.replace("keep=me%20too", "keep=you");
    assert_eq!(
        verify(&accounts(), &t.request(), "ssmmessages", t0()),
        Err(AuthError::BadSignature)
    );
    // Someone else's key.
    let o = sign_with(
        &AccessKey::new("AKIAEXAMPLE000000001", "nope"),
        "ssmmessages",
        t0(),
        SignatureLocation::QueryParams,
    );
    assert_eq!(
        verify(&accounts(), &o.request(), "ssmmessages", t0()),
        Err(AuthError::BadSignature)
    );
}

#[test]
fn random_keys_look_like_iam_keys_and_differ() {
    let a = random_access_key();
    let b = random_access_key();
    assert_ne!(a, b);
    assert!(a.id.starts_with("AKIA") && a.id.len() == 20, "{}", a.id);
    assert_eq!(a.secret().len(), 40);
    assert!(!format!("{a:?}").contains(a.secret()));
}

#[test]
fn amz_dates_round_trip() {
    assert_eq!(amz_date(t0()), "20261123T100000Z");
    assert_eq!(parse_amz_date("20261123T100000Z"), Some(t0()));
    for bad in [
        "",
        "2026-11-23T10:00:00Z",
        "20261123T100000",
        "2026112XT100000Z",
    ] {
        assert_eq!(parse_amz_date(bad), None, "{bad}");
    }
}
