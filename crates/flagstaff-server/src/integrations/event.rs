//! The change-history event a template sees (integration-framework spec §4): built from an
//! audit entry plus the current names and tags of its project and environment.

use flagstaff_model::audit::AuditEntry;
use flagstaff_model::environment::Environment;
use flagstaff_model::project::Project;
use flagstaff_policy::ResourceSpec;
use flagstaff_store::{EntityKind, EntityRef, Store};
use serde_json::{Map, Value, json};

/// The resource an entry is about: its innermost specifier (`proj/p:env/e:flag/f;tag`).
struct Target {
    kind: String,
    key: Option<String>,
    project: Option<String>,
    environment: Option<String>,
}

fn parse_target(entry: &AuditEntry) -> Target {
    let spec = entry
        .target
        .resources
        .first()
        .or_else(|| entry.accesses.first().map(|a| &a.resource))
        .and_then(|r| ResourceSpec::parse(r).ok());
    let Some(spec) = spec else {
        return Target {
            kind: entry.kind.clone(),
            key: None,
            project: None,
            environment: None,
        };
    };
    let find = |kind: &str| {
        spec.segments
            .iter()
            .find(|s| s.kind == kind)
            .map(|s| s.name.clone())
    };
    let last = spec.segments.last();
    Target {
        kind: entry.kind.clone(),
        key: last.map(|s| s.name.clone()),
        project: find("proj"),
        environment: find("env"),
    }
}

