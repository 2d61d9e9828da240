//! A real "change management" service on a loopback port, speaking the two partner APIs the
//! approval integrations of the catalogue call: the custom-approvals contract
//! (`/api/approvals…`, `/api/members`) and the slice of ServiceNow's change API the
//! `servicenow*` manifests use (`/api/sn_chg_rest/change/standard/…`, `/api/now/table/sys_user`,
//! and a client-credentials `/oauth/token`). It keeps the change records, lets the test (or a
//! benchmark) approve or reject them, can misbehave on purpose, and counts status checks and
//! how many were in flight at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// How the approval endpoints answer (the token and member endpoints always work).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Behaviour {
    Normal = 0,
    /// HTTP 500.
    ServerError = 1,
    /// 200 with a body that is not JSON.
    Garbage = 2,
    /// Never answers (until the client gives up).
    Hang = 3,
    /// 200 with JSON that lacks the fields the parsers read.
    WrongShape = 4,
    /// Answers normally after 300 ms (a slow but working partner).
    Slow = 5,
}

/// One change record.
#[derive(Debug, Clone)]
pub struct Record {
    pub id: String,
    /// `custom` or `servicenow`.
    pub api: &'static str,
    /// custom: `pending|approved|declined`; ServiceNow: the `state` value (`-5` new, `-1`
    /// implement = approved, `4` canceled = rejected).
    pub status: String,
    pub created_with: Value,
    pub applied: bool,
    pub cancelled: bool,
    pub created_at_ms: i64,
    /// When each status check of this record arrived (Unix ms).
    pub checks: Vec<i64>,
}

/// A request the service received.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    /// Path and query.
    pub uri: String,
    pub authorization: Option<String>,
    pub body: Value,
}

#[derive(Default)]
struct Inner {
    records: HashMap<String, Record>,
    calls: Vec<Call>,
    members: Vec<(String, String)>,
    next: u64,
}

struct Shared {
    inner: Mutex<Inner>,
    behaviour: AtomicU8,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    status_checks: AtomicU64,
    keep_calls: bool,
}

