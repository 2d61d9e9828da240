//! The receiving end of the webhooks: a minimal HTTP/1.1 server on 127.0.0.1 that answers
//! every `POST /hook/{n}` with 200 at once and keeps what arrived, with its receive time.
//!
//! It runs on its own runtime in its own thread, so the load generator's tasks never delay a
//! receive timestamp. The handler does as little as possible (two clocks, three header
//! lookups, one push under an uncontended lock); bodies are parsed only after a scenario.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use tokio::sync::oneshot;

/// The header carrying the delivery id (Flagstaff's at-least-once deduplication key).
pub const DELIVERY_HEADER: &str = "x-flagstaff-delivery";
/// The header carrying the hex HMAC-SHA256 of the body, on signed webhooks.
pub const SIGNATURE_HEADER: &str = "x-ld-signature";

/// One request as it arrived.
pub struct Received {
    /// Wall-clock receive time, µs since the Unix epoch (comparable with the audit entry's
    /// `date`, which the server takes from the same clock).
    pub unix_us: u64,
    /// Monotonic receive time, for rates.
    pub at: Instant,
    /// `n` of `/hook/{n}`: which webhook this was sent for.
    pub hook: u32,
    pub delivery_id: Option<String>,
    pub signature: Option<String>,
    pub body: Bytes,
}

#[derive(Default)]
struct Inner {
    records: Vec<Received>,
    /// Distinct delivery ids since the last [`Sink::take`].
    ids: HashSet<String>,
    last: Option<Instant>,
}

type Shared = Arc<Mutex<Inner>>;

fn lock(shared: &Shared) -> MutexGuard<'_, Inner> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

/// A running sink. Dropping it stops its thread.
pub struct Sink {
    pub addr: SocketAddr,
    shared: Shared,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Sink {
    /// Binds a free port on 127.0.0.1 and serves on `threads` runtime threads (1: a
    /// current-thread runtime).
    pub fn start(threads: usize) -> Result<Sink> {
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .context("the sink cannot bind a loopback port")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Shared::default();
        let (stop, stopped) = oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<()>>();
        let state = shared.clone();
        let thread = std::thread::Builder::new()
            .name("sink".into())
            .spawn(move || {
                let runtime = if threads <= 1 {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                } else {
                    tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(threads)
                        .thread_name("sink-worker")
                        .enable_all()
                        .build()
                };
                let runtime = match runtime {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.into()));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.into()));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    let app = Router::new()
                        .route("/hook/{hook}", post(receive))
                        .with_state(state);
                    tokio::select! {
                        served = axum::serve(listener, app) => {
                            if let Err(e) = served {
                                eprintln!("warning: the sink stopped: {e}");
                            }
                        }
                        _ = stopped => {}
                    }
                });
                // Dropping the runtime here ends the connection tasks.
            })
            .context("cannot start the sink thread")?;
        ready_rx
            .recv()
            .context("the sink thread ended during start-up")??;
        Ok(Sink {
            addr,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The URL webhook `hook` posts to.
    pub fn url(&self, hook: u32) -> String {
        format!("http://{}/hook/{hook}", self.addr)
    }

    /// Distinct delivery ids received since the last [`Sink::take`].
    pub fn distinct(&self) -> usize {
        lock(&self.shared).ids.len()
    }

    /// Time since the last request arrived (`None`: nothing arrived yet).
    pub fn idle_for(&self) -> Option<Duration> {
        lock(&self.shared).last.map(|t| t.elapsed())
    }

    /// Everything received since the last call, in arrival order; starts counting afresh.
    pub fn take(&self) -> Vec<Received> {
        let mut inner = lock(&self.shared);
        inner.ids.clear();
        std::mem::take(&mut inner.records)
    }

    /// Waits until nothing has arrived for `quiet` (or `limit` passed).
    pub async fn wait_quiet(&self, quiet: Duration, limit: Duration) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.idle_for().is_none_or(|idle| idle >= quiet) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn receive(
    State(shared): State<Shared>,
    Path(hook): Path<u32>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let at = Instant::now();
    let unix_us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64);
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let delivery_id = header(DELIVERY_HEADER);
    let signature = header(SIGNATURE_HEADER);
    let mut inner = lock(&shared);
    if let Some(id) = &delivery_id {
        inner.ids.insert(id.clone());
    }
    inner.last = Some(at);
    inner.records.push(Received {
        unix_us,
        at,
        hook,
        delivery_id,
        signature,
        body,
    });
    StatusCode::OK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_what_arrives() {
        let sink = Sink::start(1).unwrap();
        let http = reqwest::Client::new();
        for (i, id) in ["a", "b", "a"].into_iter().enumerate() {
            let response = http
                .post(sink.url(i as u32))
                .header("X-Flagstaff-Delivery", id)
                .header("X-LD-Signature", "00ff")
                .body(format!("{{\"n\":{i}}}"))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), reqwest::StatusCode::OK);
        }
        let missing = http
            .post(format!("http://{}/other", sink.addr))
            .send()
            .await;
        assert_eq!(missing.unwrap().status(), reqwest::StatusCode::NOT_FOUND);
        assert_eq!(sink.distinct(), 2);
        let records = sink.take();
        assert_eq!(records.len(), 3);
        assert_eq!(records[1].hook, 1);
        assert_eq!(records[1].delivery_id.as_deref(), Some("b"));
        assert_eq!(records[1].signature.as_deref(), Some("00ff"));
        assert_eq!(&records[2].body[..], b"{\"n\":2}");
        assert!(records[0].at <= records[2].at);
        assert_eq!(sink.distinct(), 0);
        assert!(sink.take().is_empty());
    }
}
