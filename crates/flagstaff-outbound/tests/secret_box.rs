//! `SecretBox`: sealing, key sourcing and redaction.

use std::collections::HashSet;
use std::fs;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use flagstaff_outbound::{
    KEY_FILE_NAME, KeySource, MASK, SEALED_PREFIX, SecretBox, SecretError, SecretKeyError,
    is_sealed, mask,
};

const KEY: [u8; 32] = [
    0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6, 0x07, 0x18, 0x29, 0x3a, 0x4b, 0x5c, 0x6d, 0x7e, 0x8f, 0x90,
    0x01, 0x12, 0x23, 0x34, 0x45, 0x56, 0x67, 0x78, 0x89, 0x9a, 0xab, 0xbc, 0xcd, 0xde, 0xef, 0xf0,
];

fn decode_payload(sealed: &str) -> Vec<u8> {
    STANDARD
        .decode(sealed.strip_prefix(SEALED_PREFIX).unwrap())
        .unwrap()
}

fn encode_payload(raw: &[u8]) -> String {
    format!("{SEALED_PREFIX}{}", STANDARD.encode(raw))
}

#[test]
fn round_trip() {
    let secret_box = SecretBox::new(KEY);
    for value in ["", "xoxb-123-456", "ünïcödé ✓ 🔑", &"long".repeat(10_000)] {
        let sealed = secret_box.seal(value).unwrap();
        assert!(is_sealed(&sealed));
        assert!(SecretBox::is_sealed(&sealed));
        assert!(!sealed.contains(value) || value.is_empty());
        assert_eq!(secret_box.open(&sealed).unwrap(), value);
    }
}

#[test]
fn stored_format_is_prefix_and_base64_of_nonce_and_ciphertext() {
    let secret_box = SecretBox::new(KEY);
    let sealed = secret_box.seal("token").unwrap();
    assert!(sealed.starts_with("fsenc:v1:"));
    // 24-byte nonce + 5-byte ciphertext + 16-byte tag.
    assert_eq!(decode_payload(&sealed).len(), 24 + 5 + 16);
    assert!(!is_sealed("token"));
    assert!(!is_sealed("fsenc:v2:abc"));
}

#[test]
fn wrong_key_fails() {
    let sealed = SecretBox::new(KEY).seal("partner-token").unwrap();
    let mut other = KEY;
    other[0] ^= 1;
    assert_eq!(
        SecretBox::new(other).open(&sealed),
        Err(SecretError::Decrypt)
    );
}

#[test]
fn tampering_is_detected() {
    let secret_box = SecretBox::new(KEY);
    let sealed = secret_box.seal("partner-token").unwrap();
    let raw = decode_payload(&sealed);
    // Flip one bit in the nonce, the ciphertext and the tag in turn.
    for index in [0, 23, 24, 24 + 5, raw.len() - 1] {
        let mut tampered = raw.clone();
        tampered[index] ^= 0x01;
        assert_eq!(
            secret_box.open(&encode_payload(&tampered)),
            Err(SecretError::Decrypt),
            "byte {index}"
        );
    }
    // Appending or removing bytes.
    let mut longer = raw.clone();
    longer.push(0);
    assert_eq!(
        secret_box.open(&encode_payload(&longer)),
        Err(SecretError::Decrypt)
    );
    assert!(matches!(
        secret_box.open(&encode_payload(&raw[..39])),
        Err(SecretError::Malformed(_))
    ));
    assert!(matches!(
        secret_box.open("fsenc:v1:***not base64***"),
        Err(SecretError::Malformed(_))
    ));
    assert_eq!(secret_box.open("plaintext"), Err(SecretError::NotSealed));
    assert_eq!(
        secret_box.open(&sealed.replacen("v1", "v2", 1)),
        Err(SecretError::NotSealed)
    );
    assert!(matches!(
        secret_box.open(SEALED_PREFIX),
        Err(SecretError::Malformed(_))
    ));
}

