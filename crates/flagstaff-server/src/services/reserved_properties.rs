//! Reserved custom properties (`capabilities.reservedCustomProperties`): an integration that
//! is configured (has an enabled configuration) reserves flag custom-property keys its
//! templates read as `customProperties.<key>.values`. Flags may use such a key only with the
//! reserved name, and with values the templates can use.

use std::collections::BTreeMap;

use flagstaff_model::flag::CustomProperty;
use flagstaff_store::EntityKind;
use serde::Serialize;

use super::Services;
use crate::error::{ApiError, ApiResult};
use crate::integrations::SubscriptionDoc;

/// One reserved property and the integration that reserves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReservedProperty {
    pub integration_key: String,
    pub key: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl Services {
    /// The properties reserved by integrations with at least one enabled configuration,
    /// ordered by key, then integration.
    pub async fn reserved_custom_properties(&self) -> ApiResult<Vec<ReservedProperty>> {
        let Some(integrations) = &self.delivery else {
            return Ok(Vec::new());
        };
        let catalogue = integrations.catalogue.current();
        let mut out = Vec::new();
        for integration in catalogue.iter() {
            let Some(reserved) = integration
                .manifest
                .capabilities
                .as_ref()
                .and_then(|c| c.reserved_custom_properties.as_ref())
            else {
                continue;
            };
            let enabled = self
                .store
                .list(EntityKind::IntegrationConfig, &integration.key)
                .await?
                .iter()
                .filter_map(|e| serde_json::from_str::<SubscriptionDoc>(&e.doc).ok())
                .any(|doc| doc.on);
            if !enabled {
                continue;
            }
            out.extend(reserved.iter().map(|p| ReservedProperty {
                integration_key: integration.key.clone(),
                key: p.key.clone(),
                name: p.name.clone(),
                description: p.description.clone(),
            }));
        }
        out.sort_by(|a, b| (&a.key, &a.integration_key).cmp(&(&b.key, &b.integration_key)));
        Ok(out)
    }

    /// Refuses a flag's custom properties that use a reserved key with another name or with
    /// empty values. Only properties this change sets or alters are judged, so a flag written
    /// before an integration was configured keeps working until its property is edited.
    pub(crate) async fn check_reserved_custom_properties(
        &self,
        before: Option<&BTreeMap<String, CustomProperty>>,
        after: &BTreeMap<String, CustomProperty>,
    ) -> ApiResult<()> {
        let changed: Vec<(&String, &CustomProperty)> = after
            .iter()
            .filter(|(key, property)| before.and_then(|b| b.get(*key)) != Some(*property))
            .collect();
        if changed.is_empty() {
            return Ok(());
        }
        let reserved = self.reserved_custom_properties().await?;
        for (key, property) in changed {
            let owners: Vec<&ReservedProperty> =
                reserved.iter().filter(|r| &r.key == key).collect();
            check_reserved(key, property, &owners)?;
        }
        Ok(())
    }
}

/// One property against the reservations of its key (none: anything goes).
fn check_reserved(
    key: &str,
    property: &CustomProperty,
    owners: &[&ReservedProperty],
) -> ApiResult<()> {
    let Some(first) = owners.first() else {
        return Ok(());
    };
    if !owners.iter().any(|r| r.name == property.name) {
        return Err(ApiError::invalid(format!(
            "custom property \"{key}\" is reserved by the {} integration as \"{}\": set its \
             name to \"{}\" (it was \"{}\")",
            first.integration_key, first.name, first.name, property.name
        )));
    }
    if let Some(i) = property.value.iter().position(|v| v.trim().is_empty()) {
        return Err(ApiError::invalid(format!(
            "custom property \"{key}\" (reserved by the {} integration) has an empty value at \
             value[{i}]: the integration sends these values, give each one text",
            first.integration_key
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reserved(integration: &str, key: &str, name: &str) -> ReservedProperty {
        ReservedProperty {
            integration_key: integration.into(),
            key: key.into(),
            name: name.into(),
            description: None,
        }
    }

    fn property(name: &str, values: &[&str]) -> CustomProperty {
        CustomProperty {
            name: name.into(),
            value: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    #[test]
    fn reserved_keys_need_the_reserved_name_and_real_values() {
        let dd = reserved("datadog", "datadog", "Datadog tags");
        assert!(check_reserved("datadog", &property("Datadog tags", &["a:b"]), &[&dd]).is_ok());
        let wrong = check_reserved("datadog", &property("DD", &["a"]), &[&dd]).unwrap_err();
        assert!(wrong.to_string().contains("\"Datadog tags\""), "{wrong}");
        assert!(wrong.to_string().contains("\"datadog\""), "{wrong}");
        let empty =
            check_reserved("datadog", &property("Datadog tags", &["a", " "]), &[&dd]).unwrap_err();
        assert!(empty.to_string().contains("value[1]"), "{empty}");
        // Not reserved: anything goes.
        assert!(check_reserved("mine", &property("", &[""]), &[]).is_ok());
        // Reserved by two integrations: either name is accepted.
        let private = reserved("datadog-private", "datadog", "Datadog private tags");
        assert!(
            check_reserved(
                "datadog",
                &property("Datadog private tags", &["x"]),
                &[&dd, &private]
            )
            .is_ok()
        );
    }
}
