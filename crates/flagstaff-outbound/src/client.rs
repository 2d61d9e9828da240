//! [`SafeClient`]: the only way Flagstaff makes HTTP requests to URLs that
//! API users chose (webhooks, integration endpoints).
//!
//! Defences, and why each exists:
//!
//! * **Connect-time address policy.** Host names are resolved by our own
//!   [`reqwest::dns::Resolve`] implementation, which drops every address the
//!   [`OutboundPolicy`] refuses. reqwest/hyper connect only to the addresses
//!   the resolver returns, so a name that resolves to `127.0.0.1` (or that
//!   an attacker re-points at `169.254.169.254` between a validation step
//!   and the request — DNS rebinding) never gets a socket. There is no
//!   separate "validate the URL, then fetch it" step that could race.
//! * **IP-literal hosts** skip the resolver inside hyper, so they are checked
//!   against the same policy before the request is handed to reqwest.
//! * **No redirects.** A redirect is a second, attacker-chosen URL; the
//!   3xx response is returned to the caller as-is.
//! * **No proxies.** reqwest honours `HTTP_PROXY`-style environment
//!   variables by default; through a proxy the *proxy* resolves and connects,
//!   which would bypass the policy entirely, so proxies are disabled.
//! * **Timeouts** bound how long a slow (or deliberately stalling) partner can
//!   hold a delivery worker.
//! * **Response size cap.** At most `cap + 1` bytes of a body are read; the
//!   rest is never buffered and the connection is dropped.
//! * **Secret-free errors.** Request headers (`Authorization`, API keys) and
//!   bodies routinely carry secrets, and URLs of webhooks often *are* the
//!   secret (e.g. chat-service incoming-webhook URLs), so error messages
//!   carry only the host and the kind of failure, and never the URL,
//!   a header value or the body.

use std::error::Error as StdError;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use crate::policy::{ALLOW_OUTBOUND_FLAG, OutboundPolicy};

/// Default `User-Agent` sent with every request.
pub const DEFAULT_USER_AGENT: &str = concat!("Flagstaff/", env!("CARGO_PKG_VERSION"));

/// Tunables of a [`SafeClient`].
#[derive(Debug, Clone)]
pub struct SafeClientConfig {
    /// Which destination addresses are permitted.
    pub policy: OutboundPolicy,
    /// Limit for establishing the TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Limit for the whole exchange: connect, send, headers and body.
    pub request_timeout: Duration,
    /// Response body bytes kept; anything beyond is discarded unread.
    pub max_response_bytes: usize,
    /// Value of the `User-Agent` header unless the request sets its own.
    pub user_agent: String,
}

impl Default for SafeClientConfig {
    fn default() -> Self {
        Self {
            policy: OutboundPolicy::default(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            max_response_bytes: 64 * 1024,
            user_agent: DEFAULT_USER_AGENT.to_owned(),
        }
    }
}

/// One outbound HTTP request.
///
/// `Debug` is implemented by hand so that logging a request shows header
/// names and the body length but never header values or body bytes.
#[derive(Clone, Default)]
pub struct OutboundRequest {
    /// HTTP method, e.g. `"POST"`.
    pub method: String,
    /// Absolute `http` or `https` URL.
    pub url: String,
    /// Header name/value pairs, sent in order (repeated names are kept).
    pub headers: Vec<(String, String)>,
    /// Request body (may be empty).
    pub body: Vec<u8>,
}

impl OutboundRequest {
    /// A request without headers or body.
    pub fn new(method: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            method: method.into(),
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Append a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Set the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }
}

impl fmt::Debug for OutboundRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header_names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("OutboundRequest")
            .field("method", &self.method)
            .field("url", &redacted_url(&self.url))
            .field("header_names", &header_names)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// Scheme and authority only: paths and queries of webhook URLs are often
/// bearer secrets.
fn redacted_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(u) => match u.host_str() {
            Some(host) => match u.port() {
                Some(port) => format!("{}://{host}:{port}/…", u.scheme()),
                None => format!("{}://{host}/…", u.scheme()),
            },
            None => format!("{}:…", u.scheme()),
        },
        Err(_) => "<unparseable>".to_owned(),
    }
}

/// What the partner answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundResponse {
    /// HTTP status code (3xx included: redirects are not followed).
    pub status: u16,
    /// Response headers in wire order; non-UTF-8 bytes are replaced.
    pub headers: Vec<(String, String)>,
    /// Body, at most `max_response_bytes` long.
    pub body: Vec<u8>,
    /// Whether the partner sent more than `max_response_bytes`.
    pub truncated: bool,
    /// Time from the start of [`SafeClient::send`] to the end of the body read.
    pub elapsed: Duration,
}

