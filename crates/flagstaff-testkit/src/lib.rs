//! Test support shared by every integration test: the conformance-data locator, the
//! LaunchDarkly OpenAPI contract checker, the Python checks runner (`python`), and (in `app`)
//! a `TestApp` that runs the real server.

pub mod app;
pub mod change_management;
pub mod conformance;
pub mod contract;
pub mod integrations;
pub mod python;
pub mod receiver;
pub mod sse;
