//! Proxy selection with curl's rules, as pure functions of a snapshot of the
//! environment ([`ProxyEnv`]): which variable applies to a URL scheme, whether
//! `NO_PROXY` exempts a host, and what the proxy URL means (host, port, Basic
//! credentials). The README's "Proxies" section is the user-facing description.
//!
//! Precedence (curl's): the lower-case variable first, then the upper-case one.
//! `HTTP_PROXY` is read like the others (as Go's net/http, which the
//! session-manager-plugin uses, and botocore do) except in a CGI program
//! (`REQUEST_METHOD` set), which gets it from a request's `Proxy:` header
//! ("httpoxy"). The first variable that is set decides, even when it is set
//! to the empty string (which means "no proxy"). There is no implicit exemption for
//! loopback or `localhost`.

use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use base64::Engine;
use percent_encoding::percent_decode_str;

/// Every variable read, so a snapshot holds exactly these.
const VARIABLES: [&str; 12] = [
    "wss_proxy",
    "WSS_PROXY",
    "ws_proxy",
    "WS_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "http_proxy",
    "HTTP_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
];

static CURRENT: OnceLock<Arc<ProxyEnv>> = OnceLock::new();

/// curl's port for a proxy URL that names none.
pub const DEFAULT_PORT: u16 = 1080;

/// The proxy variables of one process, read once.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ProxyEnv {
    vars: Vec<(&'static str, String)>,
}

impl fmt::Debug for ProxyEnv {
    // Values can hold passwords: only the names of the variables that are set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.vars.iter().map(|(k, _)| k))
            .finish()
    }
}

/// Where a connection goes first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Direct,
    Proxy(Proxy),
}

/// An HTTP proxy from one of the variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    pub credentials: Option<Credentials>,
    /// The variable it came from, for messages.
    pub var: &'static str,
}

/// The proxy URL's user information, percent-decoded.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    /// The `Proxy-Authorization` value (RFC 7617).
    pub fn basic(&self) -> String {
        let pair = format!("{}:{}", self.user, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }
}

impl Proxy {
    /// `http://host:port`, never with the credentials.
    pub fn url(&self) -> String {
        format!("http://{}", authority(&self.host, self.port))
    }
}

/// `host:port`, with brackets around an IPv6 address.
pub fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// What went wrong on the way through a proxy: one line, and [`ProxyError::fix`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    #[error("{var} is not a proxy URL ec2ssh can use: {reason}")]
    BadUrl { var: &'static str, reason: String },
    #[error("cannot connect to the proxy at {proxy}: {reason}")]
    Unreachable {
        proxy: String,
        var: &'static str,
        reason: String,
    },
    #[error("the proxy at {proxy} refused CONNECT to {target} ({status})")]
    Refused {
        proxy: String,
        var: &'static str,
        target: String,
        status: String,
    },
    #[error("the proxy at {proxy} {what} for {target} ({status})", what = auth_what(.sent, .offered))]
    AuthRequired {
        proxy: String,
        var: &'static str,
        target: String,
        status: String,
        /// Whether we sent credentials (then they were wrong).
        sent: bool,
        /// The schemes of its `Proxy-Authenticate` headers.
        offered: Vec<String>,
    },
    #[error("the proxy at {proxy} gave no usable answer to CONNECT {target}: {reason}")]
    BadAnswer {
        proxy: String,
        var: &'static str,
        target: String,
        reason: String,
    },
}

fn auth_what(sent: &bool, offered: &[String]) -> String {
    if !offered.is_empty() && !offers_basic(offered) {
        format!(
            "wants {} authentication, which ec2ssh does not speak,",
            offered.join("/")
        )
    } else if *sent {
        "rejected the user and password".to_string()
    } else {
        "wants a user and password".to_string()
    }
}

fn offers_basic(offered: &[String]) -> bool {
    offered.iter().any(|s| s.eq_ignore_ascii_case("basic"))
}