#[test]
fn associated_data_binds_the_value_to_its_field() {
    let secret_box = SecretBox::new(KEY);
    let sealed = secret_box.seal_for(b"integration-1/apiKey", "tok").unwrap();
    assert_eq!(
        secret_box
            .open_for(b"integration-1/apiKey", &sealed)
            .unwrap(),
        "tok"
    );
    assert_eq!(
        secret_box.open_for(b"integration-2/apiKey", &sealed),
        Err(SecretError::Decrypt)
    );
    assert_eq!(
        secret_box.open_for(b"integration-1/webhookUrl", &sealed),
        Err(SecretError::Decrypt)
    );
    assert_eq!(secret_box.open(&sealed), Err(SecretError::Decrypt));
    // And a value sealed without AAD does not open with one.
    let plain = secret_box.seal("tok").unwrap();
    assert_eq!(
        secret_box.open_for(b"integration-1/apiKey", &plain),
        Err(SecretError::Decrypt)
    );
}

#[test]
fn every_seal_uses_a_fresh_nonce() {
    let secret_box = SecretBox::new(KEY);
    let first = secret_box.seal("same value").unwrap();
    let second = secret_box.seal("same value").unwrap();
    assert_ne!(first, second);
    let nonces: HashSet<Vec<u8>> = (0..1000)
        .map(|_| decode_payload(&secret_box.seal("same value").unwrap())[..24].to_vec())
        .collect();
    assert_eq!(nonces.len(), 1000);
}

#[test]
fn key_file_is_created_private_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let first = SecretBox::from_env_or_data_dir(None, Some(&data_dir)).unwrap();
    let path = data_dir.join(KEY_FILE_NAME);
    assert_eq!(
        first.key_source(),
        &KeySource::File {
            path: path.clone(),
            created: true
        }
    );
    let metadata = fs::metadata(&path).unwrap();
    assert_eq!(metadata.len(), 32);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(metadata.permissions().mode() & 0o777, 0o600);
    }
    // No temporary file is left behind.
    let entries: Vec<_> = fs::read_dir(&data_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(entries, vec![std::ffi::OsString::from(KEY_FILE_NAME)]);

    let sealed = first.seal("persisted").unwrap();
    let second = SecretBox::from_env_or_data_dir(None, Some(&data_dir)).unwrap();
    assert_eq!(
        second.key_source(),
        &KeySource::File {
            path,
            created: false
        }
    );
    assert_eq!(second.open(&sealed).unwrap(), "persisted");
    // Blank environment values count as unset.
    let third = SecretBox::from_env_or_data_dir(Some("  "), Some(&data_dir)).unwrap();
    assert_eq!(third.open(&sealed).unwrap(), "persisted");
}

