//! Role attributes: `${roleAttribute/name}` placeholders, substituted when a role is assigned to
//! a member or team (LaunchDarkly "role scope"). A member's or team's `roleAttributes` map each
//! attribute name to a list of values; a specifier using an attribute with several values
//! stands for one specifier per value (so `resources` lists grow, and `notResources` lists
//! exclude every value).

use std::collections::BTreeMap;

use crate::spec::{PLACEHOLDER_OPEN, ResourceSpec, is_tag_char, parse_spec};

/// Role attribute values of one role assignment: `{"projectKey": ["default", "mobile"]}`.
pub type RoleAttributes = BTreeMap<String, Vec<String>>;

/// More expansions than this from one specifier (the product over its attributes' value
/// counts) is refused rather than compiled.
pub const MAX_EXPANSIONS: usize = 1024;

pub(crate) enum ExpandError {
    Missing(String),
    Invalid {
        attribute: String,
        value: String,
        message: String,
    },
}

/// The specifiers `spec` stands for under `attributes`: itself when it has no placeholders.
/// Every occurrence of one attribute takes the same value in one expansion.
pub(crate) fn expand(
    spec: &ResourceSpec,
    attributes: &RoleAttributes,
) -> Result<Vec<ResourceSpec>, ExpandError> {
    let names = spec.role_attributes();
    if names.is_empty() {
        return Ok(vec![spec.clone()]);
    }
    let mut choices: Vec<(&str, &[String])> = Vec::with_capacity(names.len());
    let mut total: usize = 1;
    for name in &names {
        let values = match attributes.get(name) {
            Some(v) if !v.is_empty() => v.as_slice(),
            _ => return Err(ExpandError::Missing(name.clone())),
        };
        for value in values {
            // Values are keys: substituting anything else could change the specifier's
            // structure (`a:env/*`) or widen it (`*`).
            if value.is_empty() || !value.chars().all(is_tag_char) {
                return Err(ExpandError::Invalid {
                    attribute: name.clone(),
                    value: value.clone(),
                    message: "role attribute values must be keys: 1 or more letters, digits, '.', '_' or '-'"
                        .into(),
                });
            }
        }
        total = total.saturating_mul(values.len());
        if total > MAX_EXPANSIONS {
            return Err(ExpandError::Invalid {
                attribute: name.clone(),
                value: format!("{} values", values.len()),
                message: format!(
                    "the specifier would expand to more than {MAX_EXPANSIONS} specifiers"
                ),
            });
        }
        choices.push((name, values));
    }
    let text = spec.to_string();
    let mut out = Vec::with_capacity(total);
    let mut pick = vec![0usize; choices.len()];
    loop {
        let mut expanded = text.clone();
        for ((name, values), &i) in choices.iter().zip(&pick) {
            expanded = expanded.replace(&format!("{PLACEHOLDER_OPEN}{name}}}"), &values[i]);
        }
        match parse_spec(&expanded, false) {
            Ok(s) => out.push(s),
            Err(e) => {
                return Err(ExpandError::Invalid {
                    attribute: names.join(","),
                    value: expanded,
                    message: e.to_string(),
                });
            }
        }
        // Next combination (odometer).
        let mut d = 0;
        loop {
            if d == pick.len() {
                return Ok(out);
            }
            pick[d] += 1;
            if pick[d] < choices[d].1.len() {
                break;
            }
            pick[d] = 0;
            d += 1;
        }
    }
}
