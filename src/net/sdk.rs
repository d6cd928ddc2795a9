//! The AWS SDK's HTTP client, routed by the same decision as the websockets: for each
//! request, [`ProxyEnv::route`] says direct or which proxy. Every route is the SDK's own
//! default client (hyper, rustls with aws-lc) with the SDK's own proxy support, pointed
//! at exactly that proxy, so only the choice is ours. When a request through a proxy
//! fails to connect, the proxy is asked once more by us to say why, in its own words.
//!
//! Why not the SDK's `ProxyConfig::from_env()` (its default since behavior version
//! 2025-08-07)? It reads the variables with hyper-util's rules, which are not curl's:
//! upper case before lower case, `HTTP_PROXY` read even in CGI, `*` matching inside a `NO_PROXY`
//! list, port 80 for a proxy URL without one. The data channel would then disagree
//! with the API calls about the same variables.

use std::sync::Arc;
use std::time::Duration;

use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::{tls, Builder, ConnectorBuilder};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::{
    RuntimeComponents, RuntimeComponentsBuilder,
};
use aws_smithy_types::config_bag::ConfigBag;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use tokio_tungstenite::tungstenite::http::Uri;

use super::proxy::{authority, Proxy, ProxyEnv, ProxyError, Route};
use super::tunnel;

/// RFC 3986 unreserved characters stay; everything else in a user or password is encoded.
const USERINFO: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// How long the follow-up question to a failing proxy may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// The HTTP client for every SDK call, following `env`.
pub fn http_client(env: Arc<ProxyEnv>) -> SharedHttpClient {
    let proxied = |scheme| match env.proxy_for(scheme) {
        Ok(Some(proxy)) => Some(hyper_client(Some(proxy_config(&proxy)))),
        // A bad variable fails each request that would use it, in `route`.
        _ => None,
    };
    SharedHttpClient::new(RoutedClient {
        http: proxied("http"),
        https: proxied("https"),
        direct: hyper_client(None),
        env,
    })
}

/// The SDK's default HTTPS client (as aws-smithy-runtime builds it), with `proxy`.
fn hyper_client(proxy: Option<ProxyConfig>) -> SharedHttpClient {
    let proxy = proxy.unwrap_or_else(ProxyConfig::disabled);
    Builder::new().build_with_connector_fn(move |settings, components| {
        let mut conn = ConnectorBuilder::default().tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ));
        conn.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            conn.set_sleep_impl(components.sleep_impl());
        }
        conn.set_proxy_config(Some(proxy.clone()));
        conn.build()
    })
}

/// The SDK's proxy for everything sent to it (we decide what is), credentials in the URL.
fn proxy_config(proxy: &Proxy) -> ProxyConfig {
    let userinfo = match &proxy.credentials {
        Some(c) => format!(
            "{}:{}@",
            utf8_percent_encode(&c.user, USERINFO),
            utf8_percent_encode(&c.password, USERINFO)
        ),
        None => String::new(),
    };
    let url = format!("http://{userinfo}{}", authority(&proxy.host, proxy.port));
    ProxyConfig::all(url.as_str()).unwrap_or_else(|e| {
        // Cannot happen for what `parse_proxy_url` accepts; never send such calls direct.
        tracing::warn!(proxy = %proxy.url(), error = %e, "the SDK rejects this proxy URL");
        ProxyConfig::all(proxy.url().as_str()).expect("host and port form a URL")
    })
}

#[derive(Debug)]
struct RoutedClient {
    env: Arc<ProxyEnv>,
    direct: SharedHttpClient,
    http: Option<SharedHttpClient>,
    https: Option<SharedHttpClient>,
}

impl HttpClient for RoutedClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let connector = |c: &SharedHttpClient| c.http_connector(settings, components);
        SharedHttpConnector::new(RoutedConnector {
            env: self.env.clone(),
            direct: connector(&self.direct),
            http: self.http.as_ref().map(connector),
            https: self.https.as_ref().map(connector),
        })
    }

    fn validate_base_client_config(
        &self,
        components: &RuntimeComponentsBuilder,
        cfg: &ConfigBag,
    ) -> Result<(), BoxError> {
        for client in [Some(&self.direct), self.http.as_ref(), self.https.as_ref()]
            .into_iter()
            .flatten()
        {
            client.validate_base_client_config(components, cfg)?;
        }
        Ok(())
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        self.direct.connector_metadata()
    }
}

#[derive(Debug)]
struct RoutedConnector {
    env: Arc<ProxyEnv>,
    direct: SharedHttpConnector,
    http: Option<SharedHttpConnector>,
    https: Option<SharedHttpConnector>,
}

impl HttpConnector for RoutedConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let Some((scheme, host, port)) = destination(request.uri()) else {
            return self.direct.call(request);
        };
        let proxy = match self.env.route(scheme, &host) {
            Ok(Route::Direct) => return self.direct.call(request),
            Ok(Route::Proxy(proxy)) => proxy,
            Err(e) => return HttpConnectorFuture::ready(Err(ConnectorError::user(e.into()))),
        };
        let via = if scheme == "https" {
            &self.https
        } else {
            &self.http
        };
        let Some(via) = via else {
            unreachable!("route() named a proxy that proxy_for() did not");
        };
        let target = authority(&host, port);
        let tunnelled = scheme == "https";
        let call = via.call(request);
        HttpConnectorFuture::new(async move {
            match call.await {
                // Plain-HTTP calls are forwarded: the proxy answers for itself.
                Ok(response) if !tunnelled && response.status().as_u16() == 407 => {
                    let offered = response
                        .headers()
                        .get_all("proxy-authenticate")
                        .filter_map(|v| v.split_whitespace().next())
                        .map(|s| crate::text::sanitize(s).into_owned())
                        .collect();
                    Err(ConnectorError::user(
                        ProxyError::AuthRequired {
                            proxy: proxy.url(),
                            var: proxy.var,
                            status: "407 Proxy Authentication Required".into(),
                            target,
                            sent: proxy.credentials.is_some(),
                            offered,
                        }
                        .into(),
                    ))
                }
                Ok(response) => Ok(response),
                Err(e) if e.is_io() || e.is_other() => {
                    Err(explain(e, &proxy, &target, tunnelled).await)
                }
                Err(e) => Err(e),
            }
        })
    }
}

/// Scheme, host (without IPv6 brackets) and port of a request URI.
fn destination(uri: &str) -> Option<(&'static str, String, u16)> {
    let uri: Uri = uri.parse().ok()?;
    let (scheme, default_port) = match uri.scheme_str()? {
        "https" => ("https", 443),
        "http" => ("http", 80),
        _ => return None,
    };
    let host = uri.host()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Some((
        scheme,
        host.to_string(),
        uri.port_u16().unwrap_or(default_port),
    ))
}

/// A connection through `proxy` failed: asks the proxy directly (a TCP connect, and the
/// CONNECT when the call was tunnelled) and reports its answer if it explains the
/// failure; otherwise the failure was further on, and `original` stands.
async fn explain(
    original: ConnectorError,
    proxy: &Proxy,
    target: &str,
    tunnelled: bool,
) -> ConnectorError {
    let probe = async {
        match tunnelled {
            true => tunnel::through(proxy, target, PROBE_TIMEOUT)
                .await
                .map(drop),
            false => tunnel::reach(proxy).await.map(drop),
        }
    };
    match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
        Ok(Err(e)) if e.is_permanent() => ConnectorError::user(e.into()),
        Ok(Err(e)) => ConnectorError::io(e.into()),
        _ => original,
    }
}

#[cfg(test)]
mod tests;
