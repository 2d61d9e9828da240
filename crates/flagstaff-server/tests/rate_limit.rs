//! Per-token rate limiting with LaunchDarkly's headers.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use flagstaff_testkit::app::TestApp;

/// Windows are fixed 10-second spans of the wall clock. Requests that straddle a window's end
/// start counting again, so the test begins with at least 3 s of its window left.
async fn well_inside_a_window() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let into_window = now % 10_000;
    if into_window > 7_000 {
        tokio::time::sleep(Duration::from_millis(10_000 - into_window + 50)).await;
    }
}

#[tokio::test]
async fn tokens_are_limited_per_window_with_ld_headers() {
    let app = TestApp::sqlite_with(|state| state.with_rate_limit(3)).await;
    well_inside_a_window().await;
    for expected_remaining in ["2", "1", "0"] {
        let ok = app.get("/api/v2/projects").await;
        assert_eq!(ok.status, 200);
        assert_eq!(ok.headers["X-Ratelimit-Auth-Token-Limit"], "3");
        assert_eq!(
            ok.headers["X-Ratelimit-Auth-Token-Remaining"],
            expected_remaining
        );
        assert!(
            ok.headers["X-Ratelimit-Auth-Token-Reset"]
                .to_str()
                .unwrap()
                .parse::<i64>()
                .unwrap()
                > 0
        );
    }
    let limited = app.get("/api/v2/projects").await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.code(), "rate_limited");
    let retry: i64 = limited.headers["Retry-After"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=10).contains(&retry), "Retry-After {retry}");
    // Unauthenticated requests are not counted against (or reported for) the token.
    let anonymous = app
        .send(
            "GET",
            "/api/v2/projects",
            app.raw(reqwest::Method::GET, "/api/v2/projects"),
        )
        .await;
    assert_eq!(anonymous.status, 401);
    assert!(
        anonymous
            .headers
            .get("X-Ratelimit-Auth-Token-Limit")
            .is_none()
    );
}
