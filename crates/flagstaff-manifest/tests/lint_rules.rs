//! The lint rule suite: the published catalogue lints clean, and each deliberately broken
//! manifest (one per rule, made from a valid fixture) fails with the expected finding.

use std::path::{Path, PathBuf};

use flagstaff_manifest::{LintOptions, SampleContexts, Severity, lint_path, load_integration};
use serde_json::{Value, json};

fn conformance_dir() -> PathBuf {
    std::env::var_os("FLAGSTAFF_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance")
        })
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/base-integration")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A writable copy of the valid fixture integration, named `key`.
struct Fixture {
    _root: tempfile::TempDir,
    dir: PathBuf,
}

impl Fixture {
    fn new(key: &str) -> Fixture {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join(key);
        copy_dir(&fixture_dir(), &dir);
        Fixture { _root: root, dir }
    }

    fn manifest(&self) -> Value {
        serde_json::from_str(&std::fs::read_to_string(self.dir.join("manifest.json")).unwrap())
            .unwrap()
    }

    fn write_manifest(&self, manifest: &Value) {
        std::fs::write(
            self.dir.join("manifest.json"),
            serde_json::to_string_pretty(manifest).unwrap(),
        )
        .unwrap();
    }

    fn edit(&self, change: impl FnOnce(&mut Value)) {
        let mut manifest = self.manifest();
        change(&mut manifest);
        self.write_manifest(&manifest);
    }

