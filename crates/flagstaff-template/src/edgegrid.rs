//! Akamai EdgeGrid v1 (`EG1-HMAC-SHA256`) request signing, and the `edgeGridAuth` template
//! helper built on it.
//!
//! # The signing scheme (Akamai's public EdgeGrid specification)
//!
//! * **Auth header prefix**: `EG1-HMAC-SHA256 client_token=<ct>;access_token=<at>;timestamp=<ts>;nonce=<n>;`
//!   with `<ts>` in the form `yyyyMMddTHH:mm:ss+0000` (UTC).
//! * **Data to sign**: the tab-joined fields `METHOD`, `scheme`, `host`, `path+query`,
//!   canonicalized headers, content hash, auth header prefix.
//!   * Canonicalized headers: for each name in `headers_to_sign` (in that order) that the
//!     request carries, `lowercase(name):value` with the value trimmed and every interior run
//!     of whitespace collapsed to one space; the entries are tab-joined.
//!     (A value with leading whitespace is normalized like any other; Akamai's Python library
//!     rejects it, but the vector's expected `Authorization` is exactly what normalizing gives.)
//!   * Content hash: only for `POST` with a non-empty body, base64(SHA-256(body truncated
//!     to `max_body` bytes)); empty otherwise.
//! * **Signing key**: base64(HMAC-SHA256(key = client secret, message = timestamp)).
//! * **Signature**: base64(HMAC-SHA256(key = signing key (the base64 text), message = data to sign)).
//! * **Authorization header**: the prefix followed by `signature=<signature>`.
//!
//! [`sign`] is pure: the caller passes the timestamp and nonce, so it is reproducible and is
//! tested against Akamai's published vectors (`edgegrid/testcases.json`).

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::helpers::{HelperArg, HelperEnv};
use crate::{Compat, RenderOptions, Template};

/// The algorithm name that starts every EdgeGrid v1 `Authorization` header.
pub const ALGORITHM: &str = "EG1-HMAC-SHA256";

/// Akamai's client libraries hash at most this many body bytes unless configured otherwise.
pub const DEFAULT_MAX_BODY: usize = 131_072;

/// An EdgeGrid API client's credentials (from the Akamai Control Center / `.edgerc`).
#[derive(Debug, Clone, Copy)]
pub struct Credentials<'a> {
    pub client_token: &'a str,
    pub client_secret: &'a str,
    pub access_token: &'a str,
}

/// The parts of an HTTP request that EdgeGrid signs.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// HTTP method; signed upper-cased.
    pub method: &'a str,
    /// `https` for every Akamai API.
    pub scheme: &'a str,
    /// The API host (`akab-….luna.akamaiapis.net`), without scheme or path.
    pub host: &'a str,
    /// The request path including the query string (`/edgekv/v1/…?a=b`); empty means `/`.
    pub path_and_query: &'a str,
    /// The request's headers (name, value); only those named in
    /// [`SignOptions::headers_to_sign`] take part in the signature.
    pub headers: &'a [(&'a str, &'a str)],
    /// The body, when known. Only a `POST` body is hashed.
    pub body: Option<&'a [u8]>,
}

/// Client-side signing settings (the `.edgerc` `max_body` and `headers_to_sign`).
#[derive(Debug, Clone, Copy)]
pub struct SignOptions<'a> {
    /// Header names to include in the signature, in this order (matched case-insensitively).
    pub headers_to_sign: &'a [&'a str],
    /// At most this many body bytes are hashed.
    pub max_body: usize,
}

impl Default for SignOptions<'_> {
    fn default() -> Self {
        SignOptions {
            headers_to_sign: &[],
            max_body: DEFAULT_MAX_BODY,
        }
    }
}

/// The result of signing one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The exact string that was HMAC'd (it ends with the auth header prefix).
    pub data_to_sign: String,
    /// The complete `Authorization` header value.
    pub authorization: String,
}

/// Signs `request` with `credentials` at `timestamp` (`yyyyMMddTHH:mm:ss+0000`, see
/// [`format_timestamp`]) with `nonce` (any unique string; Akamai's libraries use a UUID v4).
pub fn sign(
    request: &Request<'_>,
    credentials: &Credentials<'_>,
    options: &SignOptions<'_>,
    timestamp: &str,
    nonce: &str,
) -> Signed {
    let prefix = auth_header_prefix(credentials, timestamp, nonce);
    let method = request.method.to_ascii_uppercase();
    let path = if request.path_and_query.is_empty() {
        "/"
    } else {
        request.path_and_query
    };
    let data_to_sign = [
        method.as_str(),
        request.scheme,
        request.host,
        path,
        &canonicalize_headers(request.headers, options.headers_to_sign),
        &content_hash(&method, request.body, options.max_body),
        &prefix,
    ]
    .join("\t");
    let key = signing_key(credentials.client_secret, timestamp);
    let signature = base64_hmac(key.as_bytes(), data_to_sign.as_bytes());
    Signed {
        authorization: format!("{prefix}signature={signature}"),
        data_to_sign,
    }
}

