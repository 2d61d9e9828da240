//! A real HTTP receiver on a loopback port for webhook and integration deliveries: records
//! every request, answers with a status the test sets, and can hold responses until released
//! (a slow partner) or refuse to answer at all (a partner that is down).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use tokio::sync::{Notify, watch};

#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// Lower-cased header names.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

struct Shared {
    received: Mutex<Vec<Received>>,
    status: AtomicU16,
    /// While true, requests wait (a slow partner) until it turns false.
    hold: watch::Sender<bool>,
    arrived: Notify,
}

pub struct Receiver {
    pub base_url: String,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

async fn record(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let mut hold = shared.hold.subscribe();
    while *hold.borrow_and_update() {
        if hold.changed().await.is_err() {
            break;
        }
    }
    let headers = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let status = StatusCode::from_u16(shared.status.load(Ordering::SeqCst))
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status.is_success() {
        shared.received.lock().unwrap().push(Received {
            method: method.to_string(),
            uri: uri.to_string(),
            headers,
            body: body.to_vec(),
        });
    }
    shared.arrived.notify_waiters();
    status
}

impl Receiver {
    /// Starts a receiver on `127.0.0.1:<random port>` answering 200.
    pub async fn start() -> Receiver {
        Self::start_on(0).await
    }

    /// Starts on a given port (0: any), e.g. to come back on the same port after `stop`.
    pub async fn start_on(port: u16) -> Receiver {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind receiver");
        let addr = listener.local_addr().expect("receiver address");
        let shared = Arc::new(Shared {
            received: Mutex::new(Vec::new()),
            status: AtomicU16::new(200),
            hold: watch::channel(false).0,
            arrived: Notify::new(),
        });
        let app = axum::Router::new()
            .fallback(record)
            .with_state(shared.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Receiver {
            base_url: format!("http://{addr}"),
            shared,
            shutdown: Some(tx),
        }
    }

    pub fn port(&self) -> u16 {
        self.base_url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0)
    }

    /// Stops listening (later requests are refused: the partner is down).
    pub fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Status for later requests; non-2xx requests are not recorded as received.
    pub fn respond_with(&self, status: u16) {
        self.shared.status.store(status, Ordering::SeqCst);
    }

    /// Holds every request (and those in flight) until `release`.
    pub fn hold(&self) {
        self.shared.hold.send_replace(true);
    }

    pub fn release(&self) {
        self.shared.hold.send_replace(false);
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// Waits until at least `count` requests were received (and answered 2xx), or panics
    /// after `timeout` with what did arrive.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.shared.arrived.notified();
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                let received = self.received();
                if received.len() >= count {
                    return received;
                }
                panic!(
                    "expected {count} deliveries within {timeout:?}, received {}: {:#?}",
                    received.len(),
                    received
                        .iter()
                        .map(|r| format!("{} {}", r.method, r.uri))
                        .collect::<Vec<_>>()
                );
            }
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
        self.release();
    }
}
