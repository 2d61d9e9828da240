//! Flagstaff as an OAuth 2.0 authorization server: the stored client, consent and password
//! documents, and the protocol rules that need no I/O (redirect URIs, scopes, PKCE, where a
//! sign-in may send the browser next).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::UnixMillis;

/// A registered OAuth client (partner application).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OAuthClient {
    pub client_id: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub redirect_uri: String,
    /// A public client (a native or browser app) has no secret and must use PKCE.
    #[serde(default)]
    pub public: bool,
    /// Hex SHA-256 of the secret; `None` for public clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_hash: Option<String>,
    pub creation_date: UnixMillis,
    /// The member who registered it.
    pub created_by: String,
    #[serde(default)]
    pub version: i64,
}

/// A member's consent to a client: the authorized app. Tokens issued under it stop working
/// when it is deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OAuthGrant {
    pub id: String,
    pub client_id: String,
    pub member_id: String,
    pub scope: Scope,
    pub creation_date: UnixMillis,
    pub last_modified: UnixMillis,
    #[serde(default)]
    pub version: i64,
}

/// A member's password, as an argon2id PHC string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Credential {
    pub member_id: String,
    pub password_hash: String,
    pub last_modified: UnixMillis,
}

/// The two scopes: `reader` may take read-only actions, `writer` whatever the member may.
/// Either way the member's *current* permissions bound the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Reader,
    Writer,
}

pub const SCOPES: &[&str] = &["reader", "writer"];

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Reader => "reader",
            Scope::Writer => "writer",
        }
    }

    /// Parses a space-separated `scope` parameter. `writer` includes `reader`, so a request for
    /// both is `writer`. An empty parameter is `reader`, the least the app can ask for.
    pub fn parse(scope: Option<&str>) -> Result<Scope, String> {
        let mut result = None;
        for s in scope.unwrap_or("").split(' ').filter(|s| !s.is_empty()) {
            let one = match s {
                "reader" => Scope::Reader,
                "writer" => Scope::Writer,
                other => {
                    return Err(format!(
                        "unknown scope \"{}\": use reader or writer",
                        other.chars().take(64).collect::<String>()
                    ));
                }
            };
            result = result.max(Some(one));
        }
        Ok(result.unwrap_or(Scope::Reader))
    }

    /// Whether a token of this scope may be narrowed or kept at `requested` on refresh.
    pub fn covers(self, requested: Scope) -> bool {
        requested <= self
    }

    /// What the consent page says the app may do.
    pub fn describe(self) -> &'static str {
        match self {
            Scope::Reader => "read everything you can read; change nothing",
            Scope::Writer => "read and change everything you can, as you",
        }
    }
}

const MAX_URI_LEN: usize = 2048;

/// A client's one redirect URI: absolute `https` (or `http` to a loopback host, for
/// development), no query string, no fragment, no user info. Returns what to fix.
pub fn validate_redirect_uri(uri: &str) -> Result<(), String> {
    if uri.is_empty() {
        return Err("redirectUri is required".into());
    }
    if uri.len() > MAX_URI_LEN {
        return Err(format!(
            "redirectUri must be at most {MAX_URI_LEN} characters"
        ));
    }
    if let Some(c) = uri
        .chars()
        .find(|c| c.is_control() || c.is_whitespace() || "\\<>\"{}|^`".contains(*c))
    {
        return Err(format!(
            "redirectUri must not contain {c:?}: percent-encode it"
        ));
    }
    if uri.contains('?') {
        return Err("redirectUri must not have a query string".into());
    }
    if uri.contains('#') {
        return Err("redirectUri must not have a fragment".into());
    }
    let (scheme, rest) = uri
        .split_once("://")
        .ok_or("redirectUri must be an absolute URI such as https://app.example.com/callback")?;
    let authority = rest.split('/').next().unwrap_or("");
    if authority.contains('@') {
        return Err("redirectUri must not contain user information (user@host)".into());
    }
    let host = host_of(authority).ok_or("redirectUri has no valid host")?;
    match scheme {
        "https" => Ok(()),
        "http" if is_loopback(host) => Ok(()),
        "http" => Err(
            "redirectUri must use https (http is allowed only for loopback hosts: localhost, 127.0.0.1, [::1])"
                .into(),
        ),
        other => Err(format!(
            "redirectUri must use https, not \"{}\"",
            other.chars().take(32).collect::<String>()
        )),
    }
}

