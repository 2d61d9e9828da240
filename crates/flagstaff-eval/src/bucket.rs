//! Percentage-rollout bucketing.
//!
//! The hash input is `<prefix>.<value>`, where the prefix is the decimal seed if the rollout has
//! one, else `<flagKey or segmentKey>.<salt>`, and the value is the bucketed attribute (a string
//! as is, an integer-valued number in decimal). The bucket is the first 15 hex digits of the
//! SHA-1 of that input divided by `0xFFFFFFFFFFFFFFF`, in `f32` as in the Go and Rust SDKs.

use sha1::digest::generic_array::GenericArray;
use sha1::{Digest, Sha1};

use crate::attr_ref::AttrRef;
use crate::context::Context;
use crate::value::ValueRef;

const LONG_SCALE: f32 = 0xFFF_FFFF_FFFF_FFFFu64 as f32;

const SHA1_INIT: [u32; 5] = [
    0x6745_2301,
    0xEFCD_AB89,
    0x98BA_DCFE,
    0x1032_5476,
    0xC3D2_E1F0,
];

/// The hash input's `<prefix>.`, computed once per rollout or segment rule: the SHA-1 state after
/// its whole 64-byte blocks, and the bytes left over. Bucketing a value then pads the last block
/// or two on the stack and runs the compression function directly.
#[derive(Clone)]
pub struct BucketPrefix {
    prefix: Box<[u8]>,
    state: [u32; 5],
    tail_start: usize,
}

impl std::fmt::Debug for BucketPrefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "BucketPrefix({:?})",
            String::from_utf8_lossy(&self.prefix)
        )
    }
}

fn compress_block(state: &mut [u32; 5], block: &[u8]) {
    sha1::compress(state, std::slice::from_ref(GenericArray::from_slice(block)));
}

fn bucket_of_state(state: &[u32; 5]) -> f32 {
    // The first 15 hex digits of the digest.
    let n = ((u64::from(state[0]) << 32) | u64::from(state[1])) >> 4;
    n as f32 / LONG_SCALE
}

impl BucketPrefix {
    fn new(prefix: Vec<u8>) -> BucketPrefix {
        let tail_start = prefix.len() / 64 * 64;
        let mut state = SHA1_INIT;
        for block in prefix[..tail_start].chunks_exact(64) {
            compress_block(&mut state, block);
        }
        BucketPrefix {
            prefix: prefix.into_boxed_slice(),
            state,
            tail_start,
        }
    }

    /// `<key>.<salt>.`
    pub fn key_and_salt(key: &str, salt: &str) -> BucketPrefix {
        BucketPrefix::new(format!("{key}.{salt}.").into_bytes())
    }

    /// `<seed>.`
    pub fn seed(seed: i64) -> BucketPrefix {
        BucketPrefix::new(format!("{seed}.").into_bytes())
    }

    /// The bucket of `value` (already rendered as the hash input's last part).
    pub fn bucket(&self, value: &[u8]) -> f32 {
        let tail = &self.prefix[self.tail_start..];
        let rem = tail.len() + value.len();
        if rem + 9 > 128 {
            let mut h = Sha1::new();
            h.update(&self.prefix);
            h.update(value);
            let digest = h.finalize();
            let mut first = [0u8; 8];
            first.copy_from_slice(&digest[..8]);
            return (u64::from_be_bytes(first) >> 4) as f32 / LONG_SCALE;
        }
        let mut buf = [0u8; 128];
        buf[..tail.len()].copy_from_slice(tail);
        buf[tail.len()..rem].copy_from_slice(value);
        buf[rem] = 0x80;
        let end = if rem + 9 <= 64 { 64 } else { 128 };
        let bits = ((self.prefix.len() + value.len()) as u64) * 8;
        buf[end - 8..end].copy_from_slice(&bits.to_be_bytes());
        let mut state = self.state;
        compress_block(&mut state, &buf[..64]);
        if end == 128 {
            compress_block(&mut state, &buf[64..]);
        }
        bucket_of_state(&state)
    }
}

/// Writes `n` in decimal into `buf` and returns the digits.
pub fn format_i64(n: i64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    let mut v = n.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if n < 0 {
        i -= 1;
        buf[i] = b'-';
    }
    &buf[i..]
}

/// What a rollout buckets by.
#[derive(Clone, Debug)]
pub enum BucketBy {
    /// The context key (default, and always for experiments).
    Key,
    /// Another attribute.
    Attr(AttrRef),
    /// An invalid `bucketBy` reference: the evaluation is `MALFORMED_FLAG`.
    Invalid,
}

impl BucketBy {
    /// From a model's `bucketBy`: experiments and undefined (absent or empty) use the key.
    pub fn new(bucket_by: Option<&str>, with_context_kind: bool, experiment: bool) -> BucketBy {
        match bucket_by {
            _ if experiment => BucketBy::Key,
            None | Some("") => BucketBy::Key,
            Some(s) => {
                let r = AttrRef::for_item(s, with_context_kind);
                if r.is_valid() {
                    BucketBy::Attr(r)
                } else {
                    BucketBy::Invalid
                }
            }
        }
    }
}

/// Why bucketing gave 0 without an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BucketFailure {
    /// The context has no individual context of the rollout's kind.
    ContextLacksKind,
    /// The attribute is absent.
    AttributeNotFound,
    /// The attribute is neither a string nor an integer.
    WrongType,
}

/// An invalid `bucketBy` attribute reference (the evaluation is `MALFORMED_FLAG`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidBucketBy;