    fn write(&self, relative: &str, content: &str) {
        let path = self.dir.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    fn findings(&self) -> Vec<(Severity, String, String, String)> {
        let report = load_integration(
            &self.dir,
            &SampleContexts::builtin(),
            &LintOptions::default(),
        );
        report
            .diagnostics
            .iter()
            .map(|d| {
                (
                    d.severity,
                    d.rule.to_string(),
                    d.pointer.clone(),
                    d.message.clone(),
                )
            })
            .collect()
    }
}

/// Asserts exactly one error finding, with this rule, pointer and message fragment.
#[track_caller]
fn assert_single_error(fixture: &Fixture, rule: &str, pointer: &str, message_fragment: &str) {
    let findings = fixture.findings();
    let errors: Vec<_> = findings
        .iter()
        .filter(|(severity, ..)| *severity == Severity::Error)
        .collect();
    assert_eq!(
        errors.len(),
        1,
        "expected exactly one error ({rule}), got {findings:#?}"
    );
    let (_, found_rule, found_pointer, message) = errors[0];
    assert_eq!(found_rule, rule, "{findings:#?}");
    assert_eq!(found_pointer, pointer, "{findings:#?}");
    assert!(
        message.contains(message_fragment),
        "message {message:?} should contain {message_fragment:?}"
    );
}

#[test]
fn the_fixture_itself_is_clean() {
    let fixture = Fixture::new("lint-fixture");
    assert_eq!(fixture.findings(), vec![]);
}

#[test]
fn malformed_json_names_line_and_column() {
    let fixture = Fixture::new("lint-fixture");
    fixture.write("manifest.json", "{\n  \"name\": \"x\",\n  oops\n}");
    assert_single_error(&fixture, "manifest-json", "", "line 3, column 3");
}

#[test]
fn invalid_utf8_manifest() {
    let fixture = Fixture::new("lint-fixture");
    std::fs::write(fixture.dir.join("manifest.json"), b"{\"name\": \"\xff\"}").unwrap();
    assert_single_error(&fixture, "manifest-json", "", "not valid UTF-8");
}

#[test]
fn missing_manifest() {
    let fixture = Fixture::new("lint-fixture");
    std::fs::remove_file(fixture.dir.join("manifest.json")).unwrap();
    assert_single_error(
        &fixture,
        "manifest-json",
        "",
        "every integration directory needs one",
    );
}

#[test]
fn unknown_top_level_key() {
    let fixture = Fixture::new("lint-fixture");
    fixture.edit(|m| m["colour"] = json!("blue"));
    assert_single_error(&fixture, "manifest-schema", "", "unknown key `colour`");
}

#[test]
fn unknown_key_in_a_capability() {
    let fixture = Fixture::new("lint-fixture");
    fixture.edit(|m| m["capabilities"]["auditLogEventsHook"]["retries"] = json!(3));
    assert_single_error(
        &fixture,
        "manifest-schema",
        "/capabilities/auditLogEventsHook",
        "unknown key `retries`",
    );
}

#[test]
fn unknown_capability() {
    let fixture = Fixture::new("lint-fixture");
    fixture.edit(|m| m["capabilities"]["smokeSignals"] = json!({}));
    assert_single_error(
        &fixture,
        "manifest-schema",
        "/capabilities",
        "`smokeSignals`",
    );
}

#[test]
fn missing_required_key() {
    let fixture = Fixture::new("lint-fixture");
    fixture.edit(|m| {
        m.as_object_mut().unwrap().remove("author");
    });
    assert_single_error(&fixture, "manifest-schema", "", "\"author\"");
}

#[test]
fn name_too_short() {
    let fixture = Fixture::new("lint-fixture");
    fixture.edit(|m| m["name"] = json!("ab"));
    assert_single_error(&fixture, "manifest-schema", "/name", "shorter than 3");
}

#[test]
fn version_not_semver() {
    let fixture = Fixture::new("lint-fixture");
    fixture.edit(|m| m["version"] = json!("1.0.x"));
    assert_single_error(&fixture, "manifest-schema", "/version", "does not match");
}

#[test]
fn unknown_category() {
    let fixture = Fixture::new("lint-fixture");
    fixture.edit(|m| m["categories"] = json!(["weather"]));
    assert_single_error(&fixture, "manifest-schema", "/categories/0", "\"weather\"");
}

#[test]
fn too_many_categories() {
    let fixture = Fixture::new("lint-fixture");
    fixture.edit(|m| m["categories"] = json!(["data", "ai", "automation", "monitoring"]));
    assert_single_error(&fixture, "manifest-schema", "/categories", "more than 3");
}

#[test]
fn link_not_http() {
    let fixture = Fixture::new("lint-fixture");
    fixture.edit(|m| m["links"]["site"] = json!("ftp://flagstaff.dev"));
    assert_single_error(&fixture, "manifest-schema", "/links/site", "does not match");
}

#[test]
fn null_instead_of_absent() {
    let fixture = Fixture::new("lint-fixture");
    fixture.edit(|m| m["details"] = json!(null));
    assert_single_error(&fixture, "manifest-schema", "/details", "null");
}

#[test]
fn icon_must_be_svg() {
    let fixture = Fixture::new("lint-fixture");
    fixture.edit(|m| m["icons"]["square"] = json!("assets/images/square.png"));
    assert_single_error(
        &fixture,
        "manifest-schema",
        "/icons/square",
        "does not match",
    );
}

#[test]
fn icon_file_missing() {
    let fixture = Fixture::new("lint-fixture");
    std::fs::remove_file(fixture.dir.join("assets/images/horizontal.svg")).unwrap();
    assert_single_error(
        &fixture,
        "icon-exists",
        "/icons/horizontal",
        "icon file `assets/images/horizontal.svg` does not exist",
    );
}

#[test]
fn overview_without_period() {
    let fixture = Fixture::new("lint-fixture");
    fixture.edit(|m| m["overview"] = json!("Sends signed change events"));
    assert_single_error(
        &fixture,
        "overview-period",
        "/overview",
        "must end with a period",
    );
}

#[test]
fn default_value_requires_optional() {
    let fixture = Fixture::new("lint-fixture");
    fixture.edit(|m| m["formVariables"][0]["defaultValue"] = json!("https://example.com"));
    assert_single_error(
        &fixture,
        "form-variable-default-value",
        "/formVariables/0/defaultValue",
        "\"defaultValue\" is only valid if \"isOptional\" is true",
    );
}

#[test]
fn optional_requires_default_value() {
    let fixture = Fixture::new("lint-fixture");
    fixture.edit(|m| {
        m["formVariables"][3]
            .as_object_mut()
            .unwrap()
            .remove("defaultValue");
    });
    assert_single_error(
        &fixture,
        "form-variable-optional-default",
        "/formVariables/3/isOptional",
        "needs a \"defaultValue\"",
    );
}

#[test]
fn default_value_type_must_match() {
    let fixture = Fixture::new("lint-fixture");
    fixture.edit(|m| m["formVariables"][3]["defaultValue"] = json!("yes"));
    assert_single_error(
        &fixture,
        "form-variable-default-type",
        "/formVariables/3/defaultValue",
        "must be a boolean",
    );
}

#[test]
fn enum_default_must_be_allowed() {
    let fixture = Fixture::new("lint-fixture");
    fixture.edit(|m| m["formVariables"][2]["defaultValue"] = json!("apac"));
    assert_single_error(
        &fixture,
        "form-variable-default-allowed",
        "/formVariables/2/defaultValue",
        "not one of allowedValues",
    );
}

#[test]
fn enum_needs_allowed_values() {
    let fixture = Fixture::new("lint-fixture");
    fixture.edit(|m| {
        m["formVariables"][2]
            .as_object_mut()
            .unwrap()
            .remove("allowedValues");
    });
    assert_single_error(
        &fixture,
        "form-variable-enum-values",
        "/formVariables/2",
        "non-empty \"allowedValues\"",
    );
}

#[test]
fn secret_only_on_strings() {
    let fixture = Fixture::new("lint-fixture");
    fixture.edit(|m| m["formVariables"][3]["isSecret"] = json!(true));
    assert_single_error(
        &fixture,
        "form-variable-secret-string",
        "/formVariables/3/isSecret",
        "only `string` form variables can be secret",
    );
}

#[test]
fn dynamic_enum_needs_dynamic_options() {
    let fixture = Fixture::new("lint-fixture");
    fixture.edit(|m| {
        m["formVariables"]
            .as_array_mut()
            .unwrap()
            .push(json!({"key": "team", "name": "Team", "type": "dynamicEnum", "description": "Pick a team."}))
    });
    assert_single_error(
        &fixture,
        "form-variable-dynamic-options",
        "/formVariables/4",
        "needs \"dynamicOptions\"",
    );
}

#[test]
fn dynamic_options_only_on_dynamic_enum() {
    let fixture = Fixture::new("lint-fixture");
    fixture.edit(|m| {
        m["formVariables"][1]["dynamicOptions"] = json!({
            "endpoint": {"url": "https://example.com/teams", "method": "GET"},
            "parser": {"optionsPath": "/teams", "optionsItems": {"label": "/name", "value": "/id"}}
        })
    });
    assert_single_error(
        &fixture,
        "form-variable-dynamic-options",
        "/formVariables/1/dynamicOptions",
        "only valid on `dynamicEnum`",
    );
}

#[test]
fn multiselect_needs_options_and_no_default() {
    let fixture = Fixture::new("lint-fixture");
    fixture.edit(|m| {
        m["formVariables"].as_array_mut().unwrap().push(json!({
            "key": "events", "name": "Events", "type": "multiselect", "description": "Which events.",
            "multiselectOptions": [{"label": "Flags", "value": "flag"}],
            "allowedValues": ["flag"]
        }))
    });
    assert_single_error(
        &fixture,
        "form-variable-multiselect",
        "/formVariables/4/allowedValues",
        "must not set \"allowedValues\"",
    );
}

#[test]
fn environment_selector_restrictions() {
    let fixture = Fixture::new("lint-fixture");
    fixture.edit(|m| {
        m["formVariables"].as_array_mut().unwrap().push(json!({
            "key": "envs", "name": "Environments", "type": "environmentSelector",
            "description": "Which environments.", "multiselectDefaultOptions": ["production"]
        }))
    });
    assert_single_error(
        &fixture,
        "form-variable-environment-selector",
        "/formVariables/4/multiselectDefaultOptions",
        "must not set \"multiselectDefaultOptions\"",
    );
}

#[test]
fn form_variable_keys_are_unique() {
    let fixture = Fixture::new("lint-fixture");
    fixture.edit(|m| m["formVariables"][1]["key"] = json!("url"));
    let findings = fixture.findings();
    assert!(
        findings
            .iter()
            .any(|(s, rule, pointer, _)| *s == Severity::Error
                && rule == "form-variable-unique-key"
                && pointer == "/formVariables/1/key"),
        "{findings:#?}"
    );
}

#[test]
fn form_variable_key_without_whitespace() {
    let fixture = Fixture::new("lint-fixture");
    fixture.edit(|m| m["formVariables"][2]["key"] = json!("the region"));
    assert_single_error(
        &fixture,
        "manifest-schema",
        "/formVariables/2/key",
        "does not match",
    );
}

#[test]
fn hmac_key_must_name_a_form_variable() {
    let fixture = Fixture::new("lint-fixture");
    fixture.edit(|m| {
        m["capabilities"]["auditLogEventsHook"]["endpoint"]["hmacSignature"]["hmacSecretFormVariableKey"] =
            json!("signingKey")
    });
    assert_single_error(
        &fixture,
        "hmac-signature",
        "/capabilities/auditLogEventsHook/endpoint/hmacSignature/hmacSecretFormVariableKey",
        "names no form variable",
    );
}

#[test]
fn hmac_key_must_be_a_secret_string() {
    let fixture = Fixture::new("lint-fixture");
    fixture.edit(|m| m["formVariables"][1]["isSecret"] = json!(false));
    assert_single_error(
        &fixture,
        "hmac-signature",
        "/capabilities/auditLogEventsHook/endpoint/hmacSignature/hmacSecretFormVariableKey",
        "\"isSecret\": true",
    );
}

#[test]
fn requires_oauth_must_be_registered() {
    let fixture = Fixture::new("lint-fixture");
    fixture.edit(|m| {
        m["requiresOAuth"] = json!(true);
        m["oauthIntegrationKey"] = json!("lint-fixture");
    });
    assert_single_error(
        &fixture,
        "oauth-integration-registered",
        "/requiresOAuth",
        "--allow-oauth lint-fixture",
    );
    let allowed = LintOptions {
        oauth_integrations: vec!["lint-fixture".into()],
    };
    let report = load_integration(&fixture.dir, &SampleContexts::builtin(), &allowed);
    assert!(!report.has_errors(), "{:#?}", report.diagnostics);
}

#[test]
fn include_error_response_body_needs_a_fixed_host() {
    let fixture = Fixture::new("lint-fixture");
    fixture.edit(|m| {
        m["capabilities"]["auditLogEventsHook"]["endpoint"]["url"] = json!("{{url}}/events");
        m["capabilities"]["auditLogEventsHook"]["includeErrorResponseBody"] = json!(true);
    });
    assert_single_error(
        &fixture,
        "include-error-response-body",
        "/capabilities/auditLogEventsHook/includeErrorResponseBody",
        "Make `url` an enum",
    );
    // An enum host is fine.
    fixture.edit(|m| {
        m["capabilities"]["auditLogEventsHook"]["endpoint"]["url"] =
            json!("https://{{region}}.flagstaff.dev/events");
    });
    assert!(!fixture.findings().iter().any(|f| f.0 == Severity::Error));
}

#[test]
fn standard_payload_excludes_templates() {
    let fixture = Fixture::new("lint-fixture");
    fixture.edit(|m| {
        m["capabilities"]["auditLogEventsHook"]["useStandardWebhookPayload"] = json!(true);
        m["capabilities"]["auditLogEventsHook"]["templates"] = json!({});
    });
    assert_single_error(
        &fixture,
        "standard-payload-templates",
        "/capabilities/auditLogEventsHook/useStandardWebhookPayload",
        "remove the integration's templates/ directory",
    );
    fixture.edit(|m| {
        m["capabilities"]["auditLogEventsHook"]["templates"] =
            json!({"default": "templates/default.json.hbs"});
    });
    std::fs::remove_dir_all(fixture.dir.join("templates")).unwrap();
    let findings = fixture.findings();
    assert!(
        findings.iter().any(|f| f.1 == "standard-payload-templates"
            && f.2 == "/capabilities/auditLogEventsHook/templates"),
        "{findings:#?}"
    );
}

#[test]
fn referenced_template_must_exist() {
    let fixture = Fixture::new("lint-fixture");
    fixture.edit(|m| {
        m["capabilities"]["auditLogEventsHook"]["templates"]["flag"] =
            json!("templates/flag.json.hbs")
    });
    assert_single_error(
        &fixture,
        "template-exists",
        "/capabilities/auditLogEventsHook/templates/flag",
        "template file `templates/flag.json.hbs` does not exist",
    );
}

#[test]
fn template_must_parse() {
    let fixture = Fixture::new("lint-fixture");
    fixture.write(
        "templates/default.json.hbs",
        "{\n  \"a\": \"{{#if kind}}{{kind}}\"\n}\n",
    );
    assert_single_error(&fixture, "template-parse", "", "does not parse");
}

#[test]
fn inline_template_must_parse() {
    let fixture = Fixture::new("lint-fixture");
    fixture.edit(|m| {
        m["capabilities"]["auditLogEventsHook"]["endpoint"]["url"] = json!("{{url}}/{{#each}}")
    });
    assert_single_error(
        &fixture,
        "template-parse",
        "/capabilities/auditLogEventsHook/endpoint/url",
        "does not parse",
    );
}

#[test]
fn template_must_render_strictly() {
    let fixture = Fixture::new("lint-fixture");
    fixture.write(
        "templates/default.json.hbs",
        "{\"owner\": \"{{{project.owner.email}}}\"}\n",
    );
    let findings = fixture.findings();
    let errors: Vec<_> = findings.iter().filter(|f| f.0 == Severity::Error).collect();
    assert!(
        !errors.is_empty() && errors.iter().all(|f| f.1 == "template-render"),
        "{findings:#?}"
    );
    assert!(errors[0].3.contains("guard optional fields"));
}

#[test]
fn json_template_must_render_json() {
    let fixture = Fixture::new("lint-fixture");
    fixture.write("templates/default.json.hbs", "{\"kind\": \"{{kind}}\",}\n");
    let findings = fixture.findings();
    assert!(
        findings
            .iter()
            .all(|f| f.0 != Severity::Error || f.1 == "template-json"),
        "{findings:#?}"
    );
    assert!(
        findings
            .iter()
            .any(|f| f.1 == "template-json" && f.3.contains("invalid JSON"))
    );
}

#[test]
fn validation_template_must_not_be_empty() {
    let fixture = Fixture::new("lint-fixture");
    fixture.write("templates/validation.txt.hbs", "{{#if nothing}}x{{/if}}\n");
    fixture.edit(|m| {
        m["capabilities"]["auditLogEventsHook"]["templates"]["validation"] =
            json!("templates/validation.txt.hbs")
    });
    assert_single_error(
        &fixture,
        "template-non-empty",
        "/capabilities/auditLogEventsHook/templates/validation",
        "renders an empty body",
    );
}

#[test]
fn endpoint_templates_must_render() {
    let fixture = Fixture::new("lint-fixture");
    fixture.edit(|m| {
        m["capabilities"]["auditLogEventsHook"]["endpoint"]["headers"][1]["value"] =
            json!("{{apiKey}}")
    });
    assert_single_error(
        &fixture,
        "endpoint-render",
        "/capabilities/auditLogEventsHook/endpoint/headers/1/value",
        "header `X-Region`",
    );
}

#[test]
fn endpoint_required_without_custom_delivery() {
    let fixture = Fixture::new("lint-fixture");
    fixture.edit(|m| {
        m["capabilities"]["auditLogEventsHook"]
            .as_object_mut()
            .unwrap()
            .remove("endpoint");
    });
    assert_single_error(
        &fixture,
        "endpoint-required",
        "/capabilities/auditLogEventsHook",
        "unless \"deliveryMethod\" is `custom`",
    );
}

#[test]
fn capabilities_or_other_capabilities() {
    let fixture = Fixture::new("lint-fixture");
    fixture.edit(|m| {
        m.as_object_mut().unwrap().remove("capabilities");
    });
    std::fs::remove_dir_all(fixture.dir.join("templates")).unwrap();
    assert_single_error(&fixture, "capabilities-required", "", "otherCapabilities");
    fixture.edit(|m| m["otherCapabilities"] = json!(["webhooks"]));
    assert_eq!(fixture.findings(), vec![]);
}

fn with_synced_segment(fixture: &Fixture, parser: Value) {
    fixture.edit(|m| {
        m["capabilities"]["syncedSegment"] = json!({ "requestParser": parser });
    });
}

#[test]
fn synced_segment_add_requires_remove() {
    let fixture = Fixture::new("lint-fixture");
    with_synced_segment(
        &fixture,
        json!({
            "environmentIdPath": "/env", "cohortIdPath": "/id", "cohortNamePath": "/name",
            "addMemberArrayPath": "/add", "memberArrayParser": {"memberIdPath": "/id"}
        }),
    );
    assert_single_error(
        &fixture,
        "synced-segment-add-remove",
        "/capabilities/syncedSegment/requestParser/addMemberArrayPath",
        "requires \"removeMemberArrayPath\"",
    );
}

#[test]
fn synced_segment_modes_do_not_mix() {
    let fixture = Fixture::new("lint-fixture");
    with_synced_segment(
        &fixture,
        json!({
            "environmentIdPath": "/env", "cohortIdPath": "/id", "cohortNamePath": "/name",
            "addMemberArrayPath": "/add", "removeMemberArrayPath": "/remove",
            "memberArrayPath": "/members", "memberArrayParser": {"memberIdPath": "/id"}
        }),
    );
    assert_single_error(
        &fixture,
        "synced-segment-modes",
        "/capabilities/syncedSegment/requestParser/memberArrayPath",
        "choose one payload mode",
    );
}

#[test]
fn synced_segment_array_inclusion_needs_members() {
    let fixture = Fixture::new("lint-fixture");
    with_synced_segment(
        &fixture,
        json!({
            "environmentIdPath": "/env", "cohortIdPath": "/id", "cohortNamePath": "/name",
            "addMemberArrayPath": "/add", "removeMemberArrayPath": "/remove",
            "arrayInclusion": {"path": "/action", "matcher": "^add$"},
            "memberArrayParser": {"memberIdPath": "/id"}
        }),
    );
    let findings = fixture.findings();
    assert!(
        findings
            .iter()
            .any(|f| f.1 == "synced-segment-array-inclusion"),
        "{findings:#?}"
    );
}

#[test]
fn synced_segment_boolean_membership_needs_member_array() {
    let fixture = Fixture::new("lint-fixture");
    with_synced_segment(
        &fixture,
        json!({
            "environmentIdPath": "/env", "cohortIdPath": "/id", "cohortNamePath": "/name",
            "addMemberArrayPath": "/add", "removeMemberArrayPath": "/remove",
            "memberArrayParser": {"memberIdPath": "/id", "booleanMembershipPath": "/in"}
        }),
    );
    assert_single_error(
        &fixture,
        "synced-segment-boolean-membership",
        "/capabilities/syncedSegment/requestParser/memberArrayParser/booleanMembershipPath",
        "requires \"memberArrayPath\"",
    );
}

#[test]
fn synced_segment_paths_are_json_pointers() {
    let fixture = Fixture::new("lint-fixture");
    with_synced_segment(
        &fixture,
        json!({
            "environmentIdPath": "/env", "cohortIdPath": "/batch[0]/cohortId",
            "cohortNamePath": "/name", "memberArrayPath": "/batch",
            "memberArrayParser": {"memberIdPath": "/id", "booleanMembershipPath": "/in"}
        }),
    );
    // `/batch[0]/cohortId` starts with `/` and is a valid (if unusual) pointer; a path
    // without the leading slash is not.
    assert_eq!(
        fixture
            .findings()
            .iter()
            .filter(|f| f.0 == Severity::Error)
            .count(),
        0
    );
    with_synced_segment(
        &fixture,
        json!({
            "environmentIdPath": "env.id", "cohortIdPath": "/id", "cohortNamePath": "/name",
            "memberArrayPath": "/batch",
            "memberArrayParser": {"memberIdPath": "/id", "booleanMembershipPath": "/in"}
        }),
    );
    assert_single_error(
        &fixture,
        "json-pointer",
        "/capabilities/syncedSegment/requestParser/environmentIdPath",
        "is not a JSON pointer",
    );
}

#[test]
fn matchers_must_be_valid_regular_expressions() {
    let fixture = Fixture::new("lint-fixture");
    fixture.edit(|m| {
        m["capabilities"]["trigger"] = json!({
            "documentation": "https://flagstaff.dev/docs/triggers",
            "testEventNameRegexp": "(test"
        })
    });
    assert_single_error(
        &fixture,
        "regexp-valid",
        "/capabilities/trigger/testEventNameRegexp",
        "not a valid regular expression",
    );
}

fn with_feature_store(fixture: &Fixture, method: &str, header: &str) {
    fixture.edit(|m| {
        m["capabilities"]["featureStore"] = json!({
            "formVariables": [
                {"key": "hostname", "name": "Host", "type": "string", "description": "Host."},
                {"key": "clientSecret", "name": "Secret", "type": "string", "description": "Secret.", "isSecret": true}
            ],
            "featureStoreRequest": {
                "endpoint": {
                    "url": "https://{{hostname}}/kv/items/{{_featureStoreKey}}",
                    "method": method,
                    "headers": [{"name": "Authorization", "value": header}]
                }
            }
        })
    });
}

#[test]
fn edgegrid_signs_the_request_it_is_sent_with() {
    let fixture = Fixture::new("lint-fixture");
    let good = "{{edgeGridAuth 'PUT' '/kv/items/{{_featureStoreKey}}' hostname clientSecret}}";
    with_feature_store(&fixture, "PUT", good);
    let errors: Vec<_> = fixture
        .findings()
        .into_iter()
        .filter(|f| f.1 == "edgegrid-auth")
        .collect();
    assert_eq!(errors, vec![]);
    with_feature_store(&fixture, "POST", good);
    assert!(
        fixture
            .findings()
            .iter()
            .any(|f| f.1 == "edgegrid-auth" && f.3.contains("cannot sign POST"))
    );
    let wrong_path = "{{edgeGridAuth 'PUT' '/kv/other' hostname clientSecret}}";
    with_feature_store(&fixture, "PUT", wrong_path);
    assert!(fixture.findings().iter().any(|f| f.1 == "edgegrid-auth"
        && f.2 == "/capabilities/featureStore/featureStoreRequest/endpoint/headers/0/value"
        && f.3.contains("signs path `/kv/other`")));
}

#[test]
fn flag_link_templates_use_declared_metadata() {
    let fixture = Fixture::new("lint-fixture");
    fixture.edit(|m| {
        m["capabilities"]["flagLink"] = json!({
            "header": "Tickets",
            "emptyState": {"title": "No tickets."},
            "metadata": {"ticketKey": {"type": "string"}},
            "uiBlocks": {"name": "{{{metadata.ticketKey}}} by {{{metadata.author}}}"}
        })
    });
    assert_single_error(
        &fixture,
        "flag-link-render",
        "/capabilities/flagLink/uiBlocks/name",
        "declared `metadata` keys",
    );
}

#[test]
fn shared_oauth_integration_keys_are_reported() {
    let root = tempfile::tempdir().unwrap();
    for key in ["alpha-app", "beta-app"] {
        let dir = root.path().join(key);
        copy_dir(&fixture_dir(), &dir);
        let mut manifest: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap())
                .unwrap();
        manifest["requiresOAuth"] = json!(true);
        manifest["oauthIntegrationKey"] = json!("shared-key");
        std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
    }
    let options = LintOptions {
        oauth_integrations: vec!["alpha-app".into(), "beta-app".into()],
    };
    let report = lint_path(root.path(), Some(&SampleContexts::builtin()), &options).unwrap();
    let shared: Vec<_> = report
        .catalogue
        .iter()
        .filter(|d| d.rule == "oauth-integration-key-unique")
        .collect();
    assert_eq!(shared.len(), 2, "{:#?}", report.catalogue);
    assert!(shared[0].message.contains("alpha-app, beta-app"));
}

