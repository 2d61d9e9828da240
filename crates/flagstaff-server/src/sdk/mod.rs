//! LaunchDarkly's SDK-facing protocols: what official server-side, client-side and mobile
//! SDKs call, unmodified.
//!
//! - server-side (SDK key in `Authorization`, raw or `api_key <key>`): `GET /all` and the old
//!   `GET /flags` streams (SSE `put`/`patch`/`delete`), polling (`/sdk/latest-all`,
//!   `/sdk/latest-flags[/{key}]`, `/sdk/latest-segments[/{key}]`, PHP's `/sdk/flags…`), events
//!   (`POST /bulk`, `POST /diagnostic`);
//! - client-side (environment ID in the path, CORS): `/sdk/evalx/{envId}/contexts/{ctx}`
//!   (GET) and `/sdk/evalx/{envId}/context[s]` (REPORT), `/users` variants, `ping` streams
//!   `/eval/{envId}[/{ctx}]` and `/ping/{envId}`, events `/events/bulk/{envId}`,
//!   `/events/diagnostic/{envId}`;
//! - mobile (mobile key in `Authorization`): `/msdk/evalx/…`, `/meval[/{ctx}]`, `/mping`,
//!   events `/mobile[/events[/bulk|/diagnostic]]`.
//!
//! Data comes from [`feed::SdkHub`]: a per-environment cache kept current from the outbox.

pub mod convert;
pub mod feed;
pub mod membership;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use flagstaff_eval::{Context, evaluate};
use flagstaff_store::EntityKind;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::broadcast::error::RecvError;

use crate::error::ApiError;
use crate::services::wall_millis;
use crate::state::AppState;
use feed::{EnvFeed, EnvId, FeedEvent};

pub use feed::SdkHub;

/// The SDK routes (no OpenAPI: these are LaunchDarkly's SDK protocols, not REST API v2).
pub fn router() -> Router<AppState> {
    Router::new()
        // server-side
        .route("/all", get(stream_all))
        .route("/flags", get(stream_flags))
        .route("/sdk/latest-all", get(poll_all))
        .route("/sdk/latest-flags", get(poll_flags))
        .route("/sdk/latest-flags/{key}", get(poll_flag))
        .route("/sdk/latest-segments", get(poll_segments))
        .route("/sdk/latest-segments/{key}", get(poll_segment))
        .route("/sdk/flags", get(poll_flags))
        .route("/sdk/flags/{key}", get(poll_flag))
        .route("/sdk/segments/{key}", get(poll_segment))
        .route("/bulk", post(server_bulk))
        .route("/diagnostic", post(server_diagnostic))
        // client-side (environment ID)
        .route("/sdk/evalx/{env_id}/contexts/{ctx}", any(client_evalx_get))
        .route("/sdk/evalx/{env_id}/users/{ctx}", any(client_evalx_get))
        .route("/sdk/evalx/{env_id}/context", any(client_evalx_report))
        .route("/sdk/evalx/{env_id}/contexts", any(client_evalx_report))
        .route("/sdk/evalx/{env_id}/user", any(client_evalx_report))
        .route("/sdk/evalx/{env_id}/users", any(client_evalx_report))
        .route("/eval/{env_id}/{ctx}", get(client_stream_get))
        .route("/eval/{env_id}", any(client_stream_report))
        .route("/ping/{env_id}", get(client_ping))
        .route("/events/bulk/{env_id}", post(client_events))
        .route("/events/diagnostic/{env_id}", post(client_diagnostic))
        // mobile (mobile key)
        .route("/msdk/evalx/contexts/{ctx}", any(mobile_evalx_get))
        .route("/msdk/evalx/users/{ctx}", any(mobile_evalx_get))
        .route("/msdk/evalx/context", any(mobile_evalx_report))
        .route("/msdk/evalx/contexts", any(mobile_evalx_report))
        .route("/msdk/evalx/user", any(mobile_evalx_report))
        .route("/msdk/evalx/users", any(mobile_evalx_report))
        .route("/meval/{ctx}", get(mobile_stream_get))
        .route("/meval", any(mobile_stream_report))
        .route("/mping", get(mobile_ping))
        .route("/mobile", post(mobile_events))
        .route("/mobile/events", post(mobile_events))
        .route("/mobile/events/bulk", post(mobile_events))
        .route("/mobile/events/diagnostic", post(mobile_diagnostic))
}

