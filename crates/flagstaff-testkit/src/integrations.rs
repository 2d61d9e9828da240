//! The integrations runtime test servers run with: the conformance catalogue, a fixed
//! secret key, and an outbound policy that lets partner requests reach loopback receivers
//! or keeps the production policy.

use std::path::PathBuf;
use std::time::Duration;

use flagstaff_outbound::{OutboundPolicy, SecretBox};
use flagstaff_server::integrations::{DeliverySettings, Integrations};

/// Where a test runtime's outbound requests may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outbound {
    /// Loopback allowed: partners are receivers on 127.0.0.1.
    Loopback,
    /// The production policy: private, loopback and metadata addresses refused.
    PublicOnly,
}

/// The conformance catalogue's integrations (besides the built-in ones).
pub fn catalogue_integrations(outbound: Outbound, delivery: DeliverySettings) -> Integrations {
    integrations_from(
        vec![crate::conformance::conformance_dir().join("integration-framework/integrations")],
        outbound,
        delivery,
    )
}

/// Integrations loaded from `catalogues` (e.g. a rewritten copy of the catalogue).
pub fn integrations_from(
    catalogues: Vec<PathBuf>,
    outbound: Outbound,
    delivery: DeliverySettings,
) -> Integrations {
    let allowed = match outbound {
        Outbound::Loopback => vec!["127.0.0.0/8".to_string()],
        Outbound::PublicOnly => Vec::new(),
    };
    Integrations::new(
        catalogues,
        SecretBox::new([7; 32]),
        OutboundPolicy::from_cidrs(&allowed).expect("loopback is a valid CIDR"),
        delivery,
    )
    .expect("the conformance catalogue loads")
}

/// Delivery retries quick enough for a test to watch several of them.
pub fn quick_retries() -> DeliverySettings {
    DeliverySettings {
        base_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(300),
        poll_interval: Duration::from_millis(50),
        ..DeliverySettings::default()
    }
}