impl OutboundResponse {
    /// First value of a header, matched case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why a request was not delivered.
///
/// No variant ever contains a request header value, the request body or the
/// request URL (see the module docs); it is safe to log and to show to the
/// API user who configured the integration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    /// The destination is not permitted by the [`OutboundPolicy`].
    #[error("refused: {host} {reason}")]
    Refused {
        /// Host from the URL.
        host: String,
        /// Why it was refused, ending with how to allow it.
        reason: String,
    },
    /// The request could not be built: bad URL, method or header.
    #[error("invalid outbound request: {0}")]
    InvalidRequest(String),
    /// Connect or total timeout elapsed.
    #[error("outbound request timed out")]
    Timeout,
    /// DNS failure, connection refused, TLS failure and the like.
    #[error("outbound connection failed: {0}")]
    Connect(String),
    /// Anything else (e.g. the peer closed mid-response).
    #[error("outbound request failed: {0}")]
    Other(String),
}

/// Error produced by [`PolicyResolver`]; recognised again (by downcasting
/// through reqwest's error chain) and turned into [`OutboundError::Refused`].
#[derive(Debug)]
struct PolicyRefusal {
    host: String,
    reason: String,
}

impl fmt::Display for PolicyRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "refused: {} {}", self.host, self.reason)
    }
}

impl StdError for PolicyRefusal {}

/// DNS resolver that only ever hands permitted addresses to the connector.
struct PolicyResolver {
    policy: Arc<OutboundPolicy>,
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = Arc::clone(&self.policy);
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // Port 0: hyper substitutes the URL's (or the scheme's) port.
            let resolved = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let mut permitted: Vec<SocketAddr> = Vec::new();
            let mut refused: Vec<String> = Vec::new();
            for addr in resolved {
                match policy.check(addr.ip()) {
                    Ok(()) => {
                        if !permitted.contains(&addr) {
                            permitted.push(addr);
                        }
                    }
                    Err(blocked) => {
                        let text = blocked.to_string();
                        if !refused.contains(&text) {
                            refused.push(text);
                        }
                    }
                }
            }
            if permitted.is_empty() {
                let reason = if refused.is_empty() {
                    "resolves to no addresses".to_owned()
                } else {
                    format!(
                        "resolves only to private/loopback/link-local/metadata addresses ({}); allow with {ALLOW_OUTBOUND_FLAG} <CIDR>",
                        refused.join(", ")
                    )
                };
                return Err(Box::new(PolicyRefusal { host, reason }) as _);
            }
            Ok(Box::new(permitted.into_iter()) as Addrs)
        })
    }
}

/// HTTP client for user-chosen destinations. Cheap to clone (shares the
/// connection pool).
#[derive(Debug, Clone)]
pub struct SafeClient {
    http: reqwest::Client,
    policy: Arc<OutboundPolicy>,
    request_timeout: Duration,
    max_response_bytes: usize,
}

impl SafeClient {
    /// Build a client. Fails only if the TLS backend cannot be initialised
    /// or the user agent is not a valid header value.
    pub fn new(config: SafeClientConfig) -> Result<Self, OutboundError> {
        let policy = Arc::new(config.policy);
        let user_agent = HeaderValue::from_str(&config.user_agent)
            .map_err(|_| OutboundError::InvalidRequest("invalid User-Agent".to_owned()))?;
        let http = reqwest::Client::builder()
            .dns_resolver(Arc::new(PolicyResolver {
                policy: Arc::clone(&policy),
            }))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .referer(false)
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .user_agent(user_agent)
            .build()
            .map_err(|e| OutboundError::Other(error_chain(&e.without_url())))?;
        Ok(Self {
            http,
            policy,
            request_timeout: config.request_timeout,
            max_response_bytes: config.max_response_bytes,
        })
    }

    /// The address policy in force.
    pub fn policy(&self) -> &OutboundPolicy {
        &self.policy
    }

