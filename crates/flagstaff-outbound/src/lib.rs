//! Outbound side of Flagstaff's integrations: delivering webhooks and
//! integration requests to partners without letting API users reach the
//! server's internal network ([`SafeClient`], [`OutboundPolicy`]), and
//! keeping integration secrets encrypted at rest ([`SecretBox`]).

pub mod client;
pub mod policy;
pub mod redis;
pub mod secret;

pub use client::{
    DEFAULT_USER_AGENT, OutboundError, OutboundRequest, OutboundResponse, SafeClient,
    SafeClientConfig,
};
pub use policy::{
    ALLOW_OUTBOUND_ENV, ALLOW_OUTBOUND_FLAG, Blocked, Embedding, OutboundPolicy, PolicyError,
    blocked_ranges, parse_cidr,
};
pub use redis::{RedisTarget, RedisTargetError, RedisTimeouts};
pub use secret::{
    KEY_FILE_NAME, KEY_LEN, KeySource, MASK, SEALED_PREFIX, SECRET_KEY_ENV, SecretBox, SecretError,
    SecretKeyError, is_sealed, mask,
};
