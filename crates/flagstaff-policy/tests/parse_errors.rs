//! Parse errors name the statement, the field, the item and the 0-based character position.

use flagstaff_policy::{
    CompiledPolicy, PolicyError, Resource, ResourceSpec, RoleAttributes, parse_policy_str,
};

/// (specifier, position, words the message must contain)
const BAD_SPECIFIERS: &[(&str, usize, &str)] = &[
    ("", 0, "expected a resource specifier"),
    ("proj", 4, "type/name"),
    ("proj/", 5, "expected a name"),
    ("proj/a b", 6, "whitespace"),
    (" proj/a", 0, "whitespace"),
    ("proj/a ", 6, "whitespace"),
    (
        "flag/*",
        0,
        "not a top-level resource type: it is written proj/*:env/*:flag/*",
    ),
    ("proj/*:flag/*", 7, "cannot be nested in \"proj\""),
    ("proj/*:env/*:metric/*", 13, "it is written proj/*:metric/*"),
    (
        "member/*:token/*:token/*",
        17,
        "cannot be nested in \"token\"",
    ),
    ("acct:proj/*", 5, "cannot be nested in \"acct\""),
    ("projects/*", 0, "unknown resource type \"projects\""),
    ("Proj/*", 0, "unknown resource type \"Proj\""),
    ("proj/*:env/*;qa_*:/flag/*", 18, "expected a resource type"),
    ("proj/*:", 7, "expected a resource type"),
    ("proj/*::env/*", 7, "expected a resource type"),
    ("proj/a/b", 6, "unexpected '/' in a name"),
    ("proj/a,b", 6, "tags and selectors follow ';'"),
    ("proj/*;", 7, "expected a tag"),
    ("proj/*;a,,b", 9, "expected a tag"),
    ("proj/*;a,", 9, "expected a tag"),
    ("proj/*;tag1;tag2", 11, "expected ','"),
    ("proj/*;a b", 8, "whitespace"),
    ("proj/*;t@g", 8, "expected ','"),
    ("proj/*:env/*;{critical:true:flag/*", 27, "expected '}'"),
    (
        "proj/*:env/*;{critical}",
        22,
        "expected ':' between the property name and its value",
    ),
    ("proj/*:env/*;{:true}", 14, "expected a property name"),
    ("proj/*:env/*;{critical:}", 23, "expected a property value"),
    ("proj/*:env/*;{critical:true", 27, "expected '}'"),
    ("acct/x", 4, "acct names the account itself"),
    ("acct;x", 4, "acct names the account itself"),
    (
        "proj/${roleAttr/x}",
        5,
        "expected a ${roleAttribute/<name>} placeholder",
    ),
    (
        "proj/${roleAttribute/x",
        22,
        "expected '}' to close ${roleAttribute/<name>}",
    ),
    (
        "proj/${roleAttribute/}",
        21,
        "expected a role attribute name",
    ),
    ("proj/$", 5, "unexpected '$'"),
    ("proj/*:env/*:flag/*;view:frontend", 20, "view selectors"),
    // Positions count characters, not bytes.
    ("proj/é:env/ü:flag/", 18, "expected a name"),
    ("proj/日本:env/*:flag/* x", 20, "whitespace"),
];

#[test]
fn specifier_errors_report_the_position() {
    for (text, position, words) in BAD_SPECIFIERS {
        let err = text
            .parse::<ResourceSpec>()
            .expect_err(&format!("{text:?} should not parse"));
        assert_eq!(err.position, *position, "{text:?}: {err}");
        assert!(err.message.contains(words), "{text:?}: {err}");
    }
}

#[test]
fn statement_errors_name_statement_field_item_and_position() {
    for (text, position, words) in BAD_SPECIFIERS {
        let policy = serde_json::json!([
            {"effect": "allow", "actions": ["*"], "resources": ["proj/*"]},
            {"effect": "deny", "actions": ["*"], "notResources": ["proj/ok", text]},
        ]);
        match parse_policy_str(&policy.to_string()) {
            Err(PolicyError::Syntax {
                statement,
                field,
                item,
                position: p,
                message,
            }) => {
                assert_eq!(
                    (statement, field.as_str(), item, p),
                    (1, "notResources", 1, *position),
                    "{text:?}"
                );
                assert!(message.contains(words), "{text:?}: {message}");
            }
            other => panic!("{text:?}: {other:?}"),
        }
    }
    let err = parse_policy_str(
        r#"[{"effect":"allow","actions":["*"],"resources":["proj/*;{critical:true"]}]"#,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "statement 0: resources[0]: at character 21: expected '}' to close the property selector, found the end"
    );
    assert_eq!(err.statement(), Some(0));
    assert_eq!(err.field(), Some("resources"));
    assert_eq!(err.position(), Some(21));
}

#[test]
fn action_errors() {
    for (action, position, words) in [
        ("", 0, "expected an action"),
        ("update On", 6, "whitespace"),
        ("update-On", 6, "'-'"),
        ("*:*", 1, "':'"),
        (" updateOn", 0, "whitespace"),
    ] {
        let policy = serde_json::json!([
            {"effect": "allow", "actions": ["*"], "resources": ["proj/*"]},
            {"effect": "allow", "actions": ["*"], "resources": ["proj/*"]},
            {"effect": "allow", "notActions": ["updateOn", action], "resources": ["proj/*"]},
        ]);
        let err = parse_policy_str(&policy.to_string()).unwrap_err();
        let PolicyError::Syntax {
            statement,
            field,
            item,
            position: p,
            message,
        } = &err
        else {
            panic!("{action:?}: {err:?}")
        };
        assert_eq!(
            (*statement, field.as_str(), *item, *p),
            (2, "notActions", 1, position)
        );
        assert!(message.contains(words), "{action:?}: {message}");
    }
}

