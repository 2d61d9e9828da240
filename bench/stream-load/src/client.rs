//! A deliberately small SSE client: one `GET /all` over a raw loopback TCP connection
//! (HTTP/1.1), decoding the chunked body and splitting it into events by hand. Tens of
//! thousands of these run on one runtime thread, so each keeps only a read buffer and its
//! arrival times.
//!
//! The bench's flag carries a change counter in its first variation's value (`"chg-<n>"`);
//! an event (the first `put`, each `patch`, or a `put` resent after a lag) that shows counter
//! `n` marks changes up to `n` as received at that instant.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What the flag's counter looks like inside the JSON of an event.
pub const MARKER: &[u8] = b"\"chg-";

/// Progress counters shared by all streams and the driver.
pub struct Shared {
    pub epoch: Instant,
    /// Streams that have received their first `put`.
    pub ready: AtomicUsize,
    /// `seen[n]`: streams that have received change `n` (index 0: the initial state).
    pub seen: Vec<AtomicUsize>,
    /// Streams that ended or failed before being told to stop.
    pub failed: AtomicUsize,
    /// `put` events after the first (a resync instead of patches, e.g. after a lag).
    pub resyncs: AtomicUsize,
    /// Events that skipped a counter value (a change arrived only folded into a later one).
    pub skipped: AtomicUsize,
}

impl Shared {
    pub fn new(changes: usize) -> Shared {
        Shared {
            epoch: Instant::now(),
            ready: AtomicUsize::new(0),
            seen: (0..=changes).map(|_| AtomicUsize::new(0)).collect(),
            failed: AtomicUsize::new(0),
            resyncs: AtomicUsize::new(0),
            skipped: AtomicUsize::new(0),
        }
    }

    fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }
}

/// The outcome of one stream: arrival time (µs since `Shared::epoch`) of each change, 0 when
/// never received; and the error that ended it early, if any.
pub struct StreamResult {
    pub arrivals: Vec<u64>,
    pub error: Option<String>,
}

/// Opens one stream and reads it until the task is aborted or the connection ends.
pub async fn run_stream(
    addr: SocketAddr,
    sdk_key: Arc<str>,
    shared: Arc<Shared>,
    result: Arc<std::sync::Mutex<StreamResult>>,
) {
    let outcome = read_stream(addr, &sdk_key, &shared, &result).await;
    let error = match outcome {
        Ok(()) => "the server ended the stream".to_string(),
        Err(e) => format!("{e:#}"),
    };
    shared.failed.fetch_add(1, Ordering::Relaxed);
    if let Ok(mut r) = result.lock() {
        r.error = Some(error);
    }
}