impl std::fmt::Display for InvalidBucketBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("invalid bucketBy attribute reference")
    }
}

impl std::error::Error for InvalidBucketBy {}

/// The bucket of `context`, and why it is 0 if bucketing could not hash anything.
pub fn bucket_context(
    context: &Context,
    prefix: &BucketPrefix,
    context_kind: &str,
    by: &BucketBy,
) -> Result<(f32, Option<BucketFailure>), InvalidBucketBy> {
    if matches!(by, BucketBy::Invalid) {
        return Err(InvalidBucketBy);
    }
    let Some(c) = context.individual(context_kind) else {
        return Ok((0.0, Some(BucketFailure::ContextLacksKind)));
    };
    let value = match by {
        BucketBy::Attr(r) => c.get_value(r),
        _ => Some(ValueRef::Str(c.key())),
    };
    let mut buf = [0u8; 20];
    let bytes: &[u8] = match value {
        None => return Ok((0.0, Some(BucketFailure::AttributeNotFound))),
        Some(ValueRef::Str(s)) => s.as_bytes(),
        Some(ValueRef::Number(n)) if n.fract() == 0.0 && n.abs() < 9.223_372_036_854_776e18 => {
            format_i64(n as i64, &mut buf)
        }
        Some(_) => return Ok((0.0, Some(BucketFailure::WrongType))),
    };
    Ok((prefix.bucket(bytes), None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::ContextBuilder;
    use serde_json::json;

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() < 1e-7
    }

    #[test]
    fn spec_vectors() {
        let p = BucketPrefix::key_and_salt("hashKey", "saltyA");
        assert!(close(p.bucket(b"userKeyA"), 0.42157587));
        assert!(close(p.bucket(b"userKeyB"), 0.6708485));
        assert!(close(p.bucket(b"userKeyC"), 0.10343106));
        assert!(close(p.bucket(b"33333"), 0.54771423));
        assert!(close(p.bucket(b"99999"), 0.7309658));
        let s = BucketPrefix::seed(61);
        assert!(close(s.bucket(b"userKeyA"), 0.09801207));
        assert!(close(s.bucket(b"userKeyB"), 0.14483777));
        assert!(close(s.bucket(b"userKeyC"), 0.9242641));
        assert!(close(BucketPrefix::seed(60).bucket(b"userKeyA"), 0.7008816));
    }

    #[test]
    fn bucketing_attributes() {
        let p = BucketPrefix::key_and_salt("hashKey", "saltyA");
        let c = ContextBuilder::new("userKeyA")
            .set("int", json!(33333))
            .set("float_int", json!(33333.0))
            .set("str", json!("33333"))
            .set("float", json!(999.999))
            .set("bool", json!(true))
            .build()
            .unwrap();
        let by = |a: &str| BucketBy::new(Some(a), false, false);
        let b = |by: &BucketBy| bucket_context(&c, &p, "user", by).unwrap();
        assert!(close(b(&BucketBy::Key).0, 0.42157587));
        assert!(close(b(&by("int")).0, 0.54771423));
        assert!(close(b(&by("float_int")).0, 0.54771423));
        assert!(close(b(&by("str")).0, 0.54771423));
        assert_eq!(b(&by("float")), (0.0, Some(BucketFailure::WrongType)));
        assert_eq!(b(&by("bool")), (0.0, Some(BucketFailure::WrongType)));
        assert_eq!(
            b(&by("none")),
            (0.0, Some(BucketFailure::AttributeNotFound))
        );
        assert_eq!(
            bucket_context(&c, &p, "org", &BucketBy::Key).unwrap(),
            (0.0, Some(BucketFailure::ContextLacksKind))
        );
        assert!(bucket_context(&c, &p, "user", &BucketBy::new(Some("/a~"), true, false)).is_err());
        // Experiments always bucket by key, even with an invalid bucketBy.
        assert!(matches!(
            BucketBy::new(Some("/a~"), true, true),
            BucketBy::Key
        ));
        assert!(matches!(
            BucketBy::new(Some(""), true, false),
            BucketBy::Key
        ));
    }

    #[test]
    fn direct_compression_equals_streaming_sha1() {
        fn streaming(prefix: &[u8], value: &[u8]) -> f32 {
            let mut h = Sha1::new();
            h.update(prefix);
            h.update(value);
            let d = h.finalize();
            let mut first = [0u8; 8];
            first.copy_from_slice(&d[..8]);
            (u64::from_be_bytes(first) >> 4) as f32 / LONG_SCALE
        }
        let text: String = (0..300)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        for plen in [
            0usize, 1, 10, 54, 55, 56, 63, 64, 65, 119, 127, 128, 129, 200,
        ] {
            for vlen in [0usize, 1, 8, 9, 46, 54, 55, 56, 63, 64, 100, 130] {
                let key = &text[..plen];
                let p = BucketPrefix::key_and_salt(key, "s");
                let full = format!("{key}.s.");
                let value = &text.as_bytes()[..vlen];
                assert_eq!(
                    p.bucket(value).to_bits(),
                    streaming(full.as_bytes(), value).to_bits(),
                    "prefix {plen}, value {vlen}"
                );
            }
        }
    }

    #[test]
    fn decimal_formatting() {
        let mut buf = [0u8; 20];
        assert_eq!(format_i64(0, &mut buf), b"0");
        assert_eq!(format_i64(-61, &mut buf), b"-61");
        assert_eq!(format_i64(i64::MIN, &mut buf), b"-9223372036854775808");
        assert_eq!(format_i64(i64::MAX, &mut buf), b"9223372036854775807");
    }
}