#[test]
fn the_published_catalogue_lints_clean() {
    let catalogue = conformance_dir().join("integration-framework/integrations");
    let report = lint_path(&catalogue, None, &LintOptions::default()).unwrap();
    let errors: Vec<String> = report
        .diagnostics()
        .filter(|d| d.is_error())
        .map(|d| d.to_string())
        .collect();
    let warnings: Vec<String> = report
        .diagnostics()
        .filter(|d| !d.is_error())
        .map(|d| d.to_string())
        .collect();
    let mut summary = format!(
        "catalogue lint: {} integrations, {} errors, {} warnings\n",
        report.integrations.len(),
        errors.len(),
        warnings.len(),
    );
    for warning in &warnings {
        summary.push_str(&format!("  {warning}\n"));
    }
    println!("{summary}");
    write_report("catalogue-lint.txt", &summary);
    assert!(report.integrations.len() >= 100);
    assert!(
        report.samples.is_some(),
        "the catalogue's sample contexts were not found"
    );
    assert!(errors.is_empty(), "{errors:#?}");
}

/// The test runner hides a passing test's output; the suite script prints these files.
fn write_report(name: &str, text: &str) {
    if let Some(dir) = std::env::var_os("FLAGSTAFF_REPORT_DIR") {
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(Path::new(&dir).join(name), text);
    }
}
