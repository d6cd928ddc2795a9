//! The SDK's calls through the routed client, with a real SDK client (STS) on loopback
//! sockets: what reaches the proxy, what bypasses it, and what a user reads when it fails.

use aws_sdk_sts::config::retry::RetryConfig;
use aws_sdk_sts::config::{BehaviorVersion, Credentials, Region};

use super::*;
use crate::aws::{AwsError, AwsErrorKind};
use crate::net::testpeer::{closed_port, header, Peer};

/// A name that never resolves: a call that reached anything went through the proxy.
const NOWHERE: &str = "sts.proxy-test.invalid";

fn sts_ok() -> Vec<u8> {
    let xml = r#"<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <GetCallerIdentityResult>
    <Arn>arn:aws:iam::123456789012:user/proxied</Arn>
    <UserId>AIDAPROXIED</UserId>
    <Account>123456789012</Account>
  </GetCallerIdentityResult>
  <ResponseMetadata><RequestId>0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0</RequestId></ResponseMetadata>
</GetCallerIdentityResponse>"#;
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{xml}",
        xml.len()
    )
    .into_bytes()
}

fn sts(env: &[(&str, String)], endpoint: &str) -> aws_sdk_sts::Client {
    let env = ProxyEnv::from_pairs(env.iter().map(|(k, v)| (*k, v.clone())));
    let conf = aws_sdk_sts::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
        .endpoint_url(endpoint)
        .retry_config(RetryConfig::disabled())
        .http_client(http_client(Arc::new(env)))
        .build();
    aws_sdk_sts::Client::from_conf(conf)
}

async fn failure(client: &aws_sdk_sts::Client) -> AwsError {
    let err = client.get_caller_identity().send().await.unwrap_err();
    AwsError::from_sdk("sts:GetCallerIdentity", "us-east-1", &err)
}

#[tokio::test]
async fn plain_http_calls_are_forwarded_with_the_decoded_credentials() {
    let proxy = Peer::start(sts_ok()).await;
    let url = format!("http://us%65r:p%40ss%3Aw%25rd@127.0.0.1:{}", proxy.port);
    let client = sts(&[("http_proxy", url)], &format!("http://{NOWHERE}:8080"));
    let out = client.get_caller_identity().send().await.unwrap();
    assert_eq!(out.account(), Some("123456789012"));
    let heads = proxy.heads();
    assert_eq!(heads.len(), 1, "{heads:?}");
    assert!(
        heads[0].starts_with(&format!("POST http://{NOWHERE}:8080/ HTTP/1.1\r\n")),
        "{}",
        heads[0]
    );
    let expected = crate::net::proxy::Credentials {
        user: "user".into(),
        password: "p@ss:w%rd".into(),
    };
    assert_eq!(
        header(&heads[0], "proxy-authorization"),
        Some(expected.basic().as_str())
    );
}

#[tokio::test]
async fn no_proxy_sends_calls_direct() {
    let endpoint = Peer::start(sts_ok()).await;
    let env = [
        ("http_proxy", format!("http://127.0.0.1:{}", closed_port())),
        ("no_proxy", "localhost,127.0.0.1".to_string()),
    ];
    let client = sts(&env, &format!("http://127.0.0.1:{}", endpoint.port));
    client.get_caller_identity().send().await.unwrap();
    // Origin-form: the request went to the endpoint itself.
    assert!(endpoint.heads()[0].starts_with("POST / HTTP/1.1\r\n"));
}

#[tokio::test]
async fn https_calls_are_tunnelled_and_a_refusal_is_told_in_the_proxys_words() {
    let proxy = Peer::start(
        &b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"[..],
    )
    .await;
    let url = format!("http://127.0.0.1:{}", proxy.port);
    let client = sts(
        &[("HTTPS_PROXY", url.clone())],
        &format!("https://{NOWHERE}"),
    );
    let e = failure(&client).await;
    assert_eq!(e.kind, AwsErrorKind::Proxy, "{e:?}");
    assert_eq!(
        e.summary(),
        format!("sts:GetCallerIdentity in us-east-1: the proxy at {url} refused CONNECT to {NOWHERE}:443 (403 Forbidden)")
    );
    assert!(e.fix().contains("NO_PROXY"), "{}", e.fix());
    let heads = proxy.heads();
    assert!(
        heads[0].starts_with(&format!("CONNECT {NOWHERE}:443 HTTP/1.1\r\n")),
        "{heads:?}"
    );
}

#[tokio::test]
async fn an_unreachable_proxy_is_named() {
    let port = closed_port();
    let client = sts(
        &[("https_proxy", format!("http://127.0.0.1:{port}"))],
        &format!("https://{NOWHERE}"),
    );
    let e = failure(&client).await;
    assert_eq!(e.kind, AwsErrorKind::Proxy, "{e:?}");
    assert!(
        e.message.starts_with(&format!(
            "cannot connect to the proxy at http://127.0.0.1:{port}: "
        )),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn a_forwarded_call_that_needs_a_login_says_so() {
    let proxy = Peer::start(
        &b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"corp\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"[..],
    )
    .await;
    let client = sts(
        &[("http_proxy", format!("http://127.0.0.1:{}", proxy.port))],
        &format!("http://{NOWHERE}"),
    );
    let e = failure(&client).await;
    assert_eq!(e.kind, AwsErrorKind::Proxy, "{e:?}");
    assert!(
        e.message.contains("wants a user and password"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn an_unusable_proxy_variable_fails_the_calls_that_would_use_it() {
    let client = sts(
        &[("https_proxy", "socks5h://127.0.0.1:1080".to_string())],
        &format!("https://{NOWHERE}"),
    );
    let e = failure(&client).await;
    assert_eq!(e.kind, AwsErrorKind::Proxy, "{e:?}");
    assert!(
        e.message
            .starts_with("https_proxy is not a proxy URL ec2ssh can use: socks5h://"),
        "{}",
        e.message
    );
}