/// `EG1-HMAC-SHA256 client_token=…;access_token=…;timestamp=…;nonce=…;` (note the trailing `;`).
pub fn auth_header_prefix(credentials: &Credentials<'_>, timestamp: &str, nonce: &str) -> String {
    format!(
        "{ALGORITHM} client_token={};access_token={};timestamp={timestamp};nonce={nonce};",
        credentials.client_token, credentials.access_token
    )
}

/// base64(HMAC-SHA256(client secret, timestamp)).
pub fn signing_key(client_secret: &str, timestamp: &str) -> String {
    base64_hmac(client_secret.as_bytes(), timestamp.as_bytes())
}

/// base64(SHA-256(body[..max_body])) for a non-empty `POST` body; empty for anything else.
pub fn content_hash(method: &str, body: Option<&[u8]>, max_body: usize) -> String {
    match body {
        Some(body) if method.eq_ignore_ascii_case("POST") && !body.is_empty() => {
            let body = &body[..body.len().min(max_body)];
            BASE64.encode(Sha256::digest(body))
        }
        _ => String::new(),
    }
}

/// `name:value` entries (lower-cased name, whitespace-normalized value) for the request's
/// headers named in `headers_to_sign`, in `headers_to_sign` order, tab-joined.
pub fn canonicalize_headers(headers: &[(&str, &str)], headers_to_sign: &[&str]) -> String {
    let mut entries = Vec::new();
    for wanted in headers_to_sign {
        for (name, value) in headers {
            if name.eq_ignore_ascii_case(wanted) {
                let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
                entries.push(format!("{}:{value}", wanted.to_ascii_lowercase()));
            }
        }
    }
    entries.join("\t")
}

/// Formats Unix seconds as EdgeGrid's timestamp, `yyyyMMddTHH:mm:ss+0000` (UTC).
pub fn format_timestamp(unix_seconds: i64) -> String {
    let days = unix_seconds.div_euclid(86_400);
    let secs = unix_seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}{month:02}{day:02}T{:02}:{:02}:{:02}+0000",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Proleptic Gregorian (year, month, day) of the day `days` after 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Shift the epoch to 0000-03-01 so that leap days fall at the end of a 400-year era.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn base64_hmac(key: &[u8], message: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(message);
    BASE64.encode(mac.finalize().into_bytes())
}

/// A fixed time and nonce for the `edgeGridAuth` helper, so that renders are reproducible
/// (tests, previews); see [`with_signing_clock`]. Without one the helper signs with the current
/// time and a fresh UUID v4 nonce, as Akamai's own client libraries do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SigningClock {
    /// Seconds since the Unix epoch.
    pub unix_seconds: i64,
    pub nonce: &'static str,
}

thread_local! {
    static FIXED_CLOCK: Cell<Option<SigningClock>> = const { Cell::new(None) };
}