type Rejection = Response;

fn unauthorized() -> Response {
    ApiError::Unauthorized.into_response()
}

/// The credential in `Authorization`: raw, or after `api_key ` (older SDKs).
fn credential(headers: &HeaderMap) -> Option<&str> {
    let raw = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let key = match raw.get(..8) {
        Some(p) if p.eq_ignore_ascii_case("api_key ") => raw[8..].trim(),
        _ => raw,
    };
    (!key.is_empty()).then_some(key)
}

async fn feed_by_alias(state: &AppState, alias: &str) -> Result<Option<Arc<EnvFeed>>, Rejection> {
    let target = match state.store.resolve_alias(alias).await {
        Ok(Some(t)) if t.kind == EntityKind::Environment => t,
        Ok(_) => return Ok(None),
        Err(e) => return Err(ApiError::from(e).into_response()),
    };
    let id = EnvId {
        project: target.scope,
        env: target.key,
    };
    match state.sdk.feed(&id).await {
        Ok(f) => Ok(Some(f)),
        Err(ApiError::NotFound(_)) => Ok(None),
        Err(e) => Err(e.into_response()),
    }
}

/// The environment of the SDK key in `Authorization` (a reset key works until its expiry).
async fn server_feed(state: &AppState, headers: &HeaderMap) -> Result<Arc<EnvFeed>, Rejection> {
    let key = credential(headers).ok_or_else(unauthorized)?;
    let feed = feed_by_alias(state, &format!("sdk:{key}"))
        .await?
        .ok_or_else(unauthorized)?;
    if !feed.read().environment.accepts_sdk_key(key, wall_millis()) {
        return Err(unauthorized());
    }
    Ok(feed)
}

async fn mobile_feed(state: &AppState, headers: &HeaderMap) -> Result<Arc<EnvFeed>, Rejection> {
    let key = credential(headers).ok_or_else(unauthorized)?;
    let feed = feed_by_alias(state, &format!("mob:{key}"))
        .await?
        .ok_or_else(unauthorized)?;
    if feed.read().environment.mobile_key != key {
        return Err(unauthorized());
    }
    Ok(feed)
}

/// The environment of a client-side ID; 404 if unknown (as LaunchDarkly).
async fn client_feed(state: &AppState, env_id: &str) -> Result<Arc<EnvFeed>, Rejection> {
    feed_by_alias(state, &format!("clientside:{env_id}"))
        .await?
        .ok_or_else(|| ApiError::NotFound("unknown environment ID".into()).into_response())
}

// ---------------------------------------------------------------------------------------
// Streams

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `/all`: flags and segments.
    All,
    /// `/flags`: flags only, paths `/<key>`.
    FlagsOnly,
    /// client-side and mobile: `ping` on every change.
    Ping,
}

fn put_event(feed: &EnvFeed, mode: Mode) -> Event {
    let st = feed.read();
    match mode {
        Mode::All => Event::default()
            .event("put")
            .data(format!("{{\"path\":\"/\",\"data\":{}}}", st.all_json)),
        Mode::FlagsOnly => Event::default()
            .event("put")
            .data(serde_json::to_string(&st.flags).unwrap_or_default()),
        Mode::Ping => Event::default().event("ping").data(" "),
    }
}

