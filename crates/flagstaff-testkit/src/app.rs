//! `TestApp`: the real server on a random loopback port, over a fresh SQLite file or a fresh
//! Postgres schema, with an owner token. Every response it receives is checked against
//! LaunchDarkly's OpenAPI description.

use std::sync::Arc;

use flagstaff_store::{PgStore, SqliteStore, Store};
use reqwest::Method;
use serde_json::Value;
use tokio::sync::oneshot;

use crate::contract::{self, ContractOutcome};

/// Environment variable naming the Postgres database tests may use.
pub const TEST_DATABASE_URL_ENV: &str = "FLAGSTAFF_TEST_DATABASE_URL";

/// The owner token every TestApp bootstraps with.
pub const TEST_TOKEN: &str = "api-00000000-0000-4000-8000-00000000f1a9";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub backend: Backend,
    /// `http://127.0.0.1:PORT`
    pub base_url: String,
    pub token: String,
    pub store: Arc<dyn Store>,
    client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    _dir: Option<tempfile::TempDir>,
    pg_schema: Option<(String, String)>,
}

/// A response: status and JSON body (`Value::Null` when empty).
#[derive(Debug, Clone)]
pub struct TestResponse {
    pub status: u16,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl TestResponse {
    /// Panics with the body unless the status is `expected`.
    #[track_caller]
    pub fn expect(self, expected: u16) -> Value {
        assert_eq!(
            self.status, expected,
            "unexpected status; body: {}",
            self.body
        );
        self.body
    }

    /// The LaunchDarkly error code of an error response.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    pub fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or("")
    }
}

impl TestApp {
    pub async fn sqlite() -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("flagstaff.db").display());
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::connect(&url).await.expect("open sqlite"));
        Self::start(Backend::Sqlite, store, Some(dir), None).await
    }

    /// A TestApp on its own schema of the Postgres database named by
    /// `FLAGSTAFF_TEST_DATABASE_URL`, or `None` when that is not set.
    pub async fn postgres() -> Option<TestApp> {
        let url = std::env::var(TEST_DATABASE_URL_ENV)
            .ok()
            .filter(|u| !u.is_empty())?;
        let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
        let store = PgStore::connect(&url, Some(&schema))
            .await
            .unwrap_or_else(|e| panic!("{TEST_DATABASE_URL_ENV}={url} is set but unusable: {e}"));
        Some(
            Self::start(
                Backend::Postgres,
                Arc::new(store),
                None,
                Some((url, schema)),
            )
            .await,
        )
    }

    /// A TestApp on `backend`; `None` for Postgres when no test database is configured.
    pub async fn on(backend: Backend) -> Option<TestApp> {
        match backend {
            Backend::Sqlite => Some(Self::sqlite().await),
            Backend::Postgres => {
                let app = Self::postgres().await;
                if app.is_none() {
                    eprintln!("skipping the Postgres variant: {TEST_DATABASE_URL_ENV} is not set");
                }
                app
            }
        }
    }

    /// A TestApp on `backend` whose state is adjusted by `configure`; `None` for Postgres when
    /// no test database is configured.
    pub async fn on_with(
        backend: Backend,
        configure: impl FnOnce(flagstaff_server::AppState) -> flagstaff_server::AppState,
    ) -> Option<TestApp> {
        match backend {
            Backend::Sqlite => Some(Self::sqlite_with(configure).await),
            Backend::Postgres => {
                let url = std::env::var(TEST_DATABASE_URL_ENV)
                    .ok()
                    .filter(|u| !u.is_empty())?;
                let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
                let store = PgStore::connect(&url, Some(&schema))
                    .await
                    .unwrap_or_else(|e| {
                        panic!("{TEST_DATABASE_URL_ENV}={url} is set but unusable: {e}")
                    });
                Some(
                    Self::start_configured(
                        Backend::Postgres,
                        Arc::new(store),
                        None,
                        Some((url, schema)),
                        configure,
                    )
                    .await,
                )
            }
        }
    }

    /// A SQLite TestApp whose state is adjusted by `configure` (e.g. a low rate limit).
    pub async fn sqlite_with(
        configure: impl FnOnce(flagstaff_server::AppState) -> flagstaff_server::AppState,
    ) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("flagstaff.db").display());
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::connect(&url).await.expect("open sqlite"));
        Self::start_configured(Backend::Sqlite, store, Some(dir), None, configure).await
    }

    /// Another node over this one's database: its own server, state and background workers,
    /// as a second Flagstaff process behind the same load balancer. Postgres: its own
    /// connection pool on the same schema. SQLite (single-node in production): the same
    /// store, which still exercises how nodes coordinate through the database.
    pub async fn another_node(
        &self,
        configure: impl FnOnce(flagstaff_server::AppState) -> flagstaff_server::AppState,
    ) -> TestApp {
        let store: Arc<dyn Store> = match &self.pg_schema {
            Some((url, schema)) => Arc::new(
                PgStore::connect(url, Some(schema))
                    .await
                    .expect("a second pool on the test schema"),
            ),
            None => self.store.clone(),
        };
        // The schema and the SQLite directory stay with the first node.
        Self::start_configured(self.backend, store, None, None, configure).await
    }

    async fn start(
        backend: Backend,
        store: Arc<dyn Store>,
        dir: Option<tempfile::TempDir>,
        pg_schema: Option<(String, String)>,
    ) -> TestApp {
        Self::start_configured(backend, store, dir, pg_schema, |s| s).await
    }

    async fn start_configured(
        backend: Backend,
        store: Arc<dyn Store>,
        dir: Option<tempfile::TempDir>,
        pg_schema: Option<(String, String)>,
        configure: impl FnOnce(flagstaff_server::AppState) -> flagstaff_server::AppState,
    ) -> TestApp {
        let (state, _) = flagstaff_server::prepare(store.clone(), Some(TEST_TOKEN))
            .await
            .expect("bootstrap");
        let state = configure(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel::<()>();
        let app = flagstaff_server::app(state);
        tokio::spawn(async move {
            let _ = flagstaff_server::serve(listener, app, async {
                let _ = rx.await;
            })
            .await;
        });
        TestApp {
            backend,
            base_url: format!("http://{addr}"),
            token: TEST_TOKEN.to_string(),
            store,
            client: reqwest::Client::new(),
            shutdown: Some(tx),
            _dir: dir,
            pg_schema,
        }
    }

    pub async fn get(&self, path: &str) -> TestResponse {
        self.request(Method::GET, path, None, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> TestResponse {
        self.request(Method::POST, path, Some(body.to_string()), None)
            .await
    }

    pub async fn patch(&self, path: &str, body: Value) -> TestResponse {
        self.request(Method::PATCH, path, Some(body.to_string()), None)
            .await
    }

    /// PATCH with `Content-Type: application/json; domain-model=launchdarkly.semanticpatch`.
    pub async fn semantic_patch(&self, path: &str, body: Value) -> TestResponse {
        self.request(
            Method::PATCH,
            path,
            Some(body.to_string()),
            Some("application/json; domain-model=launchdarkly.semanticpatch"),
        )
        .await
    }

    pub async fn delete(&self, path: &str) -> TestResponse {
        self.request(Method::DELETE, path, None, None).await
    }

    /// Sends a raw body (which need not be valid JSON) with the owner token.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
        content_type: Option<&str>,
    ) -> TestResponse {
        let mut req = self
            .client
            .request(method.clone(), format!("{}{path}", self.base_url))
            .header("Authorization", &self.token);
        if let Some(body) = body {
            req = req
                .header("Content-Type", content_type.unwrap_or("application/json"))
                .body(body);
        }
        self.send(method.as_str(), path, req).await
    }

    /// Sends a request built by the caller (for other headers or no token).
    pub fn raw(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base_url))
    }

    /// Sends `req` and checks the response against the contract.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        req: reqwest::RequestBuilder,
    ) -> TestResponse {
        let response = req.send().await.expect("request reaches the server");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("response body");
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                panic!(
                    "{method} {path} answered {status} with non-JSON ({e}): {}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        check_response(method, path, status, &body);
        TestResponse {
            status,
            body,
            headers,
        }
    }

    /// The number of audit entries (up to 10,000): a cheap "was anything written" probe.
    pub async fn audit_count(&self) -> usize {
        self.store
            .audit_list(&flagstaff_store::AuditQuery {
                limit: 10_000,
                ..Default::default()
            })
            .await
            .expect("read audit log")
            .len()
    }

    /// The number of outbox rows (up to 100,000): every committed change appends at least one.
    pub async fn outbox_count(&self) -> usize {
        self.store
            .outbox_after(0, 100_000)
            .await
            .expect("read outbox")
            .len()
    }
}

