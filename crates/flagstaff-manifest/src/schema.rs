//! The project's own JSON Schema for manifests, generated from the model (`crate::model`).
//!
//! Generated once per process and compiled once: `flagstaff integrations schema` prints it,
//! and the lint validates every manifest against it before deserializing so each violation
//! carries a JSON pointer.

use std::sync::OnceLock;

use schemars::Schema;
use schemars::generate::SchemaSettings;
use schemars::transform::{Transform, transform_subschemas};
use serde_json::Value;

use crate::model::Manifest;

/// Optional fields are absent, never `null`, in a manifest: upstream's schema rejects `null`
/// for every optional key, so the generated schema must too.
#[derive(Clone)]
struct RejectNull;

impl Transform for RejectNull {
    fn transform(&mut self, schema: &mut Schema) {
        if let Some(object) = schema.as_object_mut() {
            if let Some(Value::Array(types)) = object.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let only = types.remove(0);
                    object.insert("type".into(), only);
                }
            }
            for key in ["anyOf", "oneOf"] {
                if let Some(Value::Array(options)) = object.get_mut(key) {
                    options.retain(|option| option.get("type") != Some(&Value::from("null")));
                    if options.len() == 1 {
                        let only = options.remove(0);
                        object.remove(key);
                        if let Value::Object(only) = only {
                            for (k, v) in only {
                                object.entry(k).or_insert(v);
                            }
                        }
                    }
                }
            }
        }
        transform_subschemas(self, schema);
    }
}

/// The manifest JSON Schema (draft-07) as a JSON value.
pub fn manifest_schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let generator = SchemaSettings::draft07()
            .with_transform(RejectNull)
            .into_generator();
        let mut schema = generator.into_root_schema_for::<Manifest>();
        schema.insert(
            "$id".into(),
            Value::from("https://flagstaff.dev/schemas/integration-manifest.json"),
        );
        schema.to_value()
    })
}

/// The compiled validator for `manifest_schema()`.
pub(crate) fn validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        jsonschema::draft7::options()
            .should_validate_formats(true)
            .build(manifest_schema())
            .expect("the generated manifest schema is a valid draft-07 schema")
    })
}