fn change_event(mode: Mode, event: FeedEvent) -> Option<Event> {
    use feed::ItemKind;
    match (mode, event) {
        (Mode::Ping, _) => Some(Event::default().event("ping").data(" ")),
        (_, FeedEvent::Reset | FeedEvent::Closed) => None,
        (Mode::All, FeedEvent::Patch { kind, key, data }) => {
            Some(Event::default().event("patch").data(format!(
                "{{\"path\":{},\"data\":{data}}}",
                json!(kind.path(&key))
            )))
        }
        (Mode::All, FeedEvent::Delete { kind, key, version }) => Some(
            Event::default()
                .event("delete")
                .data(json!({"path": kind.path(&key), "version": version}).to_string()),
        ),
        (
            Mode::FlagsOnly,
            FeedEvent::Patch {
                kind: ItemKind::Flag,
                key,
                data,
            },
        ) => Some(Event::default().event("patch").data(format!(
            "{{\"path\":{},\"data\":{data}}}",
            json!(format!("/{key}"))
        ))),
        (
            Mode::FlagsOnly,
            FeedEvent::Delete {
                kind: ItemKind::Flag,
                key,
                version,
            },
        ) => Some(
            Event::default()
                .event("delete")
                .data(json!({"path": format!("/{key}"), "version": version}).to_string()),
        ),
        (Mode::FlagsOnly, _) => None,
    }
}

/// An SSE response: a first `put` (or `ping`), then one event per change; a client that
/// falls behind (or a feed reset) gets a fresh `put`; heartbeat comments keep it alive.
fn sse(feed: Arc<EnvFeed>, mode: Mode, heartbeat: Duration) -> Response {
    let rx = feed.tx.subscribe();
    let first = put_event(&feed, mode);
    let stream = futures_util::stream::unfold(
        (feed, rx, Some(first)),
        move |(feed, mut rx, first)| async move {
            if let Some(ev) = first {
                return Some((Ok::<_, Infallible>(ev), (feed, rx, None)));
            }
            loop {
                let next = match rx.recv().await {
                    Ok(FeedEvent::Closed) | Err(RecvError::Closed) => return None,
                    Ok(FeedEvent::Reset) | Err(RecvError::Lagged(_)) => {
                        Some(put_event(&feed, mode))
                    }
                    Ok(e) => change_event(mode, e),
                };
                if let Some(ev) = next {
                    return Some((Ok(ev), (feed, rx, None)));
                }
            }
        },
    );
    let sse = Sse::new(stream).keep_alive(KeepAlive::new().interval(heartbeat).text(""));
    (
        [
            (header::CACHE_CONTROL, "no-cache, no-store, must-revalidate"),
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        sse,
    )
        .into_response()
}

async fn stream_all(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match server_feed(&state, &headers).await {
        Ok(feed) => sse(feed, Mode::All, state.sdk.heartbeat),
        Err(r) => r,
    }
}

async fn stream_flags(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match server_feed(&state, &headers).await {
        Ok(feed) => sse(feed, Mode::FlagsOnly, state.sdk.heartbeat),
        Err(r) => r,
    }
}

// ---------------------------------------------------------------------------------------
// Polling

/// `200` with an `ETag`, or `304` when `If-None-Match` names it.
fn json_with_etag(headers: &HeaderMap, body: String, etag: Option<&str>) -> Response {
    let etag = match etag {
        Some(e) => e.to_string(),
        None => format!(
            "\"{}\"",
            hex::encode(&Sha256::digest(body.as_bytes())[..16])
        ),
    };
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let etag_header = HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"\""));
    if matches {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag_header)]).into_response();
    }
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::ETAG, etag_header),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, max-age=0"),
            ),
        ],
        body,
    )
        .into_response()
}

async fn poll_all(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let feed = match server_feed(&state, &headers).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let (body, etag) = {
        let st = feed.read();
        (st.all_json.to_string(), st.etag.clone())
    };
    json_with_etag(&headers, body, Some(&etag))
}

async fn poll_flags(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match server_feed(&state, &headers).await {
        Ok(feed) => {
            let body = serde_json::to_string(&feed.read().flags).unwrap_or_default();
            json_with_etag(&headers, body, None)
        }
        Err(r) => r,
    }
}

