//! HTTP CONNECT (RFC 9110 §9.3.6) through a proxy: the request we send, the proxy's
//! answer, and the exchange over a stream. Websockets always go through a proxy this
//! way, `ws://` included, as RFC 6455 §4.1 asks and curl does, so the proxy sees an
//! opaque tunnel and needs no websocket support of its own.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::proxy::{Credentials, Proxy, ProxyError};

/// A proxy's answer longer than this is not one.
const MAX_HEAD: usize = 16 * 1024;

/// The CONNECT request for `target` (`host:port`).
pub fn request(target: &str, credentials: Option<&Credentials>) -> String {
    let mut r = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some(c) = credentials {
        r.push_str("Proxy-Authorization: ");
        r.push_str(&c.basic());
        r.push_str("\r\n");
    }
    r.push_str(concat!(
        "User-Agent: ec2ssh/",
        env!("CARGO_PKG_VERSION"),
        "\r\n\r\n"
    ));
    r
}

/// What we use of the proxy's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub reason: String,
    /// The scheme of each `Proxy-Authenticate` (or `WWW-Authenticate`) header: `Basic`, `NTLM`, …
    pub authenticate: Vec<String>,
    /// Bytes up to and including the empty line that ends the head.
    pub head_len: usize,
}

/// Parses the head of the answer from the bytes read so far; `Ok(None)` while it is
/// incomplete. Lines may end in CRLF or, leniently, LF.
pub fn parse_answer(buf: &[u8]) -> Result<Option<Answer>, String> {
    let prefix = &buf[..buf.len().min(5)];
    if !b"HTTP/".starts_with(prefix) {
        return Err("it did not answer in HTTP".into());
    }
    let Some(head_len) = head_end(buf) else {
        if buf.len() > MAX_HEAD {
            return Err("its answer's head is longer than 16 KiB".into());
        }
        return Ok(None);
    };
    let head = String::from_utf8_lossy(&buf[..head_len]);
    let mut lines = head.lines().map(|l| l.trim_end_matches('\r'));
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let status = parts
        .next()
        .filter(|c| c.len() == 3)
        .and_then(|c| c.parse::<u16>().ok())
        .filter(|_| version.starts_with("HTTP/1."))
        .ok_or_else(|| {
            format!(
                "its status line is not HTTP/1.x: {:?}",
                crate::text::sanitize(&crate::text::truncate(status_line, 80))
            )
        })?;
    let reason = parts.next().unwrap_or_default().trim().to_string();
    let authenticate = lines
        .filter_map(|l| l.split_once(':'))
        .filter(|(name, _)| {
            let name = name.trim();
            name.eq_ignore_ascii_case("proxy-authenticate")
                || name.eq_ignore_ascii_case("www-authenticate")
        })
        .filter_map(|(_, value)| value.split_whitespace().next())
        .map(|scheme| scheme.trim_end_matches(',').to_string())
        .collect();
    Ok(Some(Answer {
        status,
        reason,
        authenticate,
        head_len,
    }))
}

/// The end of the head: just past the first empty line.
fn head_end(buf: &[u8]) -> Option<usize> {
    let mut line_start = 0;
    for (i, &b) in buf.iter().enumerate() {
        if b == b'\n' {
            let line = &buf[line_start..i];
            if line.is_empty() || line == b"\r" {
                return Some(i + 1);
            }
            line_start = i + 1;
        }
    }
    None
}

/// A TCP connection to `proxy`.
pub async fn reach(proxy: &Proxy) -> Result<TcpStream, ProxyError> {
    TcpStream::connect((proxy.host.as_str(), proxy.port))
        .await
        .map_err(|e| ProxyError::Unreachable {
            proxy: proxy.url(),
            var: proxy.var,
            reason: e.to_string(),
        })
}

/// A tunnel to `target` (`host:port`) through `proxy`, which has `answer_within` to
/// answer the CONNECT.
pub async fn through(
    proxy: &Proxy,
    target: &str,
    answer_within: Duration,
) -> Result<TcpStream, ProxyError> {
    let mut stream = reach(proxy).await?;
    tokio::time::timeout(answer_within, open(&mut stream, proxy, target))
        .await
        .map_err(|_| ProxyError::BadAnswer {
            proxy: proxy.url(),
            var: proxy.var,
            target: target.to_string(),
            reason: format!("it did not answer within {answer_within:?}"),
        })??;
    Ok(stream)
}