impl ProxyError {
    /// One line: what to do about it.
    pub fn fix(&self) -> String {
        match self {
            ProxyError::BadUrl { var, .. } => format!(
                "set {var} to http://HOST:PORT (http://USER:PASSWORD@HOST:PORT if the proxy wants a login, special characters percent-encoded), or unset it"
            ),
            ProxyError::Unreachable { var, .. } => format!(
                "check the proxy's address and port in {var}, or list the destination in NO_PROXY to connect without the proxy"
            ),
            ProxyError::Refused { var, target, .. } => format!(
                "the proxy (from {var}) must allow CONNECT to {target}: ask its administrator, or list the host in NO_PROXY to connect without it"
            ),
            ProxyError::AuthRequired { var, offered, .. } if !offered.is_empty() && !offers_basic(offered) => format!(
                "use a proxy that accepts Basic authentication, or a local one that logs in for you (cntlm, px) and point {var} at it"
            ),
            ProxyError::AuthRequired { var, sent: true, .. } => format!(
                "check the user and password in {var} (http://USER:PASSWORD@HOST:PORT; percent-encode @ : / % in them)"
            ),
            ProxyError::AuthRequired { var, .. } => format!(
                "put the proxy's user and password in {var}: http://USER:PASSWORD@HOST:PORT (percent-encode @ : / % in them)"
            ),
            ProxyError::BadAnswer { var, .. } => format!(
                "check that {var} names an HTTP proxy that supports CONNECT (not a SOCKS proxy or a web server)"
            ),
        }
    }

    /// Retrying the same proxy cannot help (it answered, and said no).
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            ProxyError::BadUrl { .. }
                | ProxyError::Refused { .. }
                | ProxyError::AuthRequired { .. }
        )
    }
}

impl ProxyEnv {
    /// Reads this process's variables (non-UTF-8 values are kept lossily and then
    /// fail to parse as URLs, which is reported).
    pub fn from_env() -> ProxyEnv {
        let cgi = std::env::var_os("REQUEST_METHOD").is_some();
        ProxyEnv::from_pairs(VARIABLES.iter().filter_map(|&name| {
            if cgi && name == "HTTP_PROXY" {
                return None; // "httpoxy": a request header, not the user's setting
            }
            std::env::var_os(name).map(|v| (name, v.to_string_lossy().into_owned()))
        }))
    }

    /// The process's snapshot, read on first use.
    pub fn current() -> Arc<ProxyEnv> {
        CURRENT
            .get_or_init(|| Arc::new(ProxyEnv::from_env()))
            .clone()
    }

    /// Makes [`ProxyEnv::current`] "no proxy" for a process that talks only to its own
    /// simulator (`ec2ssh demo`). Effective only before the first `current()`.
    pub fn use_direct_only() {
        if CURRENT.set(Arc::new(ProxyEnv::default())).is_err() {
            tracing::debug!("proxy settings were read before use_direct_only");
        }
    }

