//! "A websocket to this URL, honouring the proxy environment": TCP to the host or to
//! its proxy (then HTTP CONNECT), TLS for `wss://`, then the websocket handshake.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use super::proxy::{authority, ProxyEnv, ProxyError, Route};
use super::tunnel;

pub type WebSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long a proxy may take to answer CONNECT.
const CONNECT_ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// Why no websocket: the proxy said no (typed, with a fix), or anything else.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    /// The server answered the upgrade with an HTTP error: its status and body.
    #[error("HTTP {status}")]
    Refused { status: u16, body: String },
    #[error("{0}")]
    Other(String),
}

impl From<tungstenite::Error> for DialError {
    fn from(e: tungstenite::Error) -> Self {
        match e {
            tungstenite::Error::Http(resp) => DialError::Refused {
                status: resp.status().as_u16(),
                body: resp
                    .body()
                    .as_deref()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default(),
            },
            e => DialError::Other(describe(&e)),
        }
    }
}

/// A websocket to `request` (a `ws://` or `wss://` URL, or a request with extra
/// headers), through the proxy that this process's environment names for it.
pub async fn dial(
    request: impl IntoClientRequest,
    config: WebSocketConfig,
) -> Result<WebSocket, DialError> {
    dial_with(&ProxyEnv::current(), request, config).await
}

/// [`dial`] with an explicit proxy environment.
pub async fn dial_with(
    env: &ProxyEnv,
    request: impl IntoClientRequest,
    config: WebSocketConfig,
) -> Result<WebSocket, DialError> {
    let request = request.into_client_request()?;
    let uri = request.uri();
    let (scheme, default_port) = match uri.scheme_str() {
        Some("wss") => ("wss", 443),
        Some("ws") => ("ws", 80),
        _ => return Err(DialError::Other("not a ws:// or wss:// URL".into())),
    };
    let host = uri.host().unwrap_or_default();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
        .to_string();
    let port = uri.port_u16().unwrap_or(default_port);
    let target = authority(&host, port);
    let stream = match env.route(scheme, &host)? {
        Route::Direct => TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| DialError::Other(format!("cannot connect to {target}: {e}")))?,
        Route::Proxy(proxy) => {
            tracing::debug!(proxy = %proxy.url(), var = proxy.var, %target, "dialing through a proxy");
            tunnel::through(&proxy, &target, CONNECT_ANSWER_TIMEOUT).await?
        }
    };
    stream
        .set_nodelay(true)
        .map_err(|e| DialError::Other(e.to_string()))?;
    let connector = if scheme == "wss" {
        Some(Connector::Rustls(tls_config().map_err(DialError::Other)?))
    } else {
        None
    };
    let (ws, _) =
        tokio_tungstenite::client_async_tls_with_config(request, stream, Some(config), connector)
            .await?;
    Ok(ws)
}

/// A websocket error in a few words (an HTTP refusal as its status).
pub fn describe(e: &tungstenite::Error) -> String {
    match e {
        tungstenite::Error::Http(resp) => format!("HTTP {}", resp.status()),
        other => other.to_string(),
    }
}

/// TLS for `wss://`: the system's trust store, rustls with aws-lc (the SDK's provider).
fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err("no trusted CA certificates found on this system (install ca-certificates, or set SSL_CERT_FILE)".into());
            }
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Ok(Arc::new(config))
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::testpeer::{closed_port, Peer};

    fn env(var: &str, value: String) -> ProxyEnv {
        ProxyEnv::from_pairs([(var, value)])
    }

    #[tokio::test]
    async fn ws_urls_go_through_connect_too_and_a_refusal_is_typed() {
        let proxy = Peer::start(&b"HTTP/1.0 403 Access violation\r\n\r\n"[..]).await;
        let url = format!("http://127.0.0.1:{}", proxy.port);
        let err = dial_with(
            &env("http_proxy", url.clone()),
            "ws://127.0.0.1:9/v1/data-channel/s-1?role=publish_subscribe",
            WebSocketConfig::default(),
        )
        .await
        .unwrap_err();
        match err {
            DialError::Proxy(e @ ProxyError::Refused { .. }) => assert_eq!(
                e.to_string(),
                format!("the proxy at {url} refused CONNECT to 127.0.0.1:9 (403 Access violation)")
            ),
            other => panic!("{other:?}"),
        }
        let heads = proxy.heads();
        assert!(
            heads[0].starts_with("CONNECT 127.0.0.1:9 HTTP/1.1\r\nHost: 127.0.0.1:9\r\n"),
            "{heads:?}"
        );
    }

    #[tokio::test]
    async fn wss_takes_the_https_proxy_and_an_unreachable_one_is_named() {
        let port = closed_port();
        let err = dial_with(
            &env("HTTPS_PROXY", format!("127.0.0.1:{port}")),
            "wss://ssmmessages.us-east-1.amazonaws.com/v1/data-channel/s-1",
            WebSocketConfig::default(),
        )
        .await
        .unwrap_err();
        match err {
            DialError::Proxy(ProxyError::Unreachable { proxy, var, .. }) => {
                assert_eq!(
                    (proxy, var),
                    (format!("http://127.0.0.1:{port}"), "HTTPS_PROXY")
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn no_proxy_dials_direct() {
        let port = closed_port();
        let env = ProxyEnv::from_pairs([
            ("http_proxy", format!("http://127.0.0.1:{}", closed_port())),
            ("NO_PROXY", "127.0.0.0/8".to_string()),
        ]);
        let err = dial_with(
            &env,
            &format!("ws://127.0.0.1:{port}/"),
            WebSocketConfig::default(),
        )
        .await
        .unwrap_err();
        // The failure is the target's, not the proxy's.
        match err {
            DialError::Other(reason) => {
                assert!(
                    reason.starts_with(&format!("cannot connect to 127.0.0.1:{port}: ")),
                    "{reason}"
                )
            }
            other => panic!("{other:?}"),
        }
    }
}