/// `YYYY-MM-DD HH:MM:SS` and RFC 3339 (no fraction) of a Unix-ms time, in UTC.
pub fn timestamps(ms: i64) -> Value {
    let seconds = ms.div_euclid(1000);
    let days = seconds.div_euclid(86_400);
    let secs_of_day = seconds.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (
        secs_of_day / 3600,
        (secs_of_day / 60) % 60,
        secs_of_day % 60,
    );
    json!({
        "milliseconds": ms,
        "seconds": seconds,
        "rfc3339": format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z"),
        "simple": format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02}"),
    })
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Markdown links `[text](url)` → `text`, and list markers dropped: the plain-text form.
pub fn markdown_to_plain(markdown: &str) -> String {
    let mut out = String::with_capacity(markdown.len());
    let mut rest = markdown;
    while let Some(open) = rest.find('[') {
        let Some(close_rel) = rest[open..].find("](") else {
            break;
        };
        let close = open + close_rel;
        let Some(end_rel) = rest[close + 2..].find(')') else {
            break;
        };
        out.push_str(&rest[..open]);
        out.push_str(&rest[open + 1..close]);
        rest = &rest[close + 2 + end_rel + 1..];
    }
    out.push_str(rest);
    out.lines()
        .map(|line| line.strip_prefix("- ").unwrap_or(line))
        .collect::<Vec<_>>()
        .join("\n")
        .replace('*', "")
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Markdown links → `<a href>`; everything else escaped.
pub fn markdown_to_html(markdown: &str) -> String {
    let mut out = String::with_capacity(markdown.len() + 32);
    let mut rest = markdown;
    while let Some(open) = rest.find('[') {
        let Some(close_rel) = rest[open..].find("](") else {
            break;
        };
        let close = open + close_rel;
        let Some(end_rel) = rest[close + 2..].find(')') else {
            break;
        };
        let url = &rest[close + 2..close + 2 + end_rel];
        out.push_str(&escape_html(&rest[..open]));
        out.push_str(&format!(
            "<a href=\"{}\">{}</a>",
            escape_html(url),
            escape_html(&rest[open + 1..close])
        ));
        rest = &rest[close + 2 + end_rel + 1..];
    }
    out.push_str(&escape_html(rest));
    out.replace('\n', "<br>")
}

fn text_forms(markdown: &str) -> Value {
    json!({
        "plainText": markdown_to_plain(markdown),
        "markdown": markdown,
        "html": markdown_to_html(markdown),
    })
}

fn link(href: String, kind: &str) -> Value {
    json!({ "href": href, "type": kind })
}

/// Builds the event context for `entry`. `base_url` is the server's public URL (links).
pub async fn event_context(store: &dyn Store, entry: &AuditEntry, base_url: &str) -> Value {
    let target = parse_target(entry);
    let project: Option<Project> = match &target.project {
        Some(key) => load(store, EntityRef::new(EntityKind::Project, "", key.clone())).await,
        None => None,
    };
    let environment: Option<Environment> = match (&target.project, &target.environment) {
        (Some(project), Some(env)) if env != "*" => {
            load(
                store,
                EntityRef::new(EntityKind::Environment, project.clone(), env.clone()),
            )
            .await
        }
        _ => None,
    };
    let current = entry.current_version.as_ref();
    let tags = current
        .and_then(|v| v.get("tags"))
        .cloned()
        .filter(Value::is_array)
        .unwrap_or(Value::Null);
    let env_json = match (&target.environment, &environment) {
        (Some(key), _) if key == "*" || key == "~" => {
            json!({"name": "All environments", "key": "~", "tags": null})
        }
        (Some(key), Some(env)) => json!({"name": env.name, "key": key, "tags": env.tags}),
        (Some(key), None) => json!({"name": "", "key": key, "tags": null}),
        (None, _) => json!({"name": "", "key": "", "tags": null}),
    };
    let project_json = match (&target.project, &project) {
        (Some(key), Some(p)) => {
            json!({"name": p.name, "key": key, "tags": p.tags, "environment": env_json})
        }
        (Some(key), None) => {
            json!({"name": key, "key": key, "tags": null, "environment": env_json})
        }
        (None, _) => json!({"name": "", "key": "", "tags": null, "environment": env_json}),
    };
    let site_path = entry
        .title
        .rsplit_once("](")
        .map(|(_, rest)| rest.trim_end_matches(')').to_string())
        .unwrap_or_default();
    let mut links = Map::new();
    links.insert(
        "self".into(),
        link(
            format!("{base_url}/api/v2/auditlog/{}", entry.id),
            "application/json",
        ),
    );
    links.insert(
        "parent".into(),
        link(format!("{base_url}/api/v2/auditlog"), "application/json"),
    );
    links.insert(
        "details".into(),
        link(
            format!("{base_url}/settings/history/{}/details", entry.id),
            "text/html",
        ),
    );
    if !site_path.is_empty() {
        let site = if site_path.starts_with("http") {
            site_path.clone()
        } else {
            format!("{base_url}{site_path}")
        };
        links.insert("site".into(), link(site, "text/html"));
    }
    let member = match &entry.member {
        Some(m) => {
            let local = m.email.split('@').next().unwrap_or_default();
            json!({
                "_links": {
                    "parent": link(format!("{base_url}/api/v2/members"), "application/json"),
                    "self": link(format!("{base_url}/api/v2/members/{}", m.id), "application/json"),
                },
                "_id": m.id,
                "email": m.email,
                "emailLocalPart": local,
                "firstName": m.first_name.clone().unwrap_or_default(),
                "lastName": m.last_name.clone().unwrap_or_default(),
                "displayName": m.display_name(),
            })
        }
        None => json!({
            "_links": {},
            "_id": "",
            "email": "",
            "emailLocalPart": "",
            "firstName": "Flagstaff",
            "lastName": "",
            "displayName": "Flagstaff",
        }),
    };
    let title_markdown = entry.title.clone();
    let mut event = json!({
        "_links": links,
        "baseURL": base_url,
        "_id": entry.id,
        "_accountId": entry.account_id,
        "timestamp": timestamps(entry.date),
        "kind": target.kind,
        "name": entry.name,
        "details": text_forms(&entry.description),
        "project": project_json,
        "tags": tags,
        "member": member,
        "titleVerb": entry.title_verb,
        "verbKind": entry.accesses.first().map(|a| a.action.clone()).unwrap_or_default(),
        "title": text_forms(&title_markdown),
        "target": {"_links": {}, "name": entry.target.name, "_id": target.key.clone().unwrap_or_default()},
    });
    if let Some(key) = &target.key
        && !matches!(entry.kind.as_str(), "member" | "webhook")
    {
        event["key"] = Value::from(key.clone());
    }
    if let Some(comment) = &entry.comment {
        event["comment"] = Value::from(comment.clone());
    }
    if let Some(properties) = current.and_then(|v| v.get("customProperties"))
        && let Some(properties) = properties.as_object().filter(|p| !p.is_empty())
    {
        event["customProperties"] = template_custom_properties(properties);
    }
    event
}

/// Flags store a custom property as `{name, value: [..]}`; templates read
/// `customProperties.<key>.values` (the catalogue's sample contexts, LaunchDarkly's renders).
fn template_custom_properties(properties: &serde_json::Map<String, Value>) -> Value {
    properties
        .iter()
        .map(|(key, property)| {
            let values = property.get("value").cloned().unwrap_or(json!([]));
            (
                key.clone(),
                json!({"name": property.get("name").cloned().unwrap_or(Value::Null), "values": values}),
            )
        })
        .collect::<serde_json::Map<String, Value>>()
        .into()
}

async fn load<T: serde::de::DeserializeOwned>(store: &dyn Store, target: EntityRef) -> Option<T> {
    let stored = store.get(&target).await.ok().flatten()?;
    serde_json::from_str(&stored.doc).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_match_the_sample_context_forms() {
        assert_eq!(
            timestamps(1_580_777_685_311),
            json!({
                "milliseconds": 1_580_777_685_311_i64,
                "seconds": 1_580_777_685,
                "rfc3339": "2020-02-04T00:54:45Z",
                "simple": "2020-02-04 00:54:45"
            })
        );
    }

    #[test]
    fn markdown_forms() {
        let md = "[Ada](mailto:ada@example.com) turned on [Beta](/p/flags/beta) <now>";
        assert_eq!(markdown_to_plain(md), "Ada turned on Beta <now>");
        assert_eq!(
            markdown_to_html(md),
            "<a href=\"mailto:ada@example.com\">Ada</a> turned on <a href=\"/p/flags/beta\">Beta</a> &lt;now&gt;"
        );
    }
}
