//! Stored REST flags and segments → the server-side SDK data model of one environment.
//!
//! The SDK `version` is not the REST version: it is the outbox sequence number of the item's
//! last change (see [`super::feed`]), which keeps rising across delete and re-create.

use flagstaff_eval::{Flag, Segment};
use flagstaff_model::flag::{FeatureFlag, Rollout, VariationOrRollout};
use flagstaff_model::segment::Segment as RestSegment;
use serde_json::{Value, json};

fn rollout_json(r: &Rollout) -> Value {
    let mut out = json!({
        "variations": r.variations.iter().map(|w| {
            let mut v = json!({"variation": w.variation, "weight": w.weight});
            if w.untracked {
                v["untracked"] = json!(true);
            }
            v
        }).collect::<Vec<_>>(),
    });
    if let Some(b) = &r.bucket_by {
        out["bucketBy"] = json!(b);
    }
    if let Some(k) = &r.context_kind {
        out["contextKind"] = json!(k);
    }
    if let Some(s) = r.seed {
        out["seed"] = json!(s);
    }
    out
}

fn vor_json(v: &VariationOrRollout) -> Value {
    let mut out = json!({});
    if let Some(i) = v.variation {
        out["variation"] = json!(i);
    }
    if let Some(r) = &v.rollout {
        out["rollout"] = rollout_json(r);
    }
    out
}

fn clauses_json(clauses: &[flagstaff_model::flag::Clause]) -> Value {
    Value::Array(
        clauses
            .iter()
            .map(|c| {
                let mut v = json!({"attribute": c.attribute, "op": c.op, "values": c.values,
                    "negate": c.negate});
                if let Some(k) = &c.context_kind {
                    v["contextKind"] = json!(k);
                }
                v
            })
            .collect(),
    )
}

/// The SDK flag for `env`, or `None` when the flag has no configuration there or is
/// archived (archived flags are not served to SDKs; they become tombstones).
pub fn sdk_flag(flag: &FeatureFlag, env: &str, version: u64) -> Option<Flag> {
    if flag.archived {
        return None;
    }
    let config = flag.environments.get(env)?;
    let rules: Vec<Value> = config
        .rules
        .iter()
        .filter(|r| r.disabled != Some(true))
        .map(|r| {
            let mut v = json!({"id": r.id, "clauses": clauses_json(&r.clauses),
                "trackEvents": r.track_events});
            if let Some(i) = r.variation {
                v["variation"] = json!(i);
            }
            if let Some(ro) = &r.rollout {
                v["rollout"] = rollout_json(ro);
            }
            v
        })
        .collect();
    let targets = |list: &[flagstaff_model::flag::Target]| -> Value {
        Value::Array(
            list.iter()
                .map(|t| {
                    let mut v = json!({"values": t.values, "variation": t.variation});
                    if let Some(k) = &t.context_kind {
                        v["contextKind"] = json!(k);
                    }
                    v
                })
                .collect(),
        )
    };
    let csa = &flag.client_side_availability;
    let doc = json!({
        "key": flag.key,
        "version": version,
        "on": config.on,
        "prerequisites": config.prerequisites.iter()
            .map(|p| json!({"key": p.key, "variation": p.variation})).collect::<Vec<_>>(),
        "targets": targets(&config.targets),
        "contextTargets": targets(&config.context_targets),
        "rules": rules,
        "fallthrough": vor_json(&config.fallthrough),
        "offVariation": config.off_variation,
        "variations": flag.variations.iter().map(|v| v.value.clone()).collect::<Vec<_>>(),
        "clientSideAvailability": {
            "usingMobileKey": csa.using_mobile_key,
            "usingEnvironmentId": csa.using_environment_id,
        },
        "clientSide": csa.using_environment_id,
        "salt": config.salt,
        "trackEvents": config.track_events,
        "trackEventsFallthrough": config.track_events_fallthrough,
        "debugEventsUntilDate": null,
        "deleted": false,
    });
    serde_json::from_value(doc).ok()
}

/// The SDK segment (the REST segment is already per environment).
pub fn sdk_segment(segment: &RestSegment, version: u64) -> Option<Segment> {
    if segment.deleted {
        return None;
    }
    let targets = |list: &[flagstaff_model::segment::SegmentTarget]| -> Value {
        Value::Array(
            list.iter()
                .map(|t| json!({"contextKind": t.context_kind, "values": t.values}))
                .collect(),
        )
    };
    let rules: Vec<Value> = segment
        .rules
        .iter()
        .map(|r| {
            let mut v = json!({"id": r.id, "clauses": clauses_json(&r.clauses)});
            if let Some(w) = r.weight {
                v["weight"] = json!(w);
            }
            if let Some(b) = &r.bucket_by {
                v["bucketBy"] = json!(b);
            }
            if let Some(k) = &r.rollout_context_kind {
                v["rolloutContextKind"] = json!(k);
            }
            v
        })
        .collect();
    let mut doc = json!({
        "key": segment.key,
        "version": version,
        "included": segment.included,
        "excluded": segment.excluded,
        "includedContexts": targets(&segment.included_contexts),
        "excludedContexts": targets(&segment.excluded_contexts),
        "salt": segment.salt,
        "rules": rules,
        "generation": if segment.unbounded { json!(segment.generation) } else { Value::Null },
        "deleted": false,
    });
    if segment.unbounded {
        doc["unbounded"] = json!(true);
        if let Some(k) = &segment.unbounded_context_kind {
            doc["unboundedContextKind"] = json!(k);
        }
    }
    serde_json::from_value(doc).ok()
}
