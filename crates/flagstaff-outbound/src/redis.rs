//! Connections to user-chosen Redis servers (persistent feature stores, big-segment stores),
//! under the same address policy as [`crate::SafeClient`].
//!
//! A Redis URL is as much a server-side request forgery vector as a webhook URL (a user could
//! point Flagstaff at the Redis on its own loopback and overwrite whatever lives there), so
//! the policy is applied to every address the connection is about to use: host names are
//! resolved by [`PolicyResolver`], which refuses the connection when any resolved address is
//! blocked, and IP literals are checked before connecting. Only TCP is accepted (`redis://`,
//! or `rediss://` for TLS): Unix sockets would bypass the address policy entirely. TLS
//! verifies the server's certificate and name against the system's roots, or against the
//! operator's own CA ([`RedisTarget::with_root_certificates`]); `#insecure` is refused.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::io::AsyncDNSResolver;
use redis::{
    AsyncConnectionConfig, Client, ConnectionAddr, ConnectionInfo, IntoConnectionInfo,
    TlsCertificates,
};

use crate::policy::OutboundPolicy;

/// How long connecting and each command may take.
#[derive(Debug, Clone, Copy)]
pub struct RedisTimeouts {
    pub connect: Duration,
    pub response: Duration,
}

impl Default for RedisTimeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            response: Duration::from_secs(30),
        }
    }
}

/// Why a Redis URL is refused or a connection failed. Messages never contain the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedisTargetError {
    #[error("{0}")]
    InvalidUrl(String),
    #[error("destination not allowed: {0}")]
    Blocked(String),
    #[error("cannot connect to Redis: {0}")]
    Connect(String),
}

/// A parsed `redis://` or `rediss://` destination.
#[derive(Clone)]
pub struct RedisTarget {
    info: ConnectionInfo,
    host: String,
    port: u16,
    tls: bool,
    /// PEM root certificates that replace the system's for TLS (a private CA).
    root_certificates: Option<Arc<Vec<u8>>>,
}

impl std::fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The connection info holds the password: show only where it points.
        write!(f, "RedisTarget({}:{})", self.host, self.port)
    }
}

impl RedisTarget {
    /// Parses `redis://[user[:password]@]host[:port][/db]`, or `rediss://…` for TLS.
    pub fn parse(url: &str) -> Result<Self, RedisTargetError> {
        let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or("");
        if !matches!(scheme, "redis" | "rediss") {
            return Err(RedisTargetError::InvalidUrl(
                "the Redis URL must start with redis:// or rediss:// (TLS); Unix sockets are \
                 not allowed"
                    .into(),
            ));
        }
        // The parser's message may quote the URL, password included: say only what to fix.
        let info = url.into_connection_info().map_err(|_| {
            RedisTargetError::InvalidUrl(
                "not a valid redis://[user[:password]@]host[:port][/db] URL".into(),
            )
        })?;
        let (host, port, tls) = match info.addr() {
            ConnectionAddr::Tcp(host, port) => (host.clone(), *port, false),
            ConnectionAddr::TcpTls { insecure: true, .. } => {
                return Err(RedisTargetError::InvalidUrl(
                    "rediss://…#insecure would skip certificate verification: give Flagstaff \
                     the server's CA instead (--redis-ca-file)"
                        .into(),
                ));
            }
            ConnectionAddr::TcpTls { host, port, .. } => (host.clone(), *port, true),
            _ => {
                return Err(RedisTargetError::InvalidUrl(
                    "the Redis URL must name a TCP host".into(),
                ));
            }
        };
        if host.is_empty() {
            return Err(RedisTargetError::InvalidUrl(
                "the Redis URL has no host".into(),
            ));
        }
        let target = Self {
            info,
            host,
            port,
            tls,
            root_certificates: None,
        };
        // Build a client once now, so a URL that cannot make one is refused when saved.
        target.client()?;
        Ok(target)
    }

    /// Verifies TLS servers against these PEM root certificates instead of the system's
    /// (a Redis whose certificate comes from the operator's own CA). No effect on redis://.
    pub fn with_root_certificates(mut self, pem: Option<Arc<Vec<u8>>>) -> Self {
        self.root_certificates = pem;
        self
    }

