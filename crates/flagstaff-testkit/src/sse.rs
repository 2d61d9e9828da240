//! A minimal reader of server-sent events (the SDK streams), for tests that watch a change
//! arrive.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::app::TestApp;

/// A minimal SSE reader over a streaming response.
pub struct SseReader {
    pub response: reqwest::Response,
    /// Received text not yet returned as an event.
    pub buffer: String,
    /// Comment lines (heartbeats) seen so far.
    pub comments: usize,
}

impl SseReader {
    pub async fn open(app: &TestApp, path: &str, auth: &str) -> SseReader {
        let response = reqwest::Client::new()
            .get(format!("{}{path}", app.base_url))
            .header("Authorization", auth)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        SseReader {
            response,
            buffer: String::new(),
            comments: 0,
        }
    }

    /// The next named event (name, data), skipping comments; panics after `within`.
    pub async fn next(&mut self, within: Duration) -> (String, Value) {
        let deadline = Instant::now() + within;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut name = String::from("message");
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(n) = line.strip_prefix("event:") {
                        name = n.trim().to_string();
                    } else if let Some(d) = line.strip_prefix("data:") {
                        data.push_str(d.strip_prefix(' ').unwrap_or(d));
                    } else if line.starts_with(':') {
                        self.comments += 1;
                    }
                }
                if data.is_empty() && name == "message" {
                    continue;
                }
                let value = serde_json::from_str(&data).unwrap_or(Value::String(data));
                return (name, value);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let chunk = tokio::time::timeout(left, self.response.chunk())
                .await
                .expect("an SSE event in time")
                .unwrap()
                .expect("stream still open");
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}
