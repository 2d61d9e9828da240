//! LaunchDarkly-shaped domain types and the pure logic that changes them.
//!
//! Nothing here touches the network, the clock or a database: callers pass `now` in
//! (Unix milliseconds) and receive new values or a [`ModelError`] that says what to fix.

pub mod account;
pub mod approval;
pub mod audit;
pub mod environment;
pub mod error;
pub mod flag;
pub mod flag_change;
pub mod keys;
pub mod oauth;
pub mod patch;
pub mod project;
pub mod segment;
pub mod semantic;

pub use error::ModelError;

/// Unix time in milliseconds, the unit LaunchDarkly uses for every timestamp.
pub type UnixMillis = i64;

/// A fresh random identifier in the 24-hex-digit form LaunchDarkly uses for `_id`s.
pub fn new_object_id() -> String {
    let uuid = uuid::Uuid::new_v4().simple().to_string();
    uuid[..24].to_string()
}

/// A fresh UUID string, the form LaunchDarkly uses for variation, rule and clause `_id`s.
pub fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}