    /// True for `rediss://`.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    fn client(&self) -> Result<Client, RedisTargetError> {
        let client = match (&self.root_certificates, self.tls) {
            (Some(pem), true) => Client::build_with_tls(
                self.info.clone(),
                TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.to_vec()),
                },
            ),
            _ => Client::open(self.info.clone()),
        };
        client.map_err(|_| {
            RedisTargetError::InvalidUrl(if self.root_certificates.is_some() {
                "the Redis CA certificates are not valid PEM".into()
            } else {
                "not a valid redis:// URL".into()
            })
        })
    }

    /// `host:port`, for status messages (never the credentials).
    pub fn display_address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Resolves the host and checks every address against the policy, without connecting.
    pub async fn check(&self, policy: &OutboundPolicy) -> Result<(), RedisTargetError> {
        resolve_checked(policy, &self.host, self.port)
            .await
            .map(|_| ())
    }

    /// Opens a multiplexed connection (cheap to clone; one per store is enough). The host is
    /// resolved through the policy at connect time, so a name that later resolves to a
    /// private address is refused then too.
    pub async fn connect(
        &self,
        policy: &OutboundPolicy,
        timeouts: RedisTimeouts,
    ) -> Result<MultiplexedConnection, RedisTargetError> {
        if let Ok(ip) = self.host.trim_matches(['[', ']']).parse::<IpAddr>() {
            policy
                .check(ip)
                .map_err(|b| RedisTargetError::Blocked(b.to_string()))?;
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeouts.connect))
            .set_response_timeout(Some(timeouts.response))
            .set_dns_resolver(PolicyResolver {
                policy: Arc::new(policy.clone()),
            });
        self.client()?
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| {
                if let Some(detail) = e.detail().filter(|d| d.starts_with("blocked: ")) {
                    RedisTargetError::Blocked(detail["blocked: ".len()..].to_string())
                } else {
                    RedisTargetError::Connect(e.to_string())
                }
            })
    }
}

async fn resolve_checked(
    policy: &OutboundPolicy,
    host: &str,
    port: u16,
) -> Result<Vec<SocketAddr>, RedisTargetError> {
    let bare = host.trim_matches(['[', ']']);
    let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((bare, port))
            .await
            .map_err(|e| RedisTargetError::Connect(format!("cannot resolve {host}: {e}")))?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(RedisTargetError::Connect(format!(
            "{host} resolves to no address"
        )));
    }
    // Refuse if any address is blocked: a name resolving to both a public and a private
    // address could otherwise be steered to the private one.
    for addr in &addrs {
        policy
            .check(addr.ip())
            .map_err(|b| RedisTargetError::Blocked(b.to_string()))?;
    }
    Ok(addrs)
}

/// The resolver the Redis client connects through: the address policy at DNS time.
#[derive(Clone)]
struct PolicyResolver {
    policy: Arc<OutboundPolicy>,
}

impl AsyncDNSResolver for PolicyResolver {
    fn resolve<'a, 'b: 'a>(
        &'a self,
        host: &'b str,
        port: u16,
    ) -> redis::RedisFuture<'a, Box<dyn Iterator<Item = SocketAddr> + Send + 'a>> {
        Box::pin(async move {
            match resolve_checked(&self.policy, host, port).await {
                Ok(addrs) => {
                    Ok(Box::new(addrs.into_iter()) as Box<dyn Iterator<Item = SocketAddr> + Send>)
                }
                Err(RedisTargetError::Blocked(why)) => Err(redis::RedisError::from((
                    redis::ErrorKind::InvalidClientConfig,
                    "destination not allowed",
                    format!("blocked: {why}"),
                ))),
                Err(other) => Err(redis::RedisError::from(std::io::Error::other(
                    other.to_string(),
                ))),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tcp_redis_urls_are_accepted() {
        assert!(
            !RedisTarget::parse("redis://127.0.0.1:6379/0")
                .unwrap()
                .is_tls()
        );
        assert!(RedisTarget::parse("redis://:pw@example.com").is_ok());
        assert!(RedisTarget::parse("rediss://example.com").unwrap().is_tls());
        for bad in [
            "rediss://example.com/#insecure",
            "redis+unix:///tmp/redis.sock",
            "unix:///tmp/redis.sock",
            "http://example.com",
            "example.com:6379",
        ] {
            assert!(RedisTarget::parse(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn debug_output_hides_the_password() {
        let target = RedisTarget::parse("redis://user:hunter2@example.com:6380").unwrap();
        let shown = format!("{target:?} {}", target.display_address());
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("example.com:6380"));
    }

    #[tokio::test]
    async fn loopback_is_refused_unless_allow_listed() {
        // By IP literal and by name, plain and TLS: all through the same policy.
        for url in [
            "redis://127.0.0.1:1",
            "redis://localhost:1",
            "rediss://127.0.0.1:1",
            "rediss://localhost:1",
        ] {
            let refused = RedisTarget::parse(url)
                .unwrap()
                .connect(&OutboundPolicy::default(), RedisTimeouts::default())
                .await
                .unwrap_err();
            assert!(
                matches!(refused, RedisTargetError::Blocked(_)),
                "{url}: {refused:?}"
            );
        }
        let by_name = RedisTarget::parse("redis://localhost:1").unwrap();
        let refused = by_name.check(&OutboundPolicy::default()).await.unwrap_err();
        assert!(
            matches!(refused, RedisTargetError::Blocked(_)),
            "{refused:?}"
        );
        let allowed = OutboundPolicy::with_allowed(vec!["127.0.0.0/8".parse().unwrap()]);
        // Allowed, so the attempt reaches the socket (nothing listens on port 1).
        let failed = RedisTarget::parse("redis://127.0.0.1:1")
            .unwrap()
            .connect(&allowed, RedisTimeouts::default())
            .await
            .unwrap_err();
        assert!(matches!(failed, RedisTargetError::Connect(_)), "{failed:?}");
    }
}