async fn read_stream(
    addr: SocketAddr,
    sdk_key: &str,
    shared: &Shared,
    result: &std::sync::Mutex<StreamResult>,
) -> Result<()> {
    let mut tcp = TcpStream::connect(addr).await.context("connect")?;
    tcp.set_nodelay(true)?;
    let request = format!(
        "GET /all HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {sdk_key}\r\nAccept: text/event-stream\r\nUser-Agent: flagstaff-stream-load\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.context("send")?;

    let mut raw: Vec<u8> = Vec::with_capacity(2048);
    let mut buf = [0u8; 4096];
    // Response head.
    let chunked = loop {
        let n = tcp.read(&mut buf).await.context("read head")?;
        if n == 0 {
            bail!("connection closed before the response head");
        }
        raw.extend_from_slice(&buf[..n]);
        if let Some(end) = find(&raw, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let status = head.lines().next().unwrap_or_default().to_string();
            if !status.starts_with("http/1.1 200") {
                bail!("unexpected response: {status}");
            }
            if !head.contains("content-type: text/event-stream") {
                bail!("not an event stream: {head}");
            }
            raw.drain(..end + 4);
            break head.contains("transfer-encoding: chunked");
        }
        if raw.len() > 64 * 1024 {
            bail!("response head too large");
        }
    };

    let mut body = Dechunk::new(chunked);
    let mut events: Vec<u8> = Vec::with_capacity(2048);
    let mut last = 0usize; // highest counter seen
    let mut puts = 0usize;
    let mut ready = false;
    loop {
        body.feed(&mut raw, &mut events)?;
        while let Some(end) = find(&events, b"\n\n") {
            let block = &events[..end];
            let is_put =
                find(block, b"event: put").is_some() || find(block, b"event:put").is_some();
            if is_put {
                puts += 1;
                if puts > 1 {
                    shared.resyncs.fetch_add(1, Ordering::Relaxed);
                }
            }
            if let Some(n) = counter(block)
                && (n > last || !ready)
            {
                let now = shared.now_us();
                let first_new = if ready { last + 1 } else { 0 };
                if ready && n > last + 1 {
                    shared.skipped.fetch_add(1, Ordering::Relaxed);
                }
                let mut r = result.lock().expect("result lock");
                for k in first_new..=n.min(r.arrivals.len() - 1) {
                    r.arrivals[k] = now;
                    shared.seen[k].fetch_add(1, Ordering::Relaxed);
                }
                drop(r);
                last = n;
            }
            if is_put && !ready {
                ready = true;
                shared.ready.fetch_add(1, Ordering::Relaxed);
            }
            events.drain(..end + 2);
        }
        if body.done {
            return Ok(());
        }
        let n = tcp.read(&mut buf).await.context("read")?;
        if n == 0 {
            return Ok(());
        }
        raw.extend_from_slice(&buf[..n]);
    }
}

/// The change counter in an event: the number after the first `"chg-`.
fn counter(block: &[u8]) -> Option<usize> {
    let at = find(block, MARKER)? + MARKER.len();
    let digits: &[u8] = &block[at..];
    let len = digits.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&digits[..len]).ok()?.parse().ok()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Incremental decoder of an HTTP/1.1 chunked body (or a pass-through for a plain one).
struct Dechunk {
    chunked: bool,
    /// Bytes left in the current chunk; `None` while a size line is expected.
    remaining: Option<usize>,
    /// The CRLF after a chunk's data is still to be skipped.
    trailer: bool,
    done: bool,
}

impl Dechunk {
    fn new(chunked: bool) -> Dechunk {
        Dechunk {
            chunked,
            remaining: None,
            trailer: false,
            done: false,
        }
    }

    /// Moves decoded body bytes from `raw` to `out`, leaving incomplete framing in `raw`.
    fn feed(&mut self, raw: &mut Vec<u8>, out: &mut Vec<u8>) -> Result<()> {
        if !self.chunked {
            out.append(raw);
            return Ok(());
        }
        let mut pos = 0;
        loop {
            if self.done {
                break;
            }
            if self.trailer {
                if raw.len() - pos < 2 {
                    break;
                }
                if &raw[pos..pos + 2] != b"\r\n" {
                    bail!("bad chunk framing");
                }
                pos += 2;
                self.trailer = false;
            }
            match self.remaining {
                None => {
                    let Some(eol) = find(&raw[pos..], b"\r\n") else {
                        break;
                    };
                    let line = std::str::from_utf8(&raw[pos..pos + eol])?;
                    let size = line.split(';').next().unwrap_or_default().trim();
                    let size = usize::from_str_radix(size, 16)
                        .with_context(|| format!("bad chunk size {line:?}"))?;
                    pos += eol + 2;
                    if size == 0 {
                        self.done = true;
                    } else {
                        self.remaining = Some(size);
                    }
                }
                Some(left) => {
                    let take = left.min(raw.len() - pos);
                    if take == 0 {
                        break;
                    }
                    out.extend_from_slice(&raw[pos..pos + take]);
                    pos += take;
                    if take == left {
                        self.remaining = None;
                        self.trailer = true;
                    } else {
                        self.remaining = Some(left - take);
                    }
                }
            }
        }
        raw.drain(..pos);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{Dechunk, counter};

    #[test]
    fn dechunks_across_reads() {
        let wire = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n";
        for split in 0..wire.len() {
            let mut d = Dechunk::new(true);
            let mut raw = wire[..split].to_vec();
            let mut out = Vec::new();
            d.feed(&mut raw, &mut out).unwrap();
            raw.extend_from_slice(&wire[split..]);
            d.feed(&mut raw, &mut out).unwrap();
            assert_eq!(out, b"hello, world", "split at {split}");
            assert!(d.done);
        }
    }

    #[test]
    fn reads_the_counter() {
        let block = br#"event:patch
data:{"path":"/flags/f","data":{"key":"f","variations":["chg-42","other"],"version":7}}"#;
        assert_eq!(counter(block), Some(42));
        assert_eq!(counter(b"event:put\ndata:{}"), None);
    }
}