/// Every response must match LaunchDarkly's OpenAPI schema for its operation and status.
/// Errors must in any case have LaunchDarkly's `{code, message}` shape, including statuses the
/// description does not list for that operation.
fn check_response(method: &str, path: &str, status: u16, body: &Value) {
    let outcome = contract::check(
        method,
        path,
        status,
        if body.is_null() { None } else { Some(body) },
    );
    contract::record(&outcome);
    match &outcome {
        ContractOutcome::Invalid {
            operation_id,
            errors,
        } => {
            panic!(
                "{method} {path} -> {status} does not match LaunchDarkly's schema for {operation_id}:\n  {}\nbody: {body}",
                errors.join("\n  ")
            )
        }
        ContractOutcome::UndocumentedStatus { operation_id } if status < 400 => {
            panic!(
                "{method} {path} -> {status}: LaunchDarkly's {operation_id} never answers {status}; body: {body}"
            )
        }
        _ => {}
    }
    if status >= 400 {
        assert!(
            body["code"].is_string() && body["message"].is_string(),
            "{method} {path} -> {status}: error body lacks code/message: {body}"
        );
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some((url, schema)) = self.pg_schema.take() {
            // Drop is synchronous; clean the schema up on a thread with its own runtime.
            let _ = std::thread::spawn(move || {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    let _ = rt.block_on(PgStore::drop_schema(&url, &schema));
                }
            })
            .join();
        }
    }
}

/// Declares a test that runs once on SQLite and once on Postgres:
///
/// ```ignore
/// backend_test!(creates_a_flag, |app| async move { app.post(...).await.expect(201); });
/// ```
#[macro_export]
macro_rules! backend_test {
    ($name:ident, |$app:ident| $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let $app = $crate::app::TestApp::on($crate::app::Backend::Sqlite)
                    .await
                    .expect("sqlite");
                $body.await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some($app) = $crate::app::TestApp::on($crate::app::Backend::Postgres).await {
                    $body.await
                }
            }
        }
    };
}