pub struct ChangeManagement {
    pub base_url: String,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

/// The bearer token `/oauth/token` issues.
pub const SERVICENOW_TOKEN: &str = "snow-access-token";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl ChangeManagement {
    pub async fn start() -> ChangeManagement {
        Self::start_with(true).await
    }

    /// `keep_calls: false` keeps no call log (benchmarks with many thousands of records).
    pub async fn start_with(keep_calls: bool) -> ChangeManagement {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let shared = Arc::new(Shared {
            inner: Mutex::default(),
            behaviour: AtomicU8::new(Behaviour::Normal as u8),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            status_checks: AtomicU64::new(0),
            keep_calls,
        });
        let app = axum::Router::new()
            .route("/api/approvals", post(custom_create))
            .route("/api/approvals/{id}/status", get(custom_status))
            .route("/api/approvals/{id}/apply", post(custom_apply))
            .route("/api/approvals/{id}/cancel", post(custom_cancel))
            .route("/api/members", get(custom_members))
            .route("/oauth/token", post(token))
            .route(
                "/api/sn_chg_rest/change/standard/{id}",
                post(snow_create).get(snow_get).patch(snow_patch),
            )
            .route("/api/now/table/sys_user", get(snow_users))
            .layer(axum::middleware::from_fn_with_state(shared.clone(), log))
            .with_state(shared.clone());
        let base_url = format!("http://{}", listener.local_addr().expect("local addr"));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        ChangeManagement {
            base_url,
            shared,
            shutdown: Some(tx),
        }
    }

    pub fn set_behaviour(&self, behaviour: Behaviour) {
        self.shared
            .behaviour
            .store(behaviour as u8, Ordering::SeqCst);
    }

    /// The partner's users (email, external id) its member endpoints list.
    pub fn set_members(&self, members: &[(&str, &str)]) {
        self.shared.inner.lock().unwrap().members = members
            .iter()
            .map(|(e, i)| (e.to_string(), i.to_string()))
            .collect();
    }

    /// Sets a record's status, as a reviewer in the external system would.
    pub fn set_status(&self, id: &str, status: &str) {
        if let Some(record) = self.shared.inner.lock().unwrap().records.get_mut(id) {
            record.status = status.to_string();
        }
    }

    /// Sets every record's status (benchmarks).
    pub fn set_all(&self, status: &str) {
        for record in self.shared.inner.lock().unwrap().records.values_mut() {
            record.status = status.to_string();
        }
    }

    pub fn records(&self) -> Vec<Record> {
        let mut records: Vec<Record> = self
            .shared
            .inner
            .lock()
            .unwrap()
            .records
            .values()
            .cloned()
            .collect();
        records.sort_by(|a, b| a.id.cmp(&b.id));
        records
    }

    pub fn record_count(&self) -> usize {
        self.shared.inner.lock().unwrap().records.len()
    }

    /// Records whose status was checked at or after `since_ms` (Unix ms).
    pub fn checked_since(&self, since_ms: i64) -> usize {
        self.shared
            .inner
            .lock()
            .unwrap()
            .records
            .values()
            .filter(|r| r.checks.last().is_some_and(|t| *t >= since_ms))
            .count()
    }

    /// The first and last status check at or after `since_ms` (Unix ms), over all records.
    pub fn check_span_since(&self, since_ms: i64) -> Option<(i64, i64)> {
        let inner = self.shared.inner.lock().unwrap();
        let times = inner
            .records
            .values()
            .flat_map(|r| r.checks.iter().copied())
            .filter(|t| *t >= since_ms);
        times.fold(None, |span, t| match span {
            None => Some((t, t)),
            Some((first, last)) => Some((first.min(t), last.max(t))),
        })
    }

    /// When the newest record was created (Unix ms; 0 without records).
    pub fn last_created_ms(&self) -> i64 {
        self.shared
            .inner
            .lock()
            .unwrap()
            .records
            .values()
            .map(|r| r.created_at_ms)
            .max()
            .unwrap_or(0)
    }

    pub fn record(&self, id: &str) -> Option<Record> {
        self.shared.inner.lock().unwrap().records.get(id).cloned()
    }

    pub fn calls(&self) -> Vec<Call> {
        self.shared.inner.lock().unwrap().calls.clone()
    }

    /// Status checks answered (or attempted) so far.
    pub fn status_checks(&self) -> u64 {
        self.shared.status_checks.load(Ordering::SeqCst)
    }

    /// Starts counting the most requests in flight at once afresh.
    pub fn reset_max_in_flight(&self) {
        self.shared.max_in_flight.store(
            self.shared.in_flight.load(Ordering::SeqCst),
            Ordering::SeqCst,
        );
    }

    /// The most requests that were ever in flight at once.
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    /// Polls `check` every 50 ms until it holds or `within` passes; returns whether it held.
    pub async fn wait_until(&self, within: Duration, check: impl Fn(&Self) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if check(self) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for ChangeManagement {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Records every call and counts concurrency; status checks are counted too.
async fn log(
    State(shared): State<Arc<Shared>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let response = next.run(request).await;
    shared.in_flight.fetch_sub(1, Ordering::SeqCst);
    response
}

fn remember(shared: &Shared, method: &Method, uri: &Uri, headers: &HeaderMap, body: &Bytes) {
    if !shared.keep_calls {
        return;
    }
    let call = Call {
        method: method.to_string(),
        uri: uri.to_string(),
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(String::from),
        body: serde_json::from_slice(body).unwrap_or_else(|_| {
            if body.is_empty() {
                Value::Null
            } else {
                Value::String(String::from_utf8_lossy(body).into_owned())
            }
        }),
    };
    shared.inner.lock().unwrap().calls.push(call);
}

/// Misbehaves as told; `None` means answer normally.
async fn misbehave(shared: &Shared) -> Option<Response> {
    match shared.behaviour.load(Ordering::SeqCst) {
        1 => Some((StatusCode::INTERNAL_SERVER_ERROR, "database on fire").into_response()),
        2 => Some((StatusCode::OK, "<html>definitely not json").into_response()),
        3 => {
            tokio::time::sleep(Duration::from_secs(120)).await;
            Some(StatusCode::GATEWAY_TIMEOUT.into_response())
        }
        4 => Some(Json(json!({"unexpected": {"shape": true}})).into_response()),
        5 => {
            tokio::time::sleep(Duration::from_millis(300)).await;
            None
        }
        _ => None,
    }
}

fn custom_display(status: &str) -> &'static str {
    match status {
        "approved" => "Approved by change board",
        "declined" => "Declined by change board",
        _ => "Pending review",
    }
}

fn custom_answer(record: &Record) -> Response {
    Json(json!({
        "_id": record.id,
        "status": {"value": record.status, "display": custom_display(&record.status)},
    }))
    .into_response()
}

fn create(shared: &Shared, api: &'static str, status: &str, body: &Bytes) -> Record {
    let mut inner = shared.inner.lock().unwrap();
    inner.next += 1;
    let record = Record {
        id: format!(
            "{}{}",
            if api == "custom" { "CR-" } else { "snow" },
            inner.next
        ),
        api,
        status: status.to_string(),
        created_with: serde_json::from_slice(body).unwrap_or(Value::Null),
        applied: false,
        cancelled: false,
        created_at_ms: now_ms(),
        checks: Vec::new(),
    };
    inner.records.insert(record.id.clone(), record.clone());
    record
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

async fn custom_create(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    remember(&shared, &method, &uri, &headers, &body);
    if let Some(r) = misbehave(&shared).await {
        return r;
    }
    if bearer(&headers).is_none_or(str::is_empty) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    custom_answer(&create(&shared, "custom", "pending", &body))
}

async fn custom_status(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    shared.status_checks.fetch_add(1, Ordering::SeqCst);
    remember(&shared, &method, &uri, &headers, &Bytes::new());
    if let Some(r) = misbehave(&shared).await {
        return r;
    }
    let mut inner = shared.inner.lock().unwrap();
    match inner.records.get_mut(&id) {
        Some(record) => {
            record.checks.push(now_ms());
            custom_answer(record)
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn custom_transition(
    shared: &Shared,
    id: &str,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    apply: bool,
) -> Response {
    remember(shared, &method, &uri, &headers, &Bytes::new());
    if let Some(r) = misbehave(shared).await {
        return r;
    }
    let mut inner = shared.inner.lock().unwrap();
    match inner.records.get_mut(id) {
        Some(record) => {
            if apply {
                record.applied = true;
            } else {
                record.cancelled = true;
            }
            custom_answer(record)
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn custom_apply(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    custom_transition(&shared, &id, method, uri, headers, true).await
}

async fn custom_cancel(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    custom_transition(&shared, &id, method, uri, headers, false).await
}

async fn custom_members(State(shared): State<Arc<Shared>>) -> Response {
    let members: Vec<Value> = shared
        .inner
        .lock()
        .unwrap()
        .members
        .iter()
        .map(|(email, id)| json!({"name": id, "email": email}))
        .collect();
    Json(json!({"members": members})).into_response()
}

async fn token() -> Response {
    Json(json!({"access_token": SERVICENOW_TOKEN, "token_type": "Bearer", "expires_in": 3600}))
        .into_response()
}

fn snow_display(state: &str) -> &'static str {
    match state {
        "-5" => "New",
        "-1" => "Implement",
        "0" => "Review",
        "3" => "Closed",
        "4" => "Canceled",
        _ => "Assess",
    }
}

fn snow_answer(record: &Record) -> Response {
    Json(json!({"result": {
        "sys_id": {"value": record.id, "display_value": record.id},
        "state": {"value": record.status, "display_value": snow_display(&record.status)},
    }}))
    .into_response()
}

async fn snow_create(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    remember(&shared, &method, &uri, &headers, &body);
    if let Some(r) = misbehave(&shared).await {
        return r;
    }
    if bearer(&headers) != Some(SERVICENOW_TOKEN) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    snow_answer(&create(&shared, "servicenow", "-5", &body))
}

async fn snow_get(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    shared.status_checks.fetch_add(1, Ordering::SeqCst);
    remember(&shared, &method, &uri, &headers, &Bytes::new());
    if let Some(r) = misbehave(&shared).await {
        return r;
    }
    if bearer(&headers) != Some(SERVICENOW_TOKEN) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let mut inner = shared.inner.lock().unwrap();
    match inner.records.get_mut(&id) {
        Some(record) => {
            record.checks.push(now_ms());
            snow_answer(record)
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn snow_patch(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    remember(&shared, &method, &uri, &headers, &Bytes::new());
    if let Some(r) = misbehave(&shared).await {
        return r;
    }
    if bearer(&headers) != Some(SERVICENOW_TOKEN) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let mut inner = shared.inner.lock().unwrap();
    match inner.records.get_mut(&id) {
        Some(record) => {
            match query.as_deref() {
                Some("state=Review") => {
                    record.applied = true;
                    record.status = "0".into();
                }
                Some("state=Canceled") => {
                    record.cancelled = true;
                    record.status = "4".into();
                }
                _ => return StatusCode::BAD_REQUEST.into_response(),
            }
            snow_answer(record)
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn snow_users(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if bearer(&headers) != Some(SERVICENOW_TOKEN) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let users: Vec<Value> = shared
        .inner
        .lock()
        .unwrap()
        .members
        .iter()
        .map(|(email, id)| json!({"email": email, "user_name": id}))
        .collect();
    Json(json!({"result": users})).into_response()
}
