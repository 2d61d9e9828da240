//! No library code: this crate only holds `tests/rust_sdk.rs`, which drives LaunchDarkly's
//! official Rust server-side SDK (`launchdarkly-server-sdk` from crates.io, unmodified) against
//! a running Flagstaff.