async fn poll_segments(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match server_feed(&state, &headers).await {
        Ok(feed) => {
            let body = serde_json::to_string(&feed.read().segments).unwrap_or_default();
            json_with_etag(&headers, body, None)
        }
        Err(r) => r,
    }
}

async fn poll_flag(
    State(state): State<AppState>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Response {
    let feed = match server_feed(&state, &headers).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let body = feed
        .read()
        .flags
        .get(&key)
        .map(|f| serde_json::to_string(f).unwrap_or_default());
    match body {
        Some(b) => json_with_etag(&headers, b, None),
        None => ApiError::NotFound("Unknown flag key".into()).into_response(),
    }
}

async fn poll_segment(
    State(state): State<AppState>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Response {
    let feed = match server_feed(&state, &headers).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let body = feed
        .read()
        .segments
        .get(&key)
        .map(|s| serde_json::to_string(s).unwrap_or_default());
    match body {
        Some(b) => json_with_etag(&headers, b, None),
        None => ApiError::NotFound("Unknown segment key".into()).into_response(),
    }
}

// ---------------------------------------------------------------------------------------
// Events: parsed, counted and dropped (analytics are not stored yet).

#[derive(Clone, Copy)]
enum EventKind {
    Analytics,
    Diagnostic,
}

fn accept_events(state: &AppState, headers: &HeaderMap, body: &Bytes, kind: EventKind) -> Response {
    let counters = &state.sdk.events;
    let gzipped = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    if !gzipped {
        let parsed: Result<Value, _> = serde_json::from_slice(body);
        let count = match (kind, parsed) {
            (EventKind::Analytics, Ok(Value::Array(items)))
                if items
                    .iter()
                    .all(|e| e.get("kind").and_then(Value::as_str).is_some()) =>
            {
                items.len() as u64
            }
            (EventKind::Diagnostic, Ok(Value::Object(o)))
                if o.get("kind").and_then(Value::as_str).is_some() =>
            {
                1
            }
            _ => {
                return ApiError::invalid(
                    "events must be a JSON array of events (diagnostic: one event object)",
                )
                .into_response();
            }
        };
        match kind {
            EventKind::Analytics => counters
                .events
                .fetch_add(count, std::sync::atomic::Ordering::Relaxed),
            EventKind::Diagnostic => counters
                .diagnostics
                .fetch_add(count, std::sync::atomic::Ordering::Relaxed),
        };
    }
    counters
        .payloads
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    StatusCode::ACCEPTED.into_response()
}

async fn server_bulk(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    match server_feed(&state, &headers).await {
        Ok(_) => accept_events(&state, &headers, &body, EventKind::Analytics),
        Err(r) => r,
    }
}

async fn server_diagnostic(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match server_feed(&state, &headers).await {
        Ok(_) => accept_events(&state, &headers, &body, EventKind::Diagnostic),
        Err(r) => r,
    }
}

async fn client_events(
    State(state): State<AppState>,
    Path(env_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match client_feed(&state, &env_id).await {
        Ok(_) => accept_events(&state, &headers, &body, EventKind::Analytics),
        Err(r) => r,
    }
}

async fn client_diagnostic(
    State(state): State<AppState>,
    Path(env_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match client_feed(&state, &env_id).await {
        Ok(_) => accept_events(&state, &headers, &body, EventKind::Diagnostic),
        Err(r) => r,
    }
}

async fn mobile_events(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    match mobile_feed(&state, &headers).await {
        Ok(_) => accept_events(&state, &headers, &body, EventKind::Analytics),
        Err(r) => r,
    }
}

async fn mobile_diagnostic(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match mobile_feed(&state, &headers).await {
        Ok(_) => accept_events(&state, &headers, &body, EventKind::Diagnostic),
        Err(r) => r,
    }
}

// ---------------------------------------------------------------------------------------
// Client-side and mobile evaluation

#[derive(Deserialize, Default)]
struct EvalQuery {
    #[serde(default, rename = "withReasons")]
    with_reasons: Option<String>,
}

impl EvalQuery {
    fn with_reasons(&self) -> bool {
        self.with_reasons.as_deref() == Some("true")
    }
}

/// Decodes base64url (padding optional; the standard alphabet is tolerated too).
pub fn decode_base64url(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    (bits < 6).then_some(out)
}

fn bad_context(why: impl std::fmt::Display) -> ApiError {
    ApiError::invalid(format!("invalid context: {why}"))
}

fn context_from_path(b64: &str) -> Result<Context, ApiError> {
    let bytes = decode_base64url(b64).ok_or_else(|| bad_context("not base64url"))?;
    let value: Value = serde_json::from_slice(&bytes).map_err(bad_context)?;
    Context::from_json(&value).map_err(|e| bad_context(format!("{e:?}")))
}

fn context_from_body(body: &Bytes) -> Result<Context, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(bad_context)?;
    Context::from_json(&value).map_err(|e| bad_context(format!("{e:?}")))
}

#[derive(Clone, Copy)]
enum Audience {
    ClientSide,
    Mobile,
}

/// `{flagKey: {value, variation, version, flagVersion, trackEvents, trackReason?, reason?}}`
/// for the flags the audience may see.
fn evaluate_all(
    feed: &EnvFeed,
    context: &Context,
    memberships: Option<&membership::Memberships>,
    audience: Audience,
    with_reasons: bool,
) -> Value {
    let st = feed.read();
    let store = membership::WithMemberships {
        eval: &st.eval,
        memberships,
    };
    let mut out = Map::new();
    for (key, flag) in &st.flags {
        let visible = match audience {
            Audience::ClientSide => flag.using_environment_id(),
            Audience::Mobile => flag.using_mobile_key(),
        };
        if !visible {
            continue;
        }
        let Some(compiled) = st.eval.get_flag(key) else {
            continue;
        };
        let detail = evaluate(compiled, context, &store);
        let track_reason = compiled.is_experiment(&detail.reason);
        let mut item = Map::new();
        item.insert("value".into(), detail.value_or_null().clone());
        if let Some(i) = detail.variation_index {
            item.insert("variation".into(), json!(i));
        }
        item.insert("version".into(), json!(flag.version));
        item.insert("flagVersion".into(), json!(flag.version));
        item.insert(
            "trackEvents".into(),
            json!(flag.track_events || track_reason),
        );
        if track_reason {
            item.insert("trackReason".into(), json!(true));
        }
        if with_reasons || track_reason {
            item.insert("reason".into(), detail.reason_json());
        }
        if let Some(d) = flag.debug_events_until_date {
            item.insert("debugEventsUntilDate".into(), json!(d));
        }
        out.insert(key.clone(), Value::Object(item));
    }
    Value::Object(out)
}

fn report_method() -> Method {
    Method::from_bytes(b"REPORT").unwrap_or(Method::POST)
}

async fn evalx_response(
    state: &AppState,
    feed: &EnvFeed,
    ctx: Result<Context, ApiError>,
    audience: Audience,
    q: &EvalQuery,
) -> Response {
    let ctx = match ctx {
        Ok(ctx) => ctx,
        Err(e) => return e.into_response(),
    };
    let memberships = match membership::read(state, feed, &ctx).await {
        Ok(m) => m,
        Err(e) => return e.into_response(),
    };
    (
        [(header::CACHE_CONTROL, "no-cache")],
        axum::Json(evaluate_all(
            feed,
            &ctx,
            memberships.as_ref(),
            audience,
            q.with_reasons(),
        )),
    )
        .into_response()
}

async fn client_evalx_get(
    State(state): State<AppState>,
    method: Method,
    Path((env_id, ctx)): Path<(String, String)>,
    Query(q): Query<EvalQuery>,
) -> Response {
    if method != Method::GET {
        return ApiError::MethodNotAllowed.into_response();
    }
    match client_feed(&state, &env_id).await {
        Ok(feed) => {
            evalx_response(
                &state,
                &feed,
                context_from_path(&ctx),
                Audience::ClientSide,
                &q,
            )
            .await
        }
        Err(r) => r,
    }
}

async fn client_evalx_report(
    State(state): State<AppState>,
    method: Method,
    Path(env_id): Path<String>,
    Query(q): Query<EvalQuery>,
    body: Bytes,
) -> Response {
    if method != report_method() {
        return ApiError::MethodNotAllowed.into_response();
    }
    match client_feed(&state, &env_id).await {
        Ok(feed) => {
            evalx_response(
                &state,
                &feed,
                context_from_body(&body),
                Audience::ClientSide,
                &q,
            )
            .await
        }
        Err(r) => r,
    }
}

async fn mobile_evalx_get(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    Path(ctx): Path<String>,
    Query(q): Query<EvalQuery>,
) -> Response {
    if method != Method::GET {
        return ApiError::MethodNotAllowed.into_response();
    }
    match mobile_feed(&state, &headers).await {
        Ok(feed) => {
            evalx_response(&state, &feed, context_from_path(&ctx), Audience::Mobile, &q).await
        }
        Err(r) => r,
    }
}

async fn mobile_evalx_report(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    Query(q): Query<EvalQuery>,
    body: Bytes,
) -> Response {
    if method != report_method() {
        return ApiError::MethodNotAllowed.into_response();
    }
    match mobile_feed(&state, &headers).await {
        Ok(feed) => {
            evalx_response(
                &state,
                &feed,
                context_from_body(&body),
                Audience::Mobile,
                &q,
            )
            .await
        }
        Err(r) => r,
    }
}

async fn client_stream_get(
    State(state): State<AppState>,
    Path((env_id, ctx)): Path<(String, String)>,
) -> Response {
    let feed = match client_feed(&state, &env_id).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    match context_from_path(&ctx) {
        Ok(_) => sse(feed, Mode::Ping, state.sdk.heartbeat),
        Err(e) => e.into_response(),
    }
}

async fn client_stream_report(
    State(state): State<AppState>,
    method: Method,
    Path(env_id): Path<String>,
    body: Bytes,
) -> Response {
    if method != report_method() {
        return ApiError::MethodNotAllowed.into_response();
    }
    let feed = match client_feed(&state, &env_id).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    match context_from_body(&body) {
        Ok(_) => sse(feed, Mode::Ping, state.sdk.heartbeat),
        Err(e) => e.into_response(),
    }
}

async fn client_ping(State(state): State<AppState>, Path(env_id): Path<String>) -> Response {
    match client_feed(&state, &env_id).await {
        Ok(feed) => sse(feed, Mode::Ping, state.sdk.heartbeat),
        Err(r) => r,
    }
}

async fn mobile_stream_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(ctx): Path<String>,
) -> Response {
    let feed = match mobile_feed(&state, &headers).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    match context_from_path(&ctx) {
        Ok(_) => sse(feed, Mode::Ping, state.sdk.heartbeat),
        Err(e) => e.into_response(),
    }
}

async fn mobile_stream_report(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if method != report_method() {
        return ApiError::MethodNotAllowed.into_response();
    }
    let feed = match mobile_feed(&state, &headers).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    match context_from_body(&body) {
        Ok(_) => sse(feed, Mode::Ping, state.sdk.heartbeat),
        Err(e) => e.into_response(),
    }
}

async fn mobile_ping(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match mobile_feed(&state, &headers).await {
        Ok(feed) => sse(feed, Mode::Ping, state.sdk.heartbeat),
        Err(r) => r,
    }
}

#[cfg(test)]
mod tests {
    use super::decode_base64url;

    #[test]
    fn base64url() {
        assert_eq!(
            decode_base64url("eyJrZXkiOiJ1In0").unwrap(),
            br#"{"key":"u"}"#
        );
        assert_eq!(
            decode_base64url("eyJrZXkiOiJ1In0=").unwrap(),
            br#"{"key":"u"}"#
        );
        assert!(decode_base64url("a").is_none());
        assert!(decode_base64url("!!").is_none());
    }
}