/// The host of an authority (`host[:port]` or `[v6][:port]`), if it is well formed.
fn host_of(authority: &str) -> Option<&str> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        (&authority[..v6.len() + 2], after.strip_prefix(':'))
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() || host == "[]" {
        return None;
    }
    if let Some(port) = port
        && (!port.bytes().all(|b| b.is_ascii_digit()) || port.parse::<u16>().is_err())
    {
        return None;
    }
    let valid = |c: char| c.is_ascii_alphanumeric() || "-._[]:%".contains(c);
    host.chars().all(valid).then_some(host)
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host == "[::1]"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Where the sign-in page may send the browser afterwards: a path on this server only
/// (`/…`, never `//host`, `/\host` or anything with a scheme), so it cannot be turned into
/// an open redirect.
pub fn is_local_path(next: &str) -> bool {
    next.starts_with('/')
        && !next.starts_with("//")
        && next.len() <= MAX_URI_LEN
        && !next
            .chars()
            .any(|c| c == '\\' || c.is_control() || c.is_whitespace())
}

/// RFC 7636 §4.1: 43-128 unreserved characters. Challenges (S256: base64url of 32 bytes,
/// 43 characters) have the same alphabet.
pub fn is_pkce_string(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// The S256 challenge of a code verifier.
pub fn pkce_s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Whether `verifier` answers `challenge` (S256 only; `plain` is not supported).
pub fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    is_pkce_string(verifier)
        && constant_time_eq(pkce_s256(verifier).as_bytes(), challenge.as_bytes())
}

/// Compares without stopping at the first difference, so timing tells nothing about how much
/// of a secret matched.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris() {
        for ok in [
            "https://app.example.com/callback",
            "https://app.example.com:8443/cb/x",
            "http://127.0.0.1:9000/cb",
            "http://localhost/cb",
            "http://[::1]:80/cb",
            "https://[2001:db8::1]/cb",
        ] {
            assert_eq!(validate_redirect_uri(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("", "required"),
            ("/callback", "absolute"),
            ("http://app.example.com/cb", "https"),
            ("https://app.example.com/cb?x=1", "query"),
            ("https://app.example.com/cb#f", "fragment"),
            ("https://user@app.example.com/cb", "user information"),
            ("https://good.com\\@evil.com/", "percent-encode"),
            ("javascript://alert(1)", "valid host"),
            ("ftp://app.example.com/cb", "https"),
            ("https:///cb", "valid host"),
            ("https://app.example.com:99999/cb", "valid host"),
            ("https://app.example.com/c b", "percent-encode"),
            ("http://127.0.0.1.evil.com/cb", "https"),
        ] {
            let err = validate_redirect_uri(bad).expect_err(bad);
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn local_paths() {
        assert!(is_local_path("/trust/oauth/authorize?client_id=x"));
        for bad in [
            "https://evil.com",
            "//evil.com",
            "/\\evil.com",
            "evil.com",
            "/a\nb",
            "",
            "http:/x",
        ] {
            assert!(!is_local_path(bad), "{bad:?}");
        }
    }

    #[test]
    fn scopes() {
        assert_eq!(Scope::parse(None), Ok(Scope::Reader));
        assert_eq!(Scope::parse(Some("reader")), Ok(Scope::Reader));
        assert_eq!(Scope::parse(Some("reader writer")), Ok(Scope::Writer));
        assert!(Scope::parse(Some("admin")).unwrap_err().contains("admin"));
        assert!(Scope::Writer.covers(Scope::Reader));
        assert!(!Scope::Reader.covers(Scope::Writer));
    }

    #[test]
    fn pkce_rfc7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert_eq!(pkce_s256(verifier), challenge);
        assert!(pkce_matches(verifier, challenge));
        assert!(!pkce_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXx",
            challenge
        ));
        assert!(!pkce_matches("short", challenge));
    }
}
