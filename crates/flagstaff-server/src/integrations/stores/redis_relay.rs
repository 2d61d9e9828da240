//! Writes an environment into Redis in the Relay Proxy / server-SDK layout, which SDKs in
//! daemon mode read directly:
//!
//! | key | type | content |
//! | --- | --- | --- |
//! | `<prefix>:features` | hash | flag key → flag JSON (or a tombstone) |
//! | `<prefix>:segments` | hash | segment key → segment JSON |
//! | `<prefix>:$inited` | string | `""`: the store has been initialised |
//!
//! A full sync replaces both hashes and sets `$inited` in one MULTI/EXEC, so a reader never
//! sees a half-written environment. Incremental writes go through one Lua script that skips
//! any item whose stored version is not older (as the SDKs' own `upsert` does), so a slow
//! write can never put back an older flag.

use redis::aio::MultiplexedConnection;

use super::plan::ItemWrite;

pub const DEFAULT_PREFIX: &str = "launchdarkly";

pub fn features_key(prefix: &str) -> String {
    format!("{prefix}:features")
}

pub fn segments_key(prefix: &str) -> String {
    format!("{prefix}:segments")
}

pub fn inited_key(prefix: &str) -> String {
    format!("{prefix}:$inited")
}

/// ARGV: (kind, key, version, json) quadruples; kind 1 = features (KEYS[1]), 2 = segments
/// (KEYS[2]). Returns how many items were written.
const UPSERT_SCRIPT: &str = r#"
local written = 0
for i = 1, #ARGV, 4 do
  local hash = KEYS[tonumber(ARGV[i])]
  local key = ARGV[i + 1]
  local version = tonumber(ARGV[i + 2])
  local old = redis.call('HGET', hash, key)
  local newer = true
  if old then
    local ok, item = pcall(cjson.decode, old)
    if ok and type(item) == 'table' and tonumber(item['version']) and tonumber(item['version']) >= version then
      newer = false
    end
  end
  if newer then
    redis.call('HSET', hash, key, ARGV[i + 3])
    written = written + 1
  end
end
return written
"#;

/// Replaces the whole environment atomically.
pub async fn full_sync(
    connection: &mut MultiplexedConnection,
    prefix: &str,
    flags: &[(String, String)],
    segments: &[(String, String)],
) -> redis::RedisResult<()> {
    let mut pipe = redis::pipe();
    pipe.atomic();
    for (hash, items) in [
        (features_key(prefix), flags),
        (segments_key(prefix), segments),
    ] {
        pipe.del(&hash).ignore();
        // HSET with many fields at once, in chunks so no single command grows unbounded.
        for chunk in items.chunks(1000) {
            pipe.hset_multiple(&hash, chunk).ignore();
        }
    }
    pipe.set(inited_key(prefix), "").ignore();
    pipe.query_async::<()>(connection).await
}

/// Writes changed items and tombstones, skipping any the store holds at a newer version.
pub async fn upsert(
    connection: &mut MultiplexedConnection,
    prefix: &str,
    flags: &[ItemWrite],
    segments: &[ItemWrite],
) -> redis::RedisResult<()> {
    if flags.is_empty() && segments.is_empty() {
        return Ok(());
    }
    let script = redis::Script::new(UPSERT_SCRIPT);
    let mut invocation = script.key(features_key(prefix));
    invocation.key(segments_key(prefix));
    for (kind, items) in [(1, flags), (2, segments)] {
        for item in items {
            invocation
                .arg(kind)
                .arg(&item.key)
                .arg(item.version)
                .arg(&item.json);
        }
    }
    invocation.invoke_async::<i64>(connection).await.map(|_| ())
}