#[test]
fn shape_errors() {
    for (policy, statement, field, words) in [
        (
            r#"{"effect":"allow"}"#,
            None,
            None,
            "a policy must be a JSON array",
        ),
        (r#"[1]"#, Some(0), None, "must be a JSON object"),
        (
            r#"[{"effect":"allow","action":["*"],"resources":["proj/*"]}]"#,
            Some(0),
            Some("action"),
            "unknown field",
        ),
        (
            r#"[{"effect":"allow","actions":["*"],"resources":["proj/*"],"role_name":"x"}]"#,
            Some(0),
            Some("role_name"),
            "unknown field",
        ),
        (
            r#"[{"actions":["*"],"resources":["proj/*"]}]"#,
            Some(0),
            Some("effect"),
            "missing",
        ),
        (
            r#"[{"effect":"Allow","actions":["*"],"resources":["proj/*"]}]"#,
            Some(0),
            Some("effect"),
            "expected \"allow\" or \"deny\"",
        ),
        (
            r#"[{"effect":"allow","resources":["proj/*"]}]"#,
            Some(0),
            Some("actions"),
            "needs actions or notActions",
        ),
        (
            r#"[{"effect":"allow","actions":["*"]}]"#,
            Some(0),
            Some("resources"),
            "needs resources or notResources",
        ),
        (
            r#"[{"effect":"allow","actions":["a"],"notActions":["b"],"resources":["proj/*"]}]"#,
            Some(0),
            Some("notActions"),
            "either actions or notActions, not both",
        ),
        (
            r#"[{"effect":"allow","actions":["*"],"resources":["proj/a"],"notResources":["proj/b"]}]"#,
            Some(0),
            Some("notResources"),
            "not both",
        ),
        (
            r#"[{"effect":"allow","actions":"*","resources":["proj/*"]}]"#,
            Some(0),
            Some("actions"),
            "expected an array of strings",
        ),
        (
            r#"[{"effect":"allow","actions":["*"],"resources":["proj/*"]},{"effect":"allow","actions":["*"],"resources":["proj/*",3]}]"#,
            Some(1),
            Some("resources"),
            "item 1 must be a string",
        ),
        (r#"[{"effect":"allow""#, None, None, "invalid JSON"),
    ] {
        match parse_policy_str(policy) {
            Err(PolicyError::Shape {
                statement: s,
                field: f,
                message,
            }) => {
                assert_eq!((s, f.as_deref()), (statement, field), "{policy}");
                assert!(message.contains(words), "{policy}: {message}");
            }
            other => panic!("{policy}: {other:?}"),
        }
    }
}

#[test]
fn lenient_where_launchdarkly_is() {
    // null means absent; an empty list beside the other form is ignored ("the resources field
    // must be empty to use this field").
    let policy = parse_policy_str(
        r#"[{"effect":"allow","actions":[],"notActions":["deleteFlag"],"resources":["proj/*"],"notResources":null}]"#,
    )
    .unwrap();
    assert_eq!(
        flagstaff_policy::policy_to_json(&policy),
        serde_json::json!([{"effect":"allow","notActions":["deleteFlag"],"resources":["proj/*"]}])
    );
}

#[test]
fn role_attribute_errors() {
    let policy = parse_policy_str(
        r#"[{"effect":"allow","actions":["*"],"resources":["proj/*"]},
            {"effect":"allow","actions":["*"],"resources":["proj/x","proj/${roleAttribute/projectKey}:env/*"]}]"#,
    )
    .unwrap();
    let err = CompiledPolicy::new(&policy).unwrap_err();
    assert_eq!(
        err,
        PolicyError::MissingRoleAttribute {
            statement: 1,
            field: flagstaff_policy::Field::Resources,
            item: 1,
            attribute: "projectKey".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "statement 1: resources[1]: role attribute \"projectKey\" has no value for this role assignment"
    );
    for bad in ["a:env/*", "*", "", "a b", "x}"] {
        let attrs =
            RoleAttributes::from([("projectKey".to_string(), vec!["ok".into(), bad.into()])]);
        match CompiledPolicy::compile(&policy, &attrs) {
            Err(PolicyError::InvalidRoleAttribute {
                statement: 1,
                item: 1,
                attribute,
                value,
                ..
            }) => assert_eq!((attribute.as_str(), value.as_str()), ("projectKey", bad)),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    // Concrete resources never carry placeholders.
    let err = Resource::parse("proj/${roleAttribute/projectKey}").unwrap_err();
    assert_eq!(err.position, 5);
}

#[test]
fn serde_errors_leave_the_index_to_the_path() {
    let err = serde_json::from_str::<Vec<flagstaff_policy::Statement>>(
        r#"[{"effect":"allow","actions":["*"],"resources":["proj/*"]},{"effect":"allow","actions":["*"],"resources":["flag/*"]}]"#,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("resources[0]: at character 0: \"flag\" is not a top-level resource type"),
        "{err}"
    );
}