    /// A snapshot from name/value pairs (names other than the proxy variables are ignored).
    pub fn from_pairs<K: AsRef<str>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> ProxyEnv {
        let mut vars = Vec::new();
        for (k, v) in pairs {
            if let Some(&name) = VARIABLES.iter().find(|&&n| n == k.as_ref()) {
                vars.retain(|(n, _)| *n != name);
                vars.push((name, v.into()));
            }
        }
        ProxyEnv { vars }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first of `names` that is set, with its value.
    fn first(&self, names: &[&'static str]) -> Option<(&'static str, &str)> {
        names
            .iter()
            .find_map(|&n| self.get(n).map(|value| (n, value)))
    }

    /// Where a connection to `host` for a URL of `scheme` (`https`, `http`, `wss`,
    /// `ws`) goes. `host` is the URL's host as written (no DNS is involved).
    pub fn route(&self, scheme: &str, host: &str) -> Result<Route, ProxyError> {
        if let Some((_, list)) = self.first(&["no_proxy", "NO_PROXY"]) {
            if no_proxy_matches(list, host) {
                return Ok(Route::Direct);
            }
        }
        Ok(match self.proxy_for(scheme)? {
            Some(proxy) => Route::Proxy(proxy),
            None => Route::Direct,
        })
    }

    /// The proxy for URLs of `scheme`, before `NO_PROXY` is considered.
    pub fn proxy_for(&self, scheme: &str) -> Result<Option<Proxy>, ProxyError> {
        match self.first(proxy_variables(scheme)) {
            Some((var, value)) if !value.trim().is_empty() => parse_proxy_url(var, value).map(Some),
            _ => Ok(None),
        }
    }

    /// Fails on the first proxy variable that would be used for some scheme and does
    /// not hold a usable proxy URL, so a bad setting is reported before any call.
    pub fn check(&self) -> Result<(), ProxyError> {
        for scheme in ["https", "http", "wss", "ws"] {
            self.proxy_for(scheme)?;
        }
        Ok(())
    }
}

/// curl's variables for a scheme, in order. Websockets fall back to the HTTP(S) ones.
fn proxy_variables(scheme: &str) -> &'static [&'static str] {
    match scheme {
        "https" => &["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"],
        "http" => &["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"],
        "wss" => &[
            "wss_proxy",
            "WSS_PROXY",
            "https_proxy",
            "HTTPS_PROXY",
            "all_proxy",
            "ALL_PROXY",
        ],
        "ws" => &[
            "ws_proxy",
            "WS_PROXY",
            "http_proxy",
            "HTTP_PROXY",
            "all_proxy",
            "ALL_PROXY",
        ],
        _ => &["all_proxy", "ALL_PROXY"],
    }
}

/// Parses a proxy URL the way curl does: `[http://][USER[:PASSWORD]@]HOST[:PORT][/…]`,
/// no scheme meaning `http`, no port meaning 1080, user and password percent-decoded.
/// Only plain-HTTP proxies are supported.
pub fn parse_proxy_url(var: &'static str, value: &str) -> Result<Proxy, ProxyError> {
    let bad = |reason: &str| ProxyError::BadUrl {
        var,
        reason: reason.to_string(),
    };
    let value = value.trim();
    let rest = match value.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
        Some((scheme, _)) => {
            let scheme = crate::text::sanitize(scheme).to_ascii_lowercase();
            return Err(bad(&format!(
                "{scheme}:// proxies are not supported (ec2ssh talks plain HTTP to the proxy; the TLS to AWS runs inside the CONNECT tunnel)"
            )));
        }
        None => value,
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (host, port) = split_host_port(hostport).ok_or_else(|| bad("no valid host"))?;
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| bad("the port is not a number from 1 to 65535"))?,
    };
    let credentials = match userinfo {
        None | Some("") => None,
        Some(info) => {
            let (user, password) = info.split_once(':').unwrap_or((info, ""));
            let decode = |s: &str| {
                percent_decode_str(s)
                    .decode_utf8()
                    .map(|c| c.into_owned())
                    .map_err(|_| bad("the user or password is not UTF-8 once percent-decoded"))
            };
            Some(Credentials {
                user: decode(user)?,
                password: decode(password)?,
            })
        }
    };
    Ok(Proxy {
        host: host.to_string(),
        port,
        credentials,
        var,
    })
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`; the host must be a plausible name or address.
fn split_host_port(s: &str) -> Option<(&str, Option<&str>)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        host.parse::<std::net::Ipv6Addr>().ok()?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':')?)),
        }
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let plausible = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':');
    (!host.is_empty() && host.chars().all(plausible)).then_some((host, port))
}

/// curl's `NO_PROXY` test: a lone `*` matches everything; otherwise a comma-separated
/// list (blanks around entries ignored) of domain names, each matching itself and its
/// subdomains (a leading or trailing dot ignored), and IP addresses with an optional
/// CIDR prefix length, matching only hosts written as IP addresses. Entries are
/// compared with the URL's host as written: `localhost` does not cover `127.0.0.1`.
pub fn no_proxy_matches(list: &str, host: &str) -> bool {
    let list = list.trim();
    if list == "*" {
        return true;
    }
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let mut entries = list
        .split(|c: char| c == ',' || c.is_ascii_whitespace())
        .filter(|e| !e.is_empty());
    match host.parse::<IpAddr>() {
        Ok(ip) => entries.any(|e| ip_entry_matches(e, ip)),
        Err(_) => {
            let name = host.strip_suffix('.').unwrap_or(host);
            entries.any(|e| domain_entry_matches(e, name))
        }
    }
}

fn domain_entry_matches(entry: &str, name: &str) -> bool {
    let entry = entry.strip_suffix('.').unwrap_or(entry);
    let entry = entry.strip_prefix('.').unwrap_or(entry).as_bytes();
    let name = name.as_bytes();
    if entry.is_empty() || entry.len() > name.len() {
        return false;
    }
    let split = name.len() - entry.len();
    name[split..].eq_ignore_ascii_case(entry) && (split == 0 || name[split - 1] == b'.')
}

/// Whether `entry` (an address or a CIDR block, v4 or v6, brackets allowed) holds `ip`.
pub(crate) fn ip_entry_matches(entry: &str, ip: IpAddr) -> bool {
    let (addr, bits) = match entry.split_once('/') {
        Some((a, b)) => match b.parse::<u32>() {
            Ok(bits) => (a, Some(bits)),
            Err(_) => return false,
        },
        None => (entry, None),
    };
    let addr = addr
        .strip_prefix('[')
        .and_then(|a| a.strip_suffix(']'))
        .unwrap_or(addr);
    match (addr.parse::<IpAddr>(), ip) {
        (Ok(IpAddr::V4(net)), IpAddr::V4(ip)) => {
            prefix_matches(&net.octets(), &ip.octets(), bits.unwrap_or(32))
        }
        (Ok(IpAddr::V6(net)), IpAddr::V6(ip)) => {
            prefix_matches(&net.octets(), &ip.octets(), bits.unwrap_or(128))
        }
        _ => false,
    }
}

/// Whether the first `bits` bits of `a` and `b` agree (false when `bits` is too long).
fn prefix_matches(a: &[u8], b: &[u8], bits: u32) -> bool {
    let bits = bits as usize;
    if bits > a.len() * 8 {
        return false;
    }
    let (whole, rest) = (bits / 8, bits % 8);
    if a[..whole] != b[..whole] {
        return false;
    }
    rest == 0 || {
        let mask = 0xffu8 << (8 - rest);
        a[whole] & mask == b[whole] & mask
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> ProxyEnv {
        ProxyEnv::from_pairs(pairs.iter().copied())
    }

    fn via(e: &ProxyEnv, scheme: &str, host: &str) -> Option<(String, &'static str)> {
        match e.route(scheme, host).unwrap() {
            Route::Direct => None,
            Route::Proxy(p) => Some((p.url(), p.var)),
        }
    }

    #[test]
    fn lower_case_wins_over_upper_case() {
        let e = env(&[
            ("https_proxy", "http://lower:1"),
            ("HTTPS_PROXY", "http://upper:2"),
        ]);
        assert_eq!(
            via(&e, "https", "ssm.us-east-1.amazonaws.com"),
            Some(("http://lower:1".into(), "https_proxy"))
        );
        let e = env(&[("HTTPS_PROXY", "http://upper:2")]);
        assert_eq!(
            via(&e, "https", "ssm.us-east-1.amazonaws.com"),
            Some(("http://upper:2".into(), "HTTPS_PROXY"))
        );
    }

    #[test]
    fn upper_case_http_proxy_is_read_after_the_lower_case_one() {
        let e = env(&[("HTTP_PROXY", "http://upper:1")]);
        assert_eq!(
            via(&e, "http", "127.0.0.1"),
            Some(("http://upper:1".into(), "HTTP_PROXY"))
        );
        assert_eq!(via(&e, "ws", "127.0.0.1").unwrap().1, "HTTP_PROXY");
        let e = env(&[
            ("HTTP_PROXY", "http://upper:1"),
            ("http_proxy", "http://ok:1"),
        ]);
        assert_eq!(
            via(&e, "http", "127.0.0.1"),
            Some(("http://ok:1".into(), "http_proxy"))
        );
    }

    #[test]
    fn each_scheme_reads_its_own_variables_then_all_proxy() {
        let e = env(&[
            ("http_proxy", "http://plain:1"),
            ("https_proxy", "http://secure:2"),
        ]);
        assert_eq!(via(&e, "http", "h").unwrap().0, "http://plain:1");
        assert_eq!(via(&e, "ws", "h").unwrap().0, "http://plain:1");
        assert_eq!(via(&e, "https", "h").unwrap().0, "http://secure:2");
        assert_eq!(via(&e, "wss", "h").unwrap().0, "http://secure:2");

        let e = env(&[("ALL_PROXY", "http://all:3"), ("wss_proxy", "http://ws:4")]);
        assert_eq!(
            via(&e, "https", "h"),
            Some(("http://all:3".into(), "ALL_PROXY"))
        );
        assert_eq!(
            via(&e, "http", "h"),
            Some(("http://all:3".into(), "ALL_PROXY"))
        );
        assert_eq!(
            via(&e, "wss", "h"),
            Some(("http://ws:4".into(), "wss_proxy"))
        );
        assert_eq!(
            via(&e, "ws", "h"),
            Some(("http://all:3".into(), "ALL_PROXY"))
        );
    }

    #[test]
    fn a_variable_set_to_empty_means_no_proxy_and_stops_the_search() {
        let e = env(&[("https_proxy", ""), ("HTTPS_PROXY", "http://upper:2")]);
        assert_eq!(via(&e, "https", "h"), None);
        assert_eq!(via(&ProxyEnv::default(), "https", "h"), None);
    }

    #[test]
    fn loopback_is_not_exempt_by_itself() {
        let e = env(&[("http_proxy", "http://127.0.0.1:3128")]);
        assert!(via(&e, "ws", "127.0.0.1").is_some());
        assert!(via(&e, "http", "localhost").is_some());
        assert!(via(&e, "http", "[::1]").is_some());
    }

    #[test]
    fn no_proxy_exempts_listed_hosts_and_lower_case_wins() {
        let e = env(&[
            ("https_proxy", "http://p:1"),
            ("no_proxy", "amazonaws.com"),
            ("NO_PROXY", "*"),
        ]);
        assert_eq!(via(&e, "https", "ssm.us-east-1.amazonaws.com"), None);
        assert!(via(&e, "https", "example.com").is_some());
    }

    #[test]
    fn no_proxy_domains_match_themselves_and_subdomains_only() {
        let cases = [
            ("example.com", "example.com", true),
            ("example.com", "www.example.com", true),
            ("example.com", "WWW.EXAMPLE.COM", true),
            (".example.com", "example.com", true),
            (".example.com", "a.b.example.com", true),
            ("example.com.", "www.example.com", true),
            ("example.com", "www.example.com.", true),
            ("example.com", "notexample.com", false),
            ("example.com", "example.com.org", false),
            ("ample.com", "example.com", false),
            ("www.example.com", "example.com", false),
            // Ports are not part of an entry (curl): such an entry never matches.
            ("example.com:443", "example.com", false),
            // `*` is a wildcard only on its own.
            ("*", "anything.example", true),
            ("  *  ", "anything.example", true),
            ("foo,*", "anything.example", false),
            ("*.example.com", "www.example.com", false),
            ("", "example.com", false),
            (",, ,", "example.com", false),
            ("a.org, example.com ,b.org", "www.example.com", true),
            ("a.org example.com", "example.com", true),
            // Names never match addresses and vice versa.
            ("localhost", "127.0.0.1", false),
            ("127.0.0.1", "localhost", false),
        ];
        for (list, host, want) in cases {
            assert_eq!(no_proxy_matches(list, host), want, "{list:?} vs {host:?}");
        }
    }

    #[test]
    fn no_proxy_addresses_and_networks() {
        let cases = [
            ("127.0.0.1", "127.0.0.1", true),
            ("127.0.0.1", "127.0.0.2", false),
            ("127.0.0.0/8", "127.200.0.1", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("192.168.1.0/24", "192.168.1.77", true),
            ("192.168.1.0/25", "192.168.1.200", false),
            ("10.0.0.0/33", "10.0.0.1", false),
            ("10.0.0.0/x", "10.0.0.1", false),
            ("::1", "[::1]", true),
            ("::1", "::1", true),
            ("[::1]", "[::1]", true),
            ("fd00::/8", "[fd12:3456::1]", true),
            ("fd00::/8", "[fe80::1]", false),
            ("127.0.0.1", "[::1]", false),
            ("::1", "127.0.0.1", false),
            ("169.254.169.254", "169.254.169.254", true),
        ];
        for (list, host, want) in cases {
            assert_eq!(no_proxy_matches(list, host), want, "{list:?} vs {host:?}");
        }
    }

    #[test]
    fn proxy_urls_parse_like_curl() {
        let p = parse_proxy_url("https_proxy", "http://proxy.corp:3128").unwrap();
        assert_eq!(
            (p.host.as_str(), p.port, p.credentials),
            ("proxy.corp", 3128, None)
        );
        // No scheme means http; no port means 1080; a path is ignored.
        let p = parse_proxy_url("https_proxy", "proxy.corp").unwrap();
        assert_eq!((p.host.as_str(), p.port), ("proxy.corp", DEFAULT_PORT));
        let p = parse_proxy_url("https_proxy", " HTTP://proxy.corp:8080/some/path ").unwrap();
        assert_eq!(p.url(), "http://proxy.corp:8080");
        let p = parse_proxy_url("https_proxy", "http://[fd00::1]:3128").unwrap();
        assert_eq!(
            (p.host.as_str(), p.url().as_str()),
            ("fd00::1", "http://[fd00::1]:3128")
        );
    }

    #[test]
    fn credentials_are_percent_decoded_and_kept_out_of_urls_and_debug() {
        let p = parse_proxy_url("https_proxy", "http://us%65r:p%40ss%3Aw%25rd@proxy:3128").unwrap();
        let c = p.credentials.clone().unwrap();
        assert_eq!(
            (c.user.as_str(), c.password.as_str()),
            ("user", "p@ss:w%rd")
        );
        assert_eq!(p.url(), "http://proxy:3128");
        assert!(!format!("{p:?}").contains("p@ss"), "{p:?}");
        // A raw '@' in the password still finds the host after the last '@'.
        let p = parse_proxy_url("https_proxy", "http://user:p@ss@proxy:3128").unwrap();
        assert_eq!(p.credentials.unwrap().password, "p@ss");
        assert_eq!(p.host, "proxy");
        // A user without a password.
        let p = parse_proxy_url("https_proxy", "http://user@proxy:3128").unwrap();
        assert_eq!(p.credentials.unwrap().password, "");
    }

    #[test]
    fn basic_credentials_follow_rfc_7617() {
        // RFC 7617 section 2's example.
        let c = Credentials {
            user: "Aladdin".into(),
            password: "open sesame".into(),
        };
        assert_eq!(c.basic(), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
    }

    #[test]
    fn unusable_proxy_urls_are_reported_with_their_variable() {
        for (value, reason) in [
            ("https://proxy:3128", "https:// proxies are not supported"),
            (
                "socks5h://127.0.0.1:1080",
                "socks5h:// proxies are not supported",
            ),
            ("http://proxy:99999", "port"),
            ("http://proxy:0", "port"),
            ("http://proxy:abc", "port"),
            ("http://:3128", "no valid host"),
            ("http://pro xy:3128", "no valid host"),
            ("http://[zz]:1", "no valid host"),
            ("http://u:%ff@proxy:1", "UTF-8"),
        ] {
            let err = parse_proxy_url("HTTPS_PROXY", value).unwrap_err();
            let text = err.to_string();
            assert!(
                text.starts_with("HTTPS_PROXY is not a proxy URL ec2ssh can use: ")
                    && text.contains(reason),
                "{value}: {text}"
            );
            assert!(err.fix().starts_with("set HTTPS_PROXY to http://HOST:PORT"));
        }
    }

    #[test]
    fn check_reports_only_variables_that_would_be_used() {
        assert!(env(&[("https_proxy", "socks5://x:1")]).check().is_err());
        // Shadowed by a lower-case variable that is set (even empty): never read.
        assert!(env(&[("https_proxy", ""), ("HTTPS_PROXY", "socks5://x:1")])
            .check()
            .is_ok());
        assert!(env(&[("http_proxy", ""), ("HTTP_PROXY", "socks5://x:1")])
            .check()
            .is_ok());
        assert!(env(&[("HTTP_PROXY", "socks5://x:1")]).check().is_err());
        assert!(env(&[("http_proxy", "http://ok:1")]).check().is_ok());
    }

    #[test]
    fn a_bypassed_host_does_not_need_a_valid_proxy() {
        let e = env(&[("https_proxy", "socks5://x:1"), ("no_proxy", "*")]);
        assert_eq!(e.route("https", "h"), Ok(Route::Direct));
    }

    #[test]
    fn errors_say_what_failed_and_what_to_do() {
        let refused = ProxyError::Refused {
            proxy: "http://127.0.0.1:3128".into(),
            var: "http_proxy",
            target: "127.0.0.1:8443".into(),
            status: "403 Access violation".into(),
        };
        assert_eq!(
            refused.to_string(),
            "the proxy at http://127.0.0.1:3128 refused CONNECT to 127.0.0.1:8443 (403 Access violation)"
        );
        assert!(refused.fix().contains("http_proxy") && refused.fix().contains("NO_PROXY"));
        assert!(refused.is_permanent());

        let auth = |sent, offered: &[&str]| ProxyError::AuthRequired {
            proxy: "http://p:1".into(),
            var: "https_proxy",
            target: "h:443".into(),
            status: "407 Proxy Authentication Required".into(),
            sent,
            offered: offered.iter().map(|s| s.to_string()).collect(),
        };
        assert!(auth(false, &["Basic"])
            .to_string()
            .contains("wants a user and password"));
        assert!(auth(false, &["Basic"])
            .fix()
            .starts_with("put the proxy's user and password in https_proxy"));
        assert!(auth(true, &["Basic"])
            .to_string()
            .contains("rejected the user and password"));
        assert!(auth(true, &[])
            .fix()
            .starts_with("check the user and password in https_proxy"));
        let ntlm = auth(true, &["NTLM", "Negotiate"]);
        assert!(
            ntlm.to_string()
                .contains("wants NTLM/Negotiate authentication"),
            "{ntlm}"
        );
        assert!(ntlm.fix().contains("Basic"));
    }

    #[test]
    fn debug_of_the_environment_shows_names_only() {
        let e = env(&[("https_proxy", "http://u:secret@p:1")]);
        assert_eq!(format!("{e:?}"), "{\"https_proxy\"}");
    }
}