#[test]
fn simultaneous_first_starts_agree_on_one_key() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = Arc::new(dir.path().to_path_buf());
    let boxes: Vec<SecretBox> = (0..8)
        .map(|_| {
            let data_dir = Arc::clone(&data_dir);
            std::thread::spawn(move || {
                SecretBox::from_env_or_data_dir(None, Some(&data_dir)).unwrap()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|handle| handle.join().unwrap())
        .collect();
    let created = boxes
        .iter()
        .filter(|b| matches!(b.key_source(), KeySource::File { created: true, .. }))
        .count();
    assert_eq!(created, 1);
    let sealed = boxes[3].seal("shared").unwrap();
    for secret_box in &boxes {
        assert_eq!(secret_box.open(&sealed).unwrap(), "shared");
    }
}

#[test]
fn key_file_of_wrong_length_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(KEY_FILE_NAME);
    fs::write(&path, [7u8; 31]).unwrap();
    let err = SecretBox::from_env_or_data_dir(None, Some(dir.path())).unwrap_err();
    assert!(matches!(err, SecretKeyError::KeyFileLength { len: 31, .. }));
    let message = err.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(
        message.contains("31 bytes, expected exactly 32"),
        "{message}"
    );
    // The bad file is left untouched for the operator to inspect.
    assert_eq!(fs::read(&path).unwrap(), vec![7u8; 31]);

    fs::write(&path, [7u8; 33]).unwrap();
    assert!(SecretBox::from_env_or_data_dir(None, Some(dir.path())).is_err());
}

#[test]
fn env_key_in_hex_or_base64_takes_precedence() {
    let dir = tempfile::tempdir().unwrap();
    let hex_key = hex::encode(KEY);
    let from_hex = SecretBox::from_env_or_data_dir(Some(&hex_key), Some(dir.path())).unwrap();
    assert_eq!(from_hex.key_source(), &KeySource::Env);
    assert!(
        !dir.path().join(KEY_FILE_NAME).exists(),
        "no key file may be written when the key comes from the environment"
    );
    let sealed = SecretBox::new(KEY).seal("v").unwrap();
    assert_eq!(from_hex.open(&sealed).unwrap(), "v");

    for encoded in [
        STANDARD.encode(KEY),
        URL_SAFE_NO_PAD.encode(KEY),
        format!(" {}\n", hex::encode_upper(KEY)),
    ] {
        let secret_box = SecretBox::from_env_or_data_dir(Some(&encoded), None).unwrap();
        assert_eq!(secret_box.open(&sealed).unwrap(), "v", "{encoded}");
    }
}

#[test]
fn bad_env_key_is_rejected_without_echoing_it() {
    let cases = [
        ("not-a-key", "neither hexadecimal nor base64"),
        (
            "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
            "64 characters long but not all hexadecimal",
        ),
        (
            "0123456789abcdef0123456789abcdef",
            "base64 value decodes to 24 bytes",
        ),
        ("c2hvcnQ=", "base64 value decodes to 5 bytes"),
        ("ab", "neither hexadecimal nor base64"),
    ];
    for (value, detail) in cases {
        let err = SecretBox::from_env_or_data_dir(Some(value), None).unwrap_err();
        assert!(matches!(err, SecretKeyError::InvalidEnv { .. }), "{value}");
        let message = err.to_string();
        assert!(message.starts_with("FLAGSTAFF_SECRET_KEY must be 64 hexadecimal characters or the base64 encoding of exactly 32 bytes"), "{message}");
        assert!(message.contains(detail), "{value}: {message}");
        assert!(message.contains("openssl rand -hex 32"), "{message}");
        assert!(!message.contains(value), "{message}");
        assert!(!format!("{err:?}").contains(value));
    }
}

#[test]
fn no_key_source_asks_for_the_env_var() {
    let err = SecretBox::from_env_or_data_dir(None, None).unwrap_err();
    assert!(matches!(err, SecretKeyError::NoKeySource));
    assert!(err.to_string().contains("set FLAGSTAFF_SECRET_KEY"));
}

#[test]
fn debug_never_shows_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let hex_key = hex::encode(KEY);
    let boxes = [
        SecretBox::new(KEY),
        SecretBox::from_env_or_data_dir(Some(&hex_key), None).unwrap(),
        SecretBox::from_env_or_data_dir(None, Some(dir.path())).unwrap(),
    ];
    let file_key = fs::read(dir.path().join(KEY_FILE_NAME)).unwrap();
    for secret_box in &boxes {
        let debug = format!("{secret_box:?} {secret_box:#?}");
        assert!(debug.contains("<redacted>"), "{debug}");
        for key in [KEY.as_slice(), file_key.as_slice()] {
            let forms = [
                hex::encode(key),
                hex::encode_upper(key),
                STANDARD.encode(key),
                format!("{:?}", &key[..4]).trim_end_matches(']').to_owned(),
                format!("{:?}", &key[..4])
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned(),
            ];
            for form in forms {
                assert!(!debug.contains(&form), "{form} in {debug}");
            }
        }
    }
}

#[test]
fn mask_reveals_nothing() {
    for value in [
        "",
        "abc",
        "0123456789abcdef",
        "sk_live_0123456789abcdefghijklmnop",
    ] {
        assert_eq!(mask(value), MASK);
        assert_eq!(mask(value), "**********");
    }
}

#[test]
fn open_errors_never_contain_the_plaintext() {
    let secret_box = SecretBox::new(KEY);
    let sealed = secret_box.seal_for(b"a", "SENTINEL-plaintext").unwrap();
    let err = secret_box.open_for(b"b", &sealed).unwrap_err();
    assert!(!err.to_string().contains("SENTINEL"));
    assert!(!format!("{err:?}").contains("SENTINEL"));
}