    /// Send `request` and read at most `max_response_bytes` of the answer.
    pub async fn send(&self, request: OutboundRequest) -> Result<OutboundResponse, OutboundError> {
        let started = Instant::now();
        let OutboundRequest {
            method,
            url,
            headers,
            body,
        } = request;

        let url = Url::parse(&url)
            .map_err(|e| OutboundError::InvalidRequest(format!("invalid URL: {e}")))?;
        match url.scheme() {
            "http" | "https" => {}
            other => {
                return Err(OutboundError::InvalidRequest(format!(
                    "unsupported URL scheme '{other}': only http and https are allowed"
                )));
            }
        }
        self.check_literal_host(&url)?;

        let method = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|_| OutboundError::InvalidRequest("invalid HTTP method".to_owned()))?;
        let mut header_map = HeaderMap::with_capacity(headers.len());
        for (index, (name, value)) in headers.iter().enumerate() {
            // Neither the value nor a malformed name is echoed: both may be
            // (part of) a credential.
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                OutboundError::InvalidRequest(format!("invalid header name at position {index}"))
            })?;
            // Bytes, not `from_str`: non-ASCII values pass through as
            // opaque octets; only control characters (header injection)
            // are rejected.
            let value = HeaderValue::from_bytes(value.as_bytes()).map_err(|_| {
                OutboundError::InvalidRequest(format!("invalid value for header '{name}'"))
            })?;
            header_map.append(name, value);
        }

        let exchange = async {
            let mut response = self
                .http
                .request(method, url)
                .headers(header_map)
                .body(body)
                .send()
                .await
                .map_err(map_reqwest_error)?;
            let status = response.status().as_u16();
            let headers = response
                .headers()
                .iter()
                .map(|(name, value)| {
                    (
                        name.as_str().to_owned(),
                        String::from_utf8_lossy(value.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let cap = self.max_response_bytes;
            let initial = response
                .content_length()
                .map_or(8 * 1024, |len| usize::try_from(len).unwrap_or(usize::MAX))
                .min(cap);
            let mut body = Vec::with_capacity(initial);
            let mut truncated = false;
            while let Some(chunk) = response.chunk().await.map_err(map_reqwest_error)? {
                let room = cap - body.len();
                if chunk.len() > room {
                    body.extend_from_slice(&chunk[..room]);
                    truncated = true;
                    // Dropping `response` unread closes the connection
                    // instead of draining (or pooling) it.
                    break;
                }
                body.extend_from_slice(&chunk);
            }
            Ok(OutboundResponse {
                status,
                headers,
                body,
                truncated,
                elapsed: started.elapsed(),
            })
        };
        // reqwest's own total timeout already covers the body; this outer
        // bound makes the guarantee independent of reqwest's internals.
        match tokio::time::timeout(self.request_timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(OutboundError::Timeout),
        }
    }

    /// Checks a destination when it is configured, before anything is sent: the URL must be
    /// http(s), an IP-literal host must be permitted, and a host name that resolves must
    /// resolve to at least one permitted address. A name that does not resolve (yet) passes:
    /// every send re-checks at connect time, so nothing can slip through later.
    pub async fn check_url(&self, url: &str) -> Result<(), OutboundError> {
        let url = Url::parse(url)
            .map_err(|e| OutboundError::InvalidRequest(format!("invalid URL: {e}")))?;
        match url.scheme() {
            "http" | "https" => {}
            other => {
                return Err(OutboundError::InvalidRequest(format!(
                    "unsupported URL scheme '{other}': only http and https are allowed"
                )));
            }
        }
        self.check_literal_host(&url)?;
        let Some(host) = url.host_str() else {
            return Err(OutboundError::InvalidRequest("URL has no host".to_owned()));
        };
        if host.starts_with('[') || host.parse::<IpAddr>().is_ok() {
            return Ok(());
        }
        let Ok(resolved) = tokio::net::lookup_host((host, 0)).await else {
            return Ok(());
        };
        let mut refused = Vec::new();
        for addr in resolved {
            match self.policy.check(addr.ip()) {
                Ok(()) => return Ok(()),
                Err(blocked) => refused.push(blocked.to_string()),
            }
        }
        if refused.is_empty() {
            return Ok(());
        }
        Err(OutboundError::Refused {
            host: host.to_owned(),
            reason: format!(
                "resolves only to private/loopback/link-local/metadata addresses ({}); allow with {ALLOW_OUTBOUND_FLAG} <CIDR>",
                refused.join(", ")
            ),
        })
    }

    /// hyper connects to IP-literal hosts without consulting the resolver,
    /// so they are checked here against the same policy.
    fn check_literal_host(&self, url: &Url) -> Result<(), OutboundError> {
        let Some(host) = url.host_str() else {
            return Err(OutboundError::InvalidRequest("URL has no host".to_owned()));
        };
        // URL parsing normalises every IPv4 spelling (`0x7f.1`, `2130706433`)
        // to dotted decimal and brackets IPv6 literals, so parsing the
        // unbracketed host string finds every literal hyper would find.
        let unbracketed = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let Ok(ip) = unbracketed.parse::<IpAddr>() else {
            return Ok(());
        };
        self.policy.check(ip).map_err(|blocked| OutboundError::Refused {
            host: host.to_owned(),
            reason: format!(
                "is a private/loopback/link-local/metadata address ({blocked}); allow with {ALLOW_OUTBOUND_FLAG} <CIDR>"
            ),
        })
    }
}

fn map_reqwest_error(err: reqwest::Error) -> OutboundError {
    let mut source = err.source();
    while let Some(inner) = source {
        if let Some(refusal) = inner.downcast_ref::<PolicyRefusal>() {
            return OutboundError::Refused {
                host: refusal.host.clone(),
                reason: refusal.reason.clone(),
            };
        }
        source = inner.source();
    }
    if err.is_timeout() {
        return OutboundError::Timeout;
    }
    let is_connect = err.is_connect();
    let is_builder = err.is_builder();
    let detail = error_chain(&err.without_url());
    if is_connect {
        OutboundError::Connect(detail)
    } else if is_builder {
        OutboundError::InvalidRequest(detail)
    } else {
        OutboundError::Other(detail)
    }
}

/// `outer: inner: innermost`, skipping repeats (some layers print their
/// source themselves).
fn error_chain(err: &dyn StdError) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        let part = inner.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict_client() -> SafeClient {
        SafeClient::new(SafeClientConfig::default()).unwrap()
    }

    fn literal(url: &str) -> Result<(), OutboundError> {
        strict_client().check_literal_host(&Url::parse(url).unwrap())
    }

    #[test]
    fn literal_hosts_are_checked_without_network() {
        for url in [
            "http://127.0.0.1/",
            "http://127.1/",
            "http://0x7f.0.0.1/",
            "http://2130706433/",
            "http://0.0.0.0/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://169.254.169.254/latest/meta-data",
            "http://10.1.2.3/",
            "https://[fd00:ec2::254]/",
            "http://[fe80::1%25eth0]/",
        ] {
            // Zone identifiers are rejected by the URL parser itself.
            let Ok(parsed) = Url::parse(url) else {
                continue;
            };
            let err = strict_client().check_literal_host(&parsed).unwrap_err();
            assert!(
                matches!(err, OutboundError::Refused { .. }),
                "{url}: {err:?}"
            );
        }
        assert!(literal("http://8.8.8.8/").is_ok());
        assert!(literal("http://[2606:4700:4700::1111]/").is_ok());
        assert!(literal("https://example.com/").is_ok());
    }

    #[test]
    fn literal_refusal_message() {
        let err = literal("http://169.254.169.254/latest/meta-data").unwrap_err();
        assert_eq!(
            err.to_string(),
            "refused: 169.254.169.254 is a private/loopback/link-local/metadata address \
             (169.254.169.254 is in 169.254.0.0/16 (link-local / cloud metadata)); \
             allow with --allow-outbound <CIDR>"
        );
        let OutboundError::Refused { host, .. } = literal("http://[::1]:8080/x").unwrap_err()
        else {
            panic!("expected Refused");
        };
        assert_eq!(host, "[::1]");
    }

    #[test]
    fn request_debug_hides_values_url_path_and_body() {
        let req = OutboundRequest::new(
            "POST",
            "https://hooks.example.com:8443/services/T0/B0/SENTINEL?token=SENTINEL",
        )
        .header("Authorization", "Bearer SENTINEL")
        .body("SENTINEL body");
        let text = format!("{req:?}");
        assert!(!text.contains("SENTINEL"), "{text}");
        assert!(text.contains("https://hooks.example.com:8443/…"), "{text}");
        assert!(text.contains("Authorization"), "{text}");
        assert!(text.contains("body_len: 13"), "{text}");
        assert!(
            format!("{:?}", OutboundRequest::new("GET", "::nonsense")).contains("<unparseable>")
        );
    }

    #[test]
    fn response_header_lookup_is_case_insensitive() {
        let resp = OutboundResponse {
            status: 302,
            headers: vec![("location".into(), "/next".into())],
            body: Vec::new(),
            truncated: false,
            elapsed: Duration::ZERO,
        };
        assert_eq!(resp.header("Location"), Some("/next"));
        assert_eq!(resp.header("Content-Type"), None);
    }

    #[test]
    fn default_config() {
        let config = SafeClientConfig::default();
        assert_eq!(config.connect_timeout, Duration::from_secs(5));
        assert_eq!(config.request_timeout, Duration::from_secs(10));
        assert_eq!(config.max_response_bytes, 65536);
        assert_eq!(
            config.user_agent,
            format!("Flagstaff/{}", env!("CARGO_PKG_VERSION"))
        );
        assert!(config.policy.allowed().is_empty());
        assert!(matches!(
            SafeClient::new(SafeClientConfig {
                user_agent: "bad\nagent".into(),
                ..SafeClientConfig::default()
            }),
            Err(OutboundError::InvalidRequest(_))
        ));
    }
}
