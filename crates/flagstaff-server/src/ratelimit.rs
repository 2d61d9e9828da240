//! Per-token rate limiting in LaunchDarkly's style: fixed 10-second windows, with
//! `X-Ratelimit-Auth-Token-{Limit,Remaining,Reset}` on every authenticated response and
//! `Retry-After` plus `{"code":"rate_limited"}` on a 429.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

/// LaunchDarkly counts requests in 10-second windows.
pub const WINDOW_MS: i64 = 10_000;

/// Requests one token may make per window unless configured otherwise.
pub const DEFAULT_LIMIT_PER_WINDOW: u32 = 60_000;

/// The counters of one window per token. A limit of 0 disables limiting.
pub struct RateLimiter {
    limit: u32,
    windows: Mutex<HashMap<String, (i64, u32)>>,
}

/// What one request's check found, for the response headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateState {
    pub limit: u32,
    pub remaining: u32,
    /// When the window ends (Unix ms).
    pub reset: i64,
    pub allowed: bool,
}

impl RateLimiter {
    pub fn new(limit: u32) -> Self {
        Self {
            limit,
            windows: Mutex::new(HashMap::new()),
        }
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Counts one request by `token_id` at `now` (Unix ms); `None` when limiting is off.
    pub fn check(&self, token_id: &str, now: i64) -> Option<RateState> {
        if self.limit == 0 {
            return None;
        }
        let window_start = now - now.rem_euclid(WINDOW_MS);
        let mut windows = self.windows.lock().ok()?;
        if windows.len() > 100_000 {
            windows.retain(|_, (start, _)| *start == window_start);
        }
        let entry = windows
            .entry(token_id.to_string())
            .or_insert((window_start, 0));
        if entry.0 != window_start {
            *entry = (window_start, 0);
        }
        let allowed = entry.1 < self.limit;
        if allowed {
            entry.1 += 1;
        }
        Some(RateState {
            limit: self.limit,
            remaining: self.limit - entry.1,
            reset: window_start + WINDOW_MS,
            allowed,
        })
    }
}

/// Where the authentication extractor leaves the rate state for [`rate_limit_headers`].
#[derive(Clone, Default)]
pub struct RateSlot(pub Arc<Mutex<Option<RateState>>>);

/// Middleware: gives each request a [`RateSlot`] and turns what the extractor put there into
/// response headers.
pub async fn rate_limit_headers(mut request: Request, next: Next) -> Response {
    let slot = RateSlot::default();
    request.extensions_mut().insert(slot.clone());
    let mut response = next.run(request).await;
    let state = slot.0.lock().ok().and_then(|s| *s);
    if let Some(state) = state {
        let headers = response.headers_mut();
        let mut set = |name: &'static str, value: String| {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(name, v);
            }
        };
        set("X-Ratelimit-Auth-Token-Limit", state.limit.to_string());
        set(
            "X-Ratelimit-Auth-Token-Remaining",
            state.remaining.to_string(),
        );
        set("X-Ratelimit-Auth-Token-Reset", state.reset.to_string());
        if !state.allowed {
            let now = crate::services::wall_millis();
            let seconds = ((state.reset - now).max(0) + 999) / 1000;
            set("Retry-After", seconds.max(1).to_string());
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_reset_and_limits_hold() {
        let limiter = RateLimiter::new(2);
        let a = limiter.check("t", 10_001).unwrap();
        assert!(a.allowed && a.remaining == 1 && a.reset == 20_000);
        assert!(limiter.check("t", 10_002).unwrap().allowed);
        let third = limiter.check("t", 19_999).unwrap();
        assert!(!third.allowed && third.remaining == 0);
        assert!(
            limiter.check("other", 19_999).unwrap().allowed,
            "limits are per token"
        );
        assert!(
            limiter.check("t", 20_000).unwrap().allowed,
            "a new window starts afresh"
        );
        assert!(RateLimiter::new(0).check("t", 1).is_none());
    }
}
