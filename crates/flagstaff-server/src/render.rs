//! LaunchDarkly representations: stored entities plus the derived `_links`, `_site` and
//! `_environmentName` fields, and paginated collections.

use std::collections::BTreeMap;

use flagstaff_model::audit::{AuditEntry, DETAIL_ONLY_FIELDS};
use flagstaff_model::environment::Environment;
use flagstaff_model::flag::FeatureFlag;
use flagstaff_model::project::Project;
use flagstaff_model::segment::Segment;
use serde_json::{Map, Value, json};

use crate::services::to_value;

pub mod account;

pub fn link(href: impl Into<String>) -> Value {
    json!({"href": href.into(), "type": "application/json"})
}

fn site(href: impl Into<String>) -> Value {
    json!({"href": href.into(), "type": "text/html"})
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// How a project's environments appear in its representation.
pub enum ProjectEnvironments<'a> {
    /// Not at all (`GET /projects/{key}` without `expand=environments`).
    Omitted,
    /// As an `Environments` collection (`Project`, with `expand=environments`).
    Collection(&'a [Environment]),
    /// As a plain array (`ProjectRep`, returned by create and patch).
    Array(&'a [Environment]),
}

pub fn project(p: &Project, environments: ProjectEnvironments<'_>) -> Value {
    let mut map = object(to_value(p));
    map.remove("_version");
    map.remove("_creationDate");
    map.insert(
        "_links".into(),
        json!({
            "self": link(format!("/api/v2/projects/{}", p.key)),
            "environments": link(format!("/api/v2/projects/{}/environments", p.key)),
            "flagDefaults": link(format!("/api/v2/projects/{}/flag-defaults", p.key)),
        }),
    );
    match environments {
        ProjectEnvironments::Omitted => {}
        ProjectEnvironments::Collection(envs) => {
            let items: Vec<Value> = envs.iter().map(|e| environment(&p.key, e)).collect();
            map.insert(
                "environments".into(),
                json!({
                    "_links": {"self": link(format!("/api/v2/projects/{}/environments", p.key))},
                    "totalCount": items.len(),
                    "items": items,
                }),
            );
        }
        ProjectEnvironments::Array(envs) => {
            let items: Vec<Value> = envs.iter().map(|e| environment(&p.key, e)).collect();
            map.insert("environments".into(), Value::Array(items));
        }
    }
    Value::Object(map)
}

pub fn environment(project: &str, e: &Environment) -> Value {
    let mut map = object(to_value(e));
    map.remove("previousApiKey");
    map.remove("_version");
    map.remove("_creationDate");
    map.insert(
        "_links".into(),
        json!({
            "self": link(format!("/api/v2/projects/{project}/environments/{}", e.key)),
            "parent": link(format!("/api/v2/projects/{project}/environments")),
            "analytics": site(format!("/{project}/{}/dashboard", e.key)),
            "apiKey": link(format!("/api/v2/projects/{project}/environments/{}/apiKey", e.key)),
            "mobileKey": link(format!("/api/v2/projects/{project}/environments/{}/mobileKey", e.key)),
        }),
    );
    Value::Object(map)
}

/// Options for rendering a flag.
#[derive(Default)]
pub struct FlagView<'a> {
    /// Only these environments (`?env=`); all when `None`.
    pub environments: Option<&'a [String]>,
    /// Leave out the environments map entirely (flag lists without `env`).
    pub omit_environments: bool,
    /// Leave out targets, rules and prerequisites of each environment.
    pub summary: bool,
}

pub fn flag(
    project: &str,
    f: &FeatureFlag,
    env_names: &BTreeMap<String, String>,
    view: &FlagView<'_>,
) -> Value {
    let mut map = object(to_value(f));
    map.insert(
        "_links".into(),
        json!({
            "parent": link(format!("/api/v2/flags/{project}")),
            "self": link(format!("/api/v2/flags/{project}/{}", f.key)),
        }),
    );
    if view.omit_environments {
        map.remove("environments");
        return Value::Object(map);
    }
    let mut environments = Map::new();
    for (env_key, config) in &f.environments {
        if let Some(wanted) = view.environments
            && !wanted.iter().any(|w| w == env_key)
        {
            continue;
        }
        let mut c = object(to_value(config));
        if view.summary {
            for field in ["targets", "contextTargets", "rules", "prerequisites"] {
                c.remove(field);
            }
        }
        c.insert(
            "_site".into(),
            site(format!("/{project}/{env_key}/features/{}", f.key)),
        );
        c.insert(
            "_environmentName".into(),
            Value::String(
                env_names
                    .get(env_key)
                    .cloned()
                    .unwrap_or_else(|| env_key.clone()),
            ),
        );
        environments.insert(env_key.clone(), Value::Object(c));
    }
    map.insert("environments".into(), Value::Object(environments));
    Value::Object(map)
}

pub fn segment(project: &str, env: &str, s: &Segment) -> Value {
    let mut map = object(to_value(s));
    map.remove("salt");
    map.insert(
        "_links".into(),
        json!({
            "self": link(format!("/api/v2/segments/{project}/{env}/{}", s.key)),
            "parent": link(format!("/api/v2/segments/{project}/{env}")),
            "site": site(format!("/{project}/{env}/segments/{}", s.key)),
        }),
    );
    Value::Object(map)
}

/// An audit entry; `detailed` keeps `delta`, `previousVersion` and `currentVersion`.
pub fn audit_entry(entry: &AuditEntry, detailed: bool) -> Value {
    let mut map = object(to_value(entry));
    if !detailed {
        for field in DETAIL_ONLY_FIELDS {
            map.remove(*field);
        }
    }
    let mut links = json!({
        "self": link(format!("/api/v2/auditlog/{}", entry.id)),
        "parent": link("/api/v2/auditlog"),
    });
    if let Some(canonical) = entry
        .target
        .resources
        .first()
        .and_then(|r| canonical_href(r))
    {
        links["canonical"] = link(canonical);
    }
    map.insert("_links".into(), links);
    Value::Object(map)
}

/// The REST URL of the entity a resource specifier names, when there is one.
fn canonical_href(resource: &str) -> Option<String> {
    let spec = flagstaff_policy::ResourceSpec::parse(resource).ok()?;
    let name = |kind: &str| {
        spec.segments
            .iter()
            .find(|s| s.kind == kind)
            .map(|s| s.name.clone())
    };
    let last = spec.segments.last()?;
    Some(match last.kind.as_str() {
        "proj" => format!("/api/v2/projects/{}", last.name),
        "env" => format!(
            "/api/v2/projects/{}/environments/{}",
            name("proj")?,
            last.name
        ),
        "flag" => format!("/api/v2/flags/{}/{}", name("proj")?, last.name),
        "segment" => format!(
            "/api/v2/segments/{}/{}/{}",
            name("proj")?,
            name("env")?,
            last.name
        ),
        _ => return None,
    })
}

/// A page of a collection: `{items, totalCount, _links: {self, first, prev, next, last}}`.
/// `query` carries the request's other parameters (without limit and offset).
pub fn page(
    path: &str,
    query: &[(String, String)],
    items: Vec<Value>,
    total: usize,
    limit: usize,
    offset: usize,
) -> Value {
    let href = |offset: usize| {
        let mut params: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{k}={}", encode_query(v)))
            .collect();
        params.push(format!("limit={limit}"));
        params.push(format!("offset={offset}"));
        format!("{path}?{}", params.join("&"))
    };
    let mut links = Map::new();
    links.insert("self".into(), link(href(offset)));
    links.insert("first".into(), link(href(0)));
    if offset > 0 {
        links.insert("prev".into(), link(href(offset.saturating_sub(limit))));
    }
    if limit > 0 && offset + limit < total {
        links.insert("next".into(), link(href(offset + limit)));
    }
    if limit > 0 && total > 0 {
        links.insert("last".into(), link(href((total - 1) / limit * limit)));
    }
    json!({"items": items, "totalCount": total, "_links": links})
}

/// Percent-encodes a query parameter value.
pub fn encode_query(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' | b',' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