/// Runs `f` with every `edgeGridAuth` call on this thread signing at `clock` instead of the
/// current time and a random nonce. Nests; the previous setting is restored afterwards, also
/// when `f` panics.
///
/// (A scoped override rather than a `RenderOptions` field, so that adding it broke none of the
/// `RenderOptions { strict, compat }` literals in the workspace.)
pub fn with_signing_clock<R>(clock: SigningClock, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<SigningClock>);
    impl Drop for Restore {
        fn drop(&mut self) {
            FIXED_CLOCK.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(FIXED_CLOCK.with(|c| c.replace(Some(clock))));
    f()
}

/// The parameters of `edgeGridAuth`, in order.
const PARAMS: [&str; 10] = [
    "method",
    "path",
    "host",
    "network",
    "namespaceId",
    "groupId",
    "key",
    "clientSecret",
    "clientToken",
    "accessToken",
];

/// The `edgeGridAuth` template helper:
/// `{{edgeGridAuth method path host network namespaceId groupId key clientSecret clientToken accessToken}}`
/// renders the `Authorization` header value for an Akamai API request.
///
/// LaunchDarkly's production helper is Go-only and undocumented; this is our reading of how the
/// akamai-edgeworkers manifest uses it (and of the catalogue test that pins the call shape:
/// `{{edgeGridAuth '<METHOD>' '<url path>' hostname network namespaceId groupId _featureStoreKey
/// clientSecret clientToken accessToken}}`):
///
/// * `path` is a string literal that is itself a template, e.g.
///   `'/edgekv/v1/networks/{{network}}/namespaces/{{namespaceId}}/groups/{{groupId}}/items/{{_featureStoreKey}}'`
///   (inside a mustache, `{{` in a quoted string is just text, so the outer template passes it
///   through verbatim). The helper renders it, with the same compatibility mode and strictness,
///   against the render's root context (the featureStore endpoint context: its form variables,
///   `_featureStoreKey` and `envId`) with each helper parameter name above also bound to its
///   argument. Rendered by the same engine with the same escaping, the signed path is exactly
///   the path of the endpoint `url` template (`https://{{hostname}}/edgekv/v1/…`) the platform
///   requests.
/// * The request signed is `METHOD https://<host><path>`: `host` is the API host name, the scheme
///   is always `https`, no headers are signed, and there is no content hash. EdgeGrid only hashes
///   `POST` bodies, the catalogue's test forbids `POST` for these requests, and the body is not
///   known to a header template anyway.
/// * `network`, `namespaceId`, `groupId` and `key` are only used through the path template;
///   `clientSecret`, `clientToken` and `accessToken` are the EdgeGrid credentials.
/// * Arguments are converted to strings the way the compatibility mode converts helper
///   arguments (a missing value is `"undefined"` in `Compat::Js`, empty in `Compat::Go`);
///   calls with other than 10 parameters are a render error.
/// * Timestamp and nonce: the current UTC time and a fresh UUID v4, unless a
///   [`with_signing_clock`] scope fixes them.
///
/// The result is the complete header value (`EG1-HMAC-SHA256 client_token=…;…;signature=…`),
/// registered as a SafeString (`helpers::EXTENSIONS`): `{{edgeGridAuth …}}` does not HTML-escape
/// it, so the `=` signs survive in `Compat::Js` too.
pub(crate) fn edge_grid_auth_helper(
    args: &[HelperArg],
    _hash: &[(&str, HelperArg)],
    env: &HelperEnv<'_>,
) -> Result<HelperArg, String> {
    if args.len() != PARAMS.len() {
        return Err(format!(
            "edgeGridAuth needs {} arguments ({}), got {}",
            PARAMS.len(),
            PARAMS.join(" "),
            args.len()
        ));
    }
    let text: Vec<String> = args
        .iter()
        .map(|a| a.to_display_string(env.compat))
        .collect();
    // Indices into PARAMS; network, namespaceId, groupId and key only feed the path template.
    let arg = |i: usize| text[i].as_str();
    let path = expand_path(arg(1), args, env)?;

    let (timestamp, nonce) = match FIXED_CLOCK.with(Cell::get) {
        Some(clock) => (format_timestamp(clock.unix_seconds), clock.nonce.to_owned()),
        None => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
            (format_timestamp(now), uuid::Uuid::new_v4().to_string())
        }
    };
    let request = Request {
        method: arg(0),
        scheme: "https",
        host: arg(2),
        path_and_query: &path,
        headers: &[],
        body: None,
    };
    let credentials = Credentials {
        client_secret: arg(7),
        client_token: arg(8),
        access_token: arg(9),
    };
    let signed = sign(
        &request,
        &credentials,
        &SignOptions::default(),
        &timestamp,
        &nonce,
    );
    Ok(HelperArg::Value(Value::String(signed.authorization)))
}

/// Renders the `path` argument as a template (see [`edge_grid_auth_helper`]).
fn expand_path(path: &str, args: &[HelperArg], env: &HelperEnv<'_>) -> Result<String, String> {
    if !path.contains("{{") {
        return Ok(path.to_owned());
    }
    let mut context: Map<String, Value> = env.root.as_object().cloned().unwrap_or_default();
    for (name, arg) in PARAMS.iter().zip(args) {
        if let Some(value) = arg.as_value() {
            context.insert((*name).to_owned(), value.clone());
        } else {
            context.remove(*name);
        }
    }
    let options = RenderOptions {
        strict: env.strict,
        compat: env.compat,
    };
    Template::parse(format!("{} (edgeGridAuth path)", env.template), path)
        .and_then(|t| t.render(&Value::Object(context), options))
        .map_err(|e| format!("edgeGridAuth path: {e}"))
}

/// Whether `edgeGridAuth` exists in a compatibility mode: in both (handlebars.js has no such
/// helper, but ours signs in either mode).
pub(crate) fn edge_grid_auth_available(_compat: Compat) -> bool {
    true
}