/// Asks `proxy`, over `stream` (already connected to it), for a tunnel to `target`.
/// On success the stream carries the tunnel.
pub async fn open<S>(stream: &mut S, proxy: &Proxy, target: &str) -> Result<(), ProxyError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let bad = |reason: String| ProxyError::BadAnswer {
        proxy: proxy.url(),
        var: proxy.var,
        target: target.to_string(),
        reason,
    };
    stream
        .write_all(request(target, proxy.credentials.as_ref()).as_bytes())
        .await
        .map_err(|e| bad(format!("sending CONNECT failed: {e}")))?;
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| bad(format!("reading its answer failed: {e}")))?;
        if n == 0 {
            return Err(bad("it closed the connection without answering".into()));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(answer) = parse_answer(&buf).map_err(bad)? {
            return judge(&answer, buf.len(), proxy, target);
        }
    }
}

/// The tunnel is open on any 2xx (RFC 9110); everything else says why not. Only the
/// proxy can answer a CONNECT, so a 401 is its own login failure too (tinyproxy sends
/// 401, not 407, for wrong credentials).
fn judge(answer: &Answer, read: usize, proxy: &Proxy, target: &str) -> Result<(), ProxyError> {
    let status = crate::text::sanitize(&crate::text::truncate(
        format!("{} {}", answer.status, answer.reason).trim(),
        80,
    ))
    .into_owned();
    let (proxy_url, var, target) = (proxy.url(), proxy.var, target.to_string());
    match answer.status {
        // The target speaks only after we do, so nothing can follow the head yet.
        200..=299 if read > answer.head_len => Err(ProxyError::BadAnswer {
            proxy: proxy_url,
            var,
            target,
            reason: "it sent data before the tunnel was used".into(),
        }),
        200..=299 => Ok(()),
        401 | 407 => Err(ProxyError::AuthRequired {
            proxy: proxy_url,
            var,
            target,
            status,
            sent: proxy.credentials.is_some(),
            offered: answer
                .authenticate
                .iter()
                .map(|s| crate::text::sanitize(s).into_owned())
                .collect(),
        }),
        _ => Err(ProxyError::Refused {
            proxy: proxy_url,
            var,
            target,
            status,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxy(credentials: Option<(&str, &str)>) -> Proxy {
        Proxy {
            host: "127.0.0.1".into(),
            port: 3128,
            credentials: credentials.map(|(user, password)| Credentials {
                user: user.into(),
                password: password.into(),
            }),
            var: "http_proxy",
        }
    }

    #[test]
    fn the_request_names_the_target_twice_and_carries_basic_credentials() {
        let p = proxy(Some(("Aladdin", "open sesame")));
        assert_eq!(
            request(
                "ssmmessages.eu-west-1.amazonaws.com:443",
                p.credentials.as_ref()
            ),
            format!(
                "CONNECT ssmmessages.eu-west-1.amazonaws.com:443 HTTP/1.1\r\n\
                 Host: ssmmessages.eu-west-1.amazonaws.com:443\r\n\
                 Proxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n\
                 User-Agent: ec2ssh/{}\r\n\r\n",
                env!("CARGO_PKG_VERSION")
            )
        );
        let plain = request("[::1]:8080", None);
        assert!(plain.starts_with("CONNECT [::1]:8080 HTTP/1.1\r\nHost: [::1]:8080\r\n"));
        assert!(!plain.contains("Proxy-Authorization"));
    }

    #[test]
    fn answers_parse_when_complete() {
        // tinyproxy 1.11's answers, verbatim.
        let ok = b"HTTP/1.0 200 Connection established\r\nProxy-agent: tinyproxy/1.11.1\r\n\r\n";
        let a = parse_answer(ok).unwrap().unwrap();
        assert_eq!(
            (a.status, a.reason.as_str(), a.head_len),
            (200, "Connection established", ok.len())
        );
        for cut in 0..ok.len() {
            assert_eq!(parse_answer(&ok[..cut]), Ok(None), "cut at {cut}");
        }
        let denied = b"HTTP/1.0 407 Proxy Authentication Required\r\nServer: tinyproxy/1.11.1\r\n\
            Content-Type: text/html\r\nProxy-Authenticate: Basic realm=\"Tinyproxy\"\r\n\
            Connection: close\r\n\r\n<?xml version=\"1.0\"?>";
        let a = parse_answer(denied).unwrap().unwrap();
        assert_eq!(a.status, 407);
        assert_eq!(a.authenticate, vec!["Basic".to_string()]);
        // Several challenges, any case, bare LF line ends.
        let ntlm =
            b"HTTP/1.1 407 Auth\nproxy-authenticate: NTLM\nPROXY-AUTHENTICATE: Negotiate abc\n\n";
        let a = parse_answer(ntlm).unwrap().unwrap();
        assert_eq!(
            a.authenticate,
            vec!["NTLM".to_string(), "Negotiate".to_string()]
        );
        assert_eq!(a.head_len, ntlm.len());
    }

    #[test]
    fn what_is_not_an_http_answer_fails_early() {
        assert!(parse_answer(b"\x05\xff").is_err());
        assert!(parse_answer(b"SSH-2.0-OpenSSH_9.2\r\n").is_err());
        assert!(parse_answer(b"HTTP/2 200\r\n\r\n").is_err());
        assert!(parse_answer(b"HTTP/1.1 20 OK\r\n\r\n").is_err());
        assert!(parse_answer(b"HTTP/1.1 abc OK\r\n\r\n").is_err());
        let endless = [b"HTTP/1.1 200 OK\r\n".as_slice(), &[b'x'; MAX_HEAD]].concat();
        assert!(parse_answer(&endless).is_err());
    }

    #[test]
    fn statuses_become_errors_that_name_the_proxy_and_the_target() {
        let p = proxy(None);
        let answer = |raw: &[u8]| parse_answer(raw).unwrap().unwrap();
        let ok = answer(b"HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(judge(&ok, ok.head_len, &p, "h:1"), Ok(()));
        assert!(matches!(
            judge(&ok, ok.head_len + 1, &p, "h:1"),
            Err(ProxyError::BadAnswer { .. })
        ));
        let refused = answer(b"HTTP/1.1 403 Access violation\r\n\r\n");
        assert_eq!(
            judge(&refused, refused.head_len, &p, "127.0.0.1:8443")
                .unwrap_err()
                .to_string(),
            "the proxy at http://127.0.0.1:3128 refused CONNECT to 127.0.0.1:8443 (403 Access violation)"
        );
        // The reason phrase is the proxy's text: made inert.
        let hostile = answer(b"HTTP/1.1 502 \x1b[31mred\r\n\r\n");
        let text = judge(&hostile, hostile.head_len, &p, "h:1")
            .unwrap_err()
            .to_string();
        assert!(!text.contains('\x1b') && text.contains("502"), "{text:?}");
        let auth = answer(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=x\r\n\r\n");
        match judge(&auth, auth.head_len, &proxy(None), "h:1") {
            Err(ProxyError::AuthRequired { sent, offered, .. }) => {
                assert!(!sent);
                assert_eq!(offered, vec!["Basic".to_string()]);
            }
            other => panic!("{other:?}"),
        }
        // tinyproxy 1.11's answer to wrong credentials.
        let wrong = answer(b"HTTP/1.0 401 Unauthorized\r\nServer: tinyproxy/1.11.1\r\nContent-Type: text/html\r\nWWW-Authenticate: Basic realm=\"Tinyproxy\"\r\nConnection: close\r\n\r\n");
        assert_eq!(
            judge(&wrong, wrong.head_len, &proxy(Some(("u", "p"))), "h:1").unwrap_err().to_string(),
            "the proxy at http://127.0.0.1:3128 rejected the user and password for h:1 (401 Unauthorized)"
        );
    }

    #[tokio::test]
    async fn the_exchange_over_a_stream() {
        let p = proxy(Some(("u", "p")));
        let (mut client, mut server) = tokio::io::duplex(4096);
        let peer = tokio::spawn(async move {
            let mut got = vec![0u8; 4096];
            let n = server.read(&mut got).await.unwrap();
            got.truncate(n);
            server
                .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                .await
                .unwrap();
            // The tunnel carries bytes both ways afterwards.
            let mut hello = [0u8; 5];
            server.read_exact(&mut hello).await.unwrap();
            server.write_all(b"world").await.unwrap();
            (String::from_utf8(got).unwrap(), hello)
        });
        open(&mut client, &p, "target:443").await.unwrap();
        client.write_all(b"hello").await.unwrap();
        let mut world = [0u8; 5];
        client.read_exact(&mut world).await.unwrap();
        let (request, hello) = peer.await.unwrap();
        assert!(
            request.starts_with("CONNECT target:443 HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(
            request.contains("\r\nProxy-Authorization: Basic dTpw\r\n"),
            "{request}"
        );
        assert_eq!((&hello, &world), (b"hello", b"world"));
    }

    #[tokio::test]
    async fn a_proxy_that_hangs_up_is_a_bad_answer() {
        let (mut client, mut server) = tokio::io::duplex(4096);
        tokio::spawn(async move {
            let mut got = [0u8; 256];
            let _ = server.read(&mut got).await;
            drop(server);
        });
        let err = open(&mut client, &proxy(None), "h:1").await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "the proxy at http://127.0.0.1:3128 gave no usable answer to CONNECT h:1: it closed the connection without answering"
        );
    }

    #[tokio::test]
    async fn a_proxy_that_never_answers_is_given_up_on() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (_silent, _) = listener.accept().await.unwrap();
            std::future::pending::<()>().await;
        });
        let p = Proxy {
            port,
            ..proxy(None)
        };
        let err = through(&p, "h:1", Duration::from_millis(200))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("the proxy at http://127.0.0.1:{port} gave no usable answer to CONNECT h:1: it did not answer within 200ms")
        );
    }
}
