//! Manifest lint: the upstream schema, every rule of the upstream test suite, and the checks
//! the upstream suite is known to miss (spec §5.1 "gaps"), each finding with file, JSON
//! pointer and a message that says how to fix it.
//!
//! Errors are what the upstream suite would fail on (plus things that cannot run at all, such
//! as a template that does not parse); the gap checks that the published catalogue itself
//! trips are warnings, so the catalogue keeps loading unchanged.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use flagstaff_template::{Compat, RenderOptions, Template, is_json_template_name};
use serde_json::{Map, Value, json};

use crate::context::{
    SampleContexts, body_context, endpoint_context, placeholder_oauth, test_form_values,
};
use crate::diagnostic::{Diagnostic, pointer_token};
use crate::model::{
    Endpoint, FormVariable, FormVariableType, Manifest, MetadataType, SyncedSegmentRequestParser,
};
use crate::{Integration, TemplateSet};

/// Integrations the upstream suite lets use `requiresOAuth` (LaunchDarkly holds OAuth client
/// registrations for them). Others may be allowed with `LintOptions::oauth_integrations`.
pub const UPSTREAM_OAUTH_INTEGRATIONS: &[&str] = &[
    "appdynamics",
    "sentry",
    "servicenow",
    "servicenow-normal",
    "servicenow-app",
    "custom-approvals-oauth",
];

/// Integrations upstream lets share one `oauthIntegrationKey`.
const SHARED_OAUTH_KEY_GROUP: &[&str] = &["servicenow", "servicenow-app", "servicenow-normal"];

/// The only integration upstream lets have neither `capabilities` nor `otherCapabilities`.
const NO_CAPABILITIES_EXEMPT: &[&str] = &["aiconfig-test-run"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FormScope {
    TopLevel,
    Approval,
    Other,
}

#[derive(Debug, Clone, Default)]
pub struct LintOptions {
    /// Extra integration keys allowed to set `requiresOAuth`.
    pub oauth_integrations: Vec<String>,
}

pub(crate) struct Linter<'a> {
    pub key: &'a str,
    pub dir: &'a Path,
    pub manifest_file: PathBuf,
    pub samples: &'a SampleContexts,
    pub options: &'a LintOptions,
    pub diagnostics: Vec<Diagnostic>,
}

impl<'a> Linter<'a> {
    fn error(
        &mut self,
        rule: &'static str,
        pointer: impl Into<String>,
        message: impl Into<String>,
    ) {
        let file = self.manifest_file.clone();
        self.diagnostics
            .push(Diagnostic::error(rule, file, pointer, message));
    }

    fn warning(
        &mut self,
        rule: &'static str,
        pointer: impl Into<String>,
        message: impl Into<String>,
    ) {
        let file = self.manifest_file.clone();
        self.diagnostics
            .push(Diagnostic::warning(rule, file, pointer, message));
    }

    /// Schema validation of the raw manifest; returns the typed manifest when it passes.
    pub(crate) fn check_schema(&mut self, raw: &Value) -> Option<Manifest> {
        let validator = crate::schema::validator();
        let mut failed = false;
        for error in validator.iter_errors(raw) {
            failed = true;
            let pointer = error.instance_path().to_string();
            let message = schema_message(&error);
            self.error("manifest-schema", pointer, message);
        }
        if failed {
            return None;
        }
        match serde_path_to_error::deserialize::<_, Manifest>(raw) {
            Ok(manifest) => Some(manifest),
            Err(error) => {
                let pointer = path_to_pointer(error.path());
                self.error("manifest-schema", pointer, error.inner().to_string());
                None
            }
        }
    }

    pub(crate) fn check_manifest(&mut self, manifest: &Manifest) {
        self.check_icons(manifest);
        if !manifest.overview.ends_with('.') {
            self.error(
                "overview-period",
                "/overview",
                "the overview must end with a period (\".\")",
            );
        }
        self.check_form_variables(
            "/formVariables",
            &manifest.form_variables,
            FormScope::TopLevel,
        );
        if let Some(capabilities) = &manifest.capabilities {
            if let Some(approval) = &capabilities.approval {
                self.check_form_variables(
                    "/capabilities/approval/environmentFormVariables",
                    &approval.environment_form_variables,
                    FormScope::Approval,
                );
                self.check_form_variables(
                    "/capabilities/approval/approvalFormVariables",
                    &approval.approval_form_variables,
                    FormScope::Approval,
                );
            }
            if let Some(store) = &capabilities.feature_store {
                self.check_form_variables(
                    "/capabilities/featureStore/formVariables",
                    &store.form_variables,
                    FormScope::Other,
                );
            }
            if let Some(cleanup) = &capabilities.flag_cleanup {
                self.check_form_variables(
                    "/capabilities/flagCleanup/formVariables",
                    &cleanup.form_variables,
                    FormScope::Other,
                );
            }
        }
        self.check_oauth(manifest);
        let has_capabilities = manifest
            .capabilities
            .as_ref()
            .is_some_and(|c| c != &Default::default());
        let has_other = manifest
            .other_capabilities
            .as_ref()
            .is_some_and(|other| !other.is_empty());
        if !has_capabilities && !has_other && !NO_CAPABILITIES_EXEMPT.contains(&self.key) {
            self.error(
                "capabilities-required",
                "",
                "the manifest has no `capabilities`: add a capability, or list the hard-coded \
                 features it stands for in `otherCapabilities`",
            );
        }
        if let Some(capabilities) = &manifest.capabilities {
            if let Some(parser) = capabilities
                .synced_segment
                .as_ref()
                .map(|s| &s.request_parser)
            {
                self.check_synced_segment(parser);
            }
            self.check_endpoints(manifest);
            self.check_include_error_response_body(manifest);
            self.check_regexps(manifest);
        }
    }

    fn check_icons(&mut self, manifest: &Manifest) {
        for (name, path) in [
            ("square", &manifest.icons.square),
            ("horizontal", &manifest.icons.horizontal),
        ] {
            let file = self.dir.join(path);
            if !file.is_file() {
                self.error(
                    "icon-exists",
                    format!("/icons/{name}"),
                    format!(
                        "icon file `{path}` does not exist: add the SVG at {} or fix the path",
                        file.display()
                    ),
                );
            }
        }
    }

    /// Upstream applies its form-variable rules to the top-level variables, and only the
    /// `defaultValue` rules to approval variables; elsewhere the same findings are warnings.
    fn form_rule(
        &mut self,
        scope: FormScope,
        rule: &'static str,
        pointer: String,
        message: impl Into<String>,
    ) {
        let upstream = match scope {
            FormScope::TopLevel => true,
            FormScope::Approval => matches!(
                rule,
                "form-variable-default-value" | "form-variable-default-type"
            ),
            FormScope::Other => false,
        };
        if upstream {
            self.error(rule, pointer, message);
        } else {
            self.warning(rule, pointer, message);
        }
    }

    fn check_form_variables(&mut self, base: &str, variables: &[FormVariable], scope: FormScope) {
        let top_level = scope == FormScope::TopLevel;
        let mut seen = BTreeSet::new();
        for (index, variable) in variables.iter().enumerate() {
            let at = format!("{base}/{index}");
            let kind = variable.kind;
            if !seen.insert(variable.key.as_str()) {
                self.form_rule(
                    scope,
                    "form-variable-unique-key",
                    format!("{at}/key"),
                    format!(
                        "form variable key `{}` is used twice: keys name template variables and \
                         must be unique",
                        variable.key
                    ),
                );
            }
            if let Some(default) = &variable.default_value {
                if !variable.is_optional {
                    self.form_rule(
                        scope,
                        "form-variable-default-value",
                        format!("{at}/defaultValue"),
                        "\"defaultValue\" is only valid if \"isOptional\" is true. Use \
                         \"placeholder\" if you do not want the variable to be optional.",
                    );
                }
                let matches = match (kind, default) {
                    (
                        FormVariableType::String
                        | FormVariableType::Uri
                        | FormVariableType::Enum
                        | FormVariableType::DynamicEnum,
                        crate::model::DefaultValue::String(_),
                    ) => true,
                    (
                        FormVariableType::String
                        | FormVariableType::Uri
                        | FormVariableType::Enum
                        | FormVariableType::DynamicEnum,
                        _,
                    ) => false,
                    (FormVariableType::Boolean, crate::model::DefaultValue::Bool(_)) => true,
                    (FormVariableType::Boolean, _) => false,
                    _ => true,
                };
                if !matches {
                    let expected = if kind == FormVariableType::Boolean {
                        "a boolean"
                    } else {
                        "a string"
                    };
                    self.form_rule(
                        scope,
                        "form-variable-default-type",
                        format!("{at}/defaultValue"),
                        format!(
                            "defaultValue of a `{}` form variable must be {expected}",
                            kind.as_str()
                        ),
                    );
                }
                if kind == FormVariableType::Enum
                    && let (crate::model::DefaultValue::String(value), Some(allowed)) =
                        (default, &variable.allowed_values)
                    && !allowed.contains(value)
                {
                    self.form_rule(
                        scope,
                        "form-variable-default-allowed",
                        format!("{at}/defaultValue"),
                        format!("defaultValue `{value}` is not one of allowedValues {allowed:?}"),
                    );
                }
            } else if variable.is_optional
                && top_level
                && !matches!(
                    kind,
                    FormVariableType::Multiselect | FormVariableType::EnvironmentSelector
                )
            {
                self.form_rule(
                    scope,
                    "form-variable-optional-default",
                    format!("{at}/isOptional"),
                    format!(
                        "optional form variable `{}` needs a \"defaultValue\" (the value used \
                         when the user leaves it empty)",
                        variable.key
                    ),
                );
            }
            if variable.is_secret && kind != FormVariableType::String {
                self.form_rule(
                    scope,
                    "form-variable-secret-string",
                    format!("{at}/isSecret"),
                    format!(
                        "only `string` form variables can be secret; `{}` is `{}`",
                        variable.key,
                        kind.as_str()
                    ),
                );
            }
            match (kind, &variable.dynamic_options) {
                (FormVariableType::DynamicEnum, None) => self.form_rule(
                    scope,
                    "form-variable-dynamic-options",
                    at.clone(),
                    "a `dynamicEnum` form variable needs \"dynamicOptions\" (the endpoint and \
                     parser that fetch its options)",
                ),
                (other, Some(_)) if other != FormVariableType::DynamicEnum => self.form_rule(
                    scope,
                    "form-variable-dynamic-options",
                    format!("{at}/dynamicOptions"),
                    format!(
                        "\"dynamicOptions\" is only valid on `dynamicEnum` form variables, not \
                         `{}`",
                        other.as_str()
                    ),
                ),
                _ => {}
            }
            if kind == FormVariableType::Enum
                && variable.allowed_values.as_ref().is_none_or(Vec::is_empty)
            {
                self.form_rule(
                    scope,
                    "form-variable-enum-values",
                    at.clone(),
                    "an `enum` form variable needs a non-empty \"allowedValues\"",
                );
            }
            if kind == FormVariableType::Multiselect {
                if variable.multiselect_options.is_none() {
                    self.form_rule(
                        scope,
                        "form-variable-multiselect",
                        at.clone(),
                        "a `multiselect` form variable needs \"multiselectOptions\"",
                    );
                }
                for field in [
                    "defaultValue",
                    "dynamicOptions",
                    "allowedValues",
                    "isSecret",
                ] {
                    if has_field(variable, field) {
                        self.form_rule(
                            scope,
                            "form-variable-multiselect",
                            format!("{at}/{field}"),
                            format!(
                                "a `multiselect` form variable must not set \"{field}\"; use \
                                 \"multiselectOptions\" and \"multiselectDefaultOptions\""
                            ),
                        );
                    }
                }
            }
            if kind == FormVariableType::EnvironmentSelector {
                for field in [
                    "multiselectOptions",
                    "multiselectDefaultOptions",
                    "defaultValue",
                    "dynamicOptions",
                    "allowedValues",
                    "isSecret",
                ] {
                    if has_field(variable, field) {
                        self.form_rule(
                            scope,
                            "form-variable-environment-selector",
                            format!("{at}/{field}"),
                            format!(
                                "an `environmentSelector` form variable must not set \"{field}\": \
                                 its options are the platform's projects and environments"
                            ),
                        );
                    }
                }
            }
        }
    }

    fn check_oauth(&mut self, manifest: &Manifest) {
        if manifest.requires_oauth {
            let allowed = UPSTREAM_OAUTH_INTEGRATIONS.contains(&self.key)
                || self
                    .options
                    .oauth_integrations
                    .iter()
                    .any(|k| k == self.key);
            if !allowed {
                self.error(
                    "oauth-integration-registered",
                    "/requiresOAuth",
                    format!(
                        "`{}` sets requiresOAuth but is not a registered OAuth integration: \
                         register its OAuth client and allow it (`--allow-oauth {}`), or remove \
                         requiresOAuth",
                        self.key, self.key
                    ),
                );
            }
            if manifest.oauth_integration_key.is_none() {
                self.warning(
                    "oauth-integration-key",
                    "/requiresOAuth",
                    "requiresOAuth without \"oauthIntegrationKey\": the OAuth credentials are \
                     stored under the integration key",
                );
            }
        } else if manifest.oauth_integration_key.is_some() {
            self.warning(
                "oauth-integration-key",
                "/oauthIntegrationKey",
                "\"oauthIntegrationKey\" has no effect without \"requiresOAuth\": true",
            );
        }
    }

    fn check_synced_segment(&mut self, parser: &SyncedSegmentRequestParser) {
        let at = "/capabilities/syncedSegment/requestParser";
        let add = parser.add_member_array_path.is_some();
        let remove = parser.remove_member_array_path.is_some();
        if add != remove {
            let (missing, present) = if add {
                ("removeMemberArrayPath", "addMemberArrayPath")
            } else {
                ("addMemberArrayPath", "removeMemberArrayPath")
            };
            self.error(
                "synced-segment-add-remove",
                format!("{at}/{present}"),
                format!("\"{present}\" requires \"{missing}\": give both arrays or neither"),
            );
        }
        if add || remove {
            if parser.member_array_path.is_some() {
                self.error(
                    "synced-segment-modes",
                    format!("{at}/memberArrayPath"),
                    "\"memberArrayPath\" cannot be combined with add/remove member arrays: \
                     choose one payload mode",
                );
            }
            if parser.array_inclusion.is_some() {
                self.error(
                    "synced-segment-modes",
                    format!("{at}/arrayInclusion"),
                    "\"arrayInclusion\" cannot be combined with add/remove member arrays: \
                     choose one payload mode",
                );
            }
        }
        if parser.array_inclusion.is_some() && parser.member_array_path.is_none() {
            self.error(
                "synced-segment-array-inclusion",
                format!("{at}/arrayInclusion"),
                "\"arrayInclusion\" requires \"memberArrayPath\" (the members it includes or \
                 excludes)",
            );
        }
        if parser.member_array_parser.boolean_membership_path.is_some()
            && parser.member_array_path.is_none()
        {
            self.error(
                "synced-segment-boolean-membership",
                format!("{at}/memberArrayParser/booleanMembershipPath"),
                "\"booleanMembershipPath\" requires \"memberArrayPath\"",
            );
        }
        if parser.member_array_path.is_none() && !add && !remove {
            self.error(
                "synced-segment-modes",
                at,
                "the request parser names no members: set \"memberArrayPath\" or \
                 \"addMemberArrayPath\"/\"removeMemberArrayPath\"",
            );
        }
        let mut pointers: Vec<(String, &str)> = vec![
            (
                format!("{at}/environmentIdPath"),
                &parser.environment_id_path,
            ),
            (format!("{at}/cohortIdPath"), &parser.cohort_id_path),
            (format!("{at}/cohortNamePath"), &parser.cohort_name_path),
            (
                format!("{at}/memberArrayParser/memberIdPath"),
                &parser.member_array_parser.member_id_path,
            ),
        ];
        for (name, value) in [
            ("contextKindPath", &parser.context_kind_path),
            ("cohortUrlPath", &parser.cohort_url_path),
            ("memberArrayPath", &parser.member_array_path),
            ("addMemberArrayPath", &parser.add_member_array_path),
            ("removeMemberArrayPath", &parser.remove_member_array_path),
        ] {
            if let Some(value) = value {
                pointers.push((format!("{at}/{name}"), value));
            }
        }
        if let Some(inclusion) = &parser.array_inclusion {
            pointers.push((format!("{at}/arrayInclusion/path"), &inclusion.path));
            if let Err(error) = crate::jsregex::compile(&inclusion.matcher) {
                self.error(
                    "regexp-valid",
                    format!("{at}/arrayInclusion/matcher"),
                    format!("the matcher is not a valid regular expression: {error}"),
                );
            }
        }
        for (pointer, value) in pointers {
            if !value.is_empty() && !value.starts_with('/') {
                self.error(
                    "json-pointer",
                    pointer,
                    format!(
                        "`{value}` is not a JSON pointer (RFC 6901): it must start with `/`, \
                         e.g. `/batch/0/cohortId`"
                    ),
                );
            }
        }
    }

    /// Every endpoint of every capability with its hmacSignature rule, and the upstream test
    /// that the auditLogEventsHook URL and headers render in strict mode.
    fn check_endpoints(&mut self, manifest: &Manifest) {
        for (pointer, endpoint) in endpoints(manifest) {
            if let Some(hmac) = &endpoint.hmac_signature {
                self.check_hmac(manifest, &pointer, hmac);
            }
        }
    }

    fn check_hmac(
        &mut self,
        manifest: &Manifest,
        endpoint_pointer: &str,
        hmac: &crate::model::HmacSignature,
    ) {
        let at = format!("{endpoint_pointer}/hmacSignature");
        if hmac.header_name.trim().is_empty() {
            self.error(
                "hmac-signature",
                format!("{at}/headerName"),
                "hmacSignature needs a \"headerName\" (e.g. `X-LD-Signature`)",
            );
        }
        let key = &hmac.hmac_secret_form_variable_key;
        match manifest.form_variables.iter().find(|v| &v.key == key) {
            None => self.error(
                "hmac-signature",
                format!("{at}/hmacSecretFormVariableKey"),
                format!(
                    "hmacSecretFormVariableKey `{key}` names no form variable: add a secret \
                     string form variable with that key"
                ),
            ),
            Some(variable) => {
                if variable.kind != FormVariableType::String || !variable.is_secret {
                    self.error(
                        "hmac-signature",
                        format!("{at}/hmacSecretFormVariableKey"),
                        format!(
                            "the HMAC secret form variable `{key}` must be `\"type\": \"string\"` \
                             with `\"isSecret\": true`"
                        ),
                    );
                }
            }
        }
    }

    fn check_include_error_response_body(&mut self, manifest: &Manifest) {
        let Some(capabilities) = &manifest.capabilities else {
            return;
        };
        let mut checks: Vec<(&str, &Endpoint)> = Vec::new();
        if let Some(hook) = &capabilities.audit_log_events_hook
            && hook.include_error_response_body
            && let Some(endpoint) = &hook.endpoint
        {
            checks.push(("/capabilities/auditLogEventsHook", endpoint));
        }
        if let Some(hook) = &capabilities.events_hook
            && hook.include_error_response_body
        {
            checks.push(("/capabilities/eventsHook", &hook.endpoint));
        }
        for (at, endpoint) in checks {
            for finding in host_variables(&endpoint.url) {
                let variable = manifest
                    .form_variables
                    .iter()
                    .find(|v| v.key == finding.name);
                let fixed = variable.is_some_and(|v| {
                    v.kind == FormVariableType::Enum
                        && v.allowed_values.as_ref().is_some_and(|a| !a.is_empty())
                });
                if fixed {
                    continue;
                }
                let message = format!(
                    "includeErrorResponseBody is only allowed when the endpoint's host is fixed \
                     or an `enum` form variable with allowedValues; the host uses `{}`. Make \
                     `{}` an enum of the partner's hosts, or remove includeErrorResponseBody",
                    finding.name, finding.name
                );
                if finding.upstream_detects {
                    self.error(
                        "include-error-response-body",
                        format!("{at}/includeErrorResponseBody"),
                        message,
                    );
                } else {
                    // The upstream test only recognises `{{name}}` written without spaces, so
                    // the published catalogue has such hosts; Flagstaff does not keep error
                    // bodies from them at runtime.
                    self.warning(
                        "include-error-response-body",
                        format!("{at}/includeErrorResponseBody"),
                        format!(
                            "{message} (Flagstaff ignores includeErrorResponseBody for this \
                             endpoint)"
                        ),
                    );
                }
            }
        }
    }

    fn check_regexps(&mut self, manifest: &Manifest) {
        let Some(capabilities) = &manifest.capabilities else {
            return;
        };
        let mut patterns: Vec<(String, &str)> = Vec::new();
        if let Some(trigger) = &capabilities.trigger
            && let Some(pattern) = &trigger.test_event_name_regexp
        {
            patterns.push((
                "/capabilities/trigger/testEventNameRegexp".into(),
                pattern.as_str(),
            ));
        }
        if let Some(approval) = &capabilities.approval {
            let mut parsers = vec![
                ("statusRequest", &approval.status_request.parser),
                ("postApplyRequest", &approval.post_apply_request.parser),
                ("deletionRequest", &approval.deletion_request.parser),
            ];
            if let Some(parser) = &approval.creation_request.parser {
                parsers.push(("creationRequest", parser));
            }
            for (name, parser) in parsers {
                patterns.push((
                    format!("/capabilities/approval/{name}/parser/approvalMatcher"),
                    parser.approval_matcher.as_str(),
                ));
                if let Some(rejection) = &parser.rejection_matcher {
                    patterns.push((
                        format!("/capabilities/approval/{name}/parser/rejectionMatcher"),
                        rejection.as_str(),
                    ));
                }
            }
        }
        for (pointer, pattern) in patterns {
            if let Err(error) = crate::jsregex::compile(pattern) {
                self.error(
                    "regexp-valid",
                    pointer,
                    format!("not a valid regular expression: {error}"),
                );
            }
        }
    }

    /// Parse errors of inline and file templates, then the upstream render rules.
    pub(crate) fn check_templates(&mut self, manifest: &Manifest, raw: &Value) -> TemplateSet {
        let mut set = TemplateSet::default();
        for (pointer, source) in inline_template_sources(raw) {
            match Template::parse(pointer.clone(), &source) {
                Ok(template) => {
                    set.inline.insert(pointer, template);
                }
                Err(error) => self.error(
                    "template-parse",
                    pointer,
                    format!(
                        "template does not parse: {} (line {}, column {})",
                        error.message, error.line, error.column
                    ),
                ),
            }
        }
        let mut attempted = BTreeSet::new();
        for (pointer, path) in file_template_references(manifest) {
            if !attempted.insert(path.clone()) {
                continue;
            }
            let file = self.dir.join(&path);
            let source = match std::fs::read(&file) {
                Ok(bytes) => bytes,
                Err(_) => {
                    self.error(
                        "template-exists",
                        pointer,
                        format!(
                            "template file `{path}` does not exist: create {} or fix the path",
                            file.display()
                        ),
                    );
                    continue;
                }
            };
            let source = match String::from_utf8(source) {
                Ok(source) => source,
                Err(error) => {
                    self.diagnostics.push(Diagnostic::error(
                        "template-parse",
                        file,
                        "",
                        format!(
                            "template is not valid UTF-8 (byte {})",
                            error.utf8_error().valid_up_to()
                        ),
                    ));
                    continue;
                }
            };
            match Template::parse(path.clone(), &source) {
                Ok(template) => {
                    set.files.insert(path, template);
                }
                Err(error) => self.diagnostics.push(Diagnostic::error(
                    "template-parse",
                    file,
                    "",
                    format!(
                        "template does not parse: {} (line {}, column {})",
                        error.message, error.line, error.column
                    ),
                )),
            }
        }
        self.check_unreferenced_templates(&attempted);
        if let Some(capabilities) = &manifest.capabilities {
            if let Some(hook) = &capabilities.audit_log_events_hook {
                self.check_audit_log_hook(manifest, hook, &set);
            }
            if let Some(flag_link) = &capabilities.flag_link {
                self.check_flag_link(flag_link, &set);
            }
            if let Some(approval) = &capabilities.approval {
                self.check_approval_endpoints(manifest, approval, &set);
            }
            if let Some(store) = &capabilities.feature_store {
                self.check_feature_store(store, &set);
            }
        }
        set
    }

    fn check_unreferenced_templates(&mut self, referenced_paths: &BTreeSet<String>) {
        let dir = self.dir.join("templates");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|entry| entry.path().is_file())
            .map(|entry| format!("templates/{}", entry.file_name().to_string_lossy()))
            .collect();
        names.sort();
        for name in names {
            let referenced = referenced_paths
                .iter()
                .any(|path| path.trim_start_matches("./") == name);
            if !referenced {
                self.diagnostics.push(Diagnostic::warning(
                    "template-unreferenced",
                    self.dir.join(&name),
                    "",
                    "no capability references this template file: reference it or delete it",
                ));
            }
        }
    }

    fn check_audit_log_hook(
        &mut self,
        manifest: &Manifest,
        hook: &crate::model::AuditLogEventsHook,
        set: &TemplateSet,
    ) {
        let at = "/capabilities/auditLogEventsHook";
        let oauth = placeholder_oauth(manifest.requires_oauth);
        let test_values = test_form_values(&manifest.form_variables);
        if hook.use_standard_webhook_payload {
            if !hook.templates.entries().is_empty() {
                self.error(
                    "standard-payload-templates",
                    format!("{at}/templates"),
                    "useStandardWebhookPayload sends the standard audit payload, so \
                     \"templates\" must be empty (`{}`)",
                );
            }
            if self.dir.join("templates").exists() {
                self.error(
                    "standard-payload-templates",
                    format!("{at}/useStandardWebhookPayload"),
                    "useStandardWebhookPayload sends the standard audit payload: remove the \
                     integration's templates/ directory",
                );
            }
        }
        if hook.endpoint.is_none() && hook.delivery_method.is_none() {
            self.error(
                "endpoint-required",
                at,
                "auditLogEventsHook needs an \"endpoint\" unless \"deliveryMethod\" is `custom`",
            );
        }
        // Upstream: the URL and header templates render in strict mode with the test values.
        if let (Some(endpoint), Some((_, flag_event))) = (
            &hook.endpoint,
            self.samples
                .get("flag/update-all-environments")
                .map(|v| ("", v)),
        ) {
            let context = endpoint_context(&test_values, &oauth, flag_event);
            self.strict_render_endpoint(&format!("{at}/endpoint"), endpoint, set, &context, true);
        }
        // Upstream: each template key renders in strict mode with its sample context, JSON
        // templates parse, validation and member templates are non-empty.
        for (key, path) in hook.templates.entries() {
            let Some(template) = set.files.get(path) else {
                continue;
            };
            let json = is_json_template_name(path);
            let Some((sample_name, event)) = self.samples.for_template_key(key) else {
                continue;
            };
            let context = body_context(event, json, &test_values, &oauth);
            let file = self.dir.join(path);
            match template.render(
                &context,
                RenderOptions {
                    strict: true,
                    compat: Compat::Js,
                },
            ) {
                Err(error) => self.diagnostics.push(Diagnostic::error(
                    "template-render",
                    file,
                    format!("{at}/templates/{key}"),
                    format!(
                        "the `{key}` template fails to render against sample `{sample_name}`: \
                         {} (line {}, column {}); guard optional fields with {{{{#if}}}}",
                        error.message, error.line, error.column
                    ),
                )),
                Ok(output) => {
                    if (key == "validation" || key == "member") && output.trim().is_empty() {
                        self.diagnostics.push(Diagnostic::error(
                            "template-non-empty",
                            file.clone(),
                            format!("{at}/templates/{key}"),
                            format!(
                                "the `{key}` template renders an empty body for sample \
                                 `{sample_name}`, so nothing would be sent"
                            ),
                        ));
                    }
                    if json
                        && !output.trim().is_empty()
                        && let Err(error) = serde_json::from_str::<Value>(&output)
                    {
                        self.diagnostics.push(Diagnostic::error(
                            "template-json",
                            file,
                            format!("{at}/templates/{key}"),
                            format!(
                                "JSON template renders invalid JSON for sample \
                                 `{sample_name}`: {error}"
                            ),
                        ));
                    }
                }
            }
        }
        // Beyond upstream: every template against every sample context (production renders
        // are non-strict) must give valid JSON or nothing.
        for (path, template) in &set.files {
            if !hook.templates.entries().iter().any(|(_, p)| p == path) {
                continue;
            }
            let json = is_json_template_name(path);
            if !json {
                continue;
            }
            for (sample_name, event) in self.samples.iter() {
                let context = body_context(event, json, &test_values, &oauth);
                let rendered = template.render(
                    &context,
                    RenderOptions {
                        strict: false,
                        compat: Compat::Go,
                    },
                );
                let problem = match rendered {
                    Err(error) => Some(format!("fails to render: {}", error.message)),
                    Ok(output) if output.trim().is_empty() => None,
                    Ok(output) => serde_json::from_str::<Value>(&output)
                        .err()
                        .map(|error| format!("renders invalid JSON: {error}")),
                };
                if let Some(problem) = problem {
                    self.diagnostics.push(Diagnostic::error(
                        "template-json",
                        self.dir.join(path),
                        "",
                        format!("against sample `{sample_name}` the template {problem}"),
                    ));
                }
            }
        }
    }

    fn strict_render_endpoint(
        &mut self,
        at: &str,
        endpoint: &Endpoint,
        set: &TemplateSet,
        context: &Value,
        upstream_rule: bool,
    ) {
        let mut pointers = vec![(format!("{at}/url"), "request URL".to_string())];
        for (index, header) in endpoint.headers.iter().enumerate() {
            pointers.push((
                format!("{at}/headers/{index}/value"),
                format!("header `{}`", header.name),
            ));
        }
        for (pointer, what) in pointers {
            let Some(template) = set.inline.get(&pointer) else {
                continue;
            };
            if let Err(error) = template.render(
                context,
                RenderOptions {
                    strict: true,
                    compat: Compat::Go,
                },
            ) {
                let message = format!(
                    "the {what} template does not render: {}; templates can use the form \
                     variables, `oauth` and the event as `context`",
                    error.message
                );
                if upstream_rule {
                    self.error("endpoint-render", pointer, message);
                } else {
                    self.warning("endpoint-render", pointer, message);
                }
            }
        }
    }

    fn check_flag_link(&mut self, flag_link: &crate::model::FlagLink, set: &TemplateSet) {
        let mut metadata = Map::new();
        for (key, meta) in flag_link.metadata.iter().flatten() {
            let value = match meta.kind {
                MetadataType::String => Value::from(format!("${}", key.to_uppercase())),
                MetadataType::Uri => Value::from(format!("https://{}.com", key.to_lowercase())),
            };
            metadata.insert(key.clone(), value);
        }
        let context = json!({ "deepLink": "https://exampleDeeplink.com", "metadata": metadata });
        for (pointer, template) in &set.inline {
            if !pointer.starts_with("/capabilities/flagLink/") {
                continue;
            }
            if let Err(error) = template.render(
                &context,
                RenderOptions {
                    strict: true,
                    compat: Compat::Go,
                },
            ) {
                self.diagnostics.push(Diagnostic::error(
                    "flag-link-render",
                    self.manifest_file.clone(),
                    pointer.clone(),
                    format!(
                        "flag link template does not render: {}; it can use `deepLink` and the \
                         declared `metadata` keys",
                        error.message
                    ),
                ));
            }
        }
    }

    fn check_approval_endpoints(
        &mut self,
        manifest: &Manifest,
        approval: &crate::model::Approval,
        set: &TemplateSet,
    ) {
        let oauth = placeholder_oauth(manifest.requires_oauth);
        let mut values = test_form_values(&manifest.form_variables);
        values.insert(
            "environment".into(),
            Value::Object(test_form_values(&approval.environment_form_variables)),
        );
        let event = self
            .samples
            .get("flag/update-all-environments")
            .cloned()
            .unwrap_or(Value::Null);
        // Requests about an existing approval also see its external id.
        values.insert("approvalId".into(), Value::from("$APPROVALID"));
        let context = endpoint_context(&values, &oauth, &event);
        let at = "/capabilities/approval";
        let mut endpoints = vec![
            ("creationRequest", &approval.creation_request.endpoint),
            ("statusRequest", &approval.status_request.endpoint),
            ("postApplyRequest", &approval.post_apply_request.endpoint),
            ("deletionRequest", &approval.deletion_request.endpoint),
        ];
        if let Some(list) = &approval.member_list_request {
            endpoints.push(("memberListRequest", &list.endpoint));
        }
        for (name, endpoint) in endpoints {
            self.strict_render_endpoint(
                &format!("{at}/{name}/endpoint"),
                endpoint,
                set,
                &context,
                false,
            );
        }
    }

    fn check_feature_store(&mut self, store: &crate::model::FeatureStore, set: &TemplateSet) {
        let mut values = test_form_values(&store.form_variables);
        values.insert("_featureStoreKey".into(), Value::from("$_FEATURESTOREKEY"));
        values.insert("envId".into(), Value::from("$ENVID"));
        let context = endpoint_context(&values, &Value::Null, &Value::Null);
        let at = "/capabilities/featureStore";
        self.strict_render_endpoint(
            &format!("{at}/featureStoreRequest/endpoint"),
            &store.feature_store_request.endpoint,
            set,
            &context,
            false,
        );
        if let Some(validation) = &store.validation_request {
            self.strict_render_endpoint(
                &format!("{at}/validationRequest/endpoint"),
                &validation.endpoint,
                set,
                &context,
                false,
            );
        }
        for (name, endpoint) in [
            (
                "featureStoreRequest",
                Some(&store.feature_store_request.endpoint),
            ),
            (
                "validationRequest",
                store.validation_request.as_ref().map(|v| &v.endpoint),
            ),
        ] {
            let Some(endpoint) = endpoint else { continue };
            for (index, header) in endpoint.headers.iter().enumerate() {
                if let Some(problem) = crate::edgegrid_check::check(endpoint, &header.value) {
                    self.error(
                        "edgegrid-auth",
                        format!("{at}/{name}/endpoint/headers/{index}/value"),
                        problem,
                    );
                }
            }
        }
    }
}

/// Catalogue-wide rule: `oauthIntegrationKey` is unique, except within the servicenow group.
pub(crate) fn check_oauth_keys_unique(integrations: &[Integration]) -> Vec<Diagnostic> {
    let mut by_key: BTreeMap<&str, Vec<&Integration>> = BTreeMap::new();
    for integration in integrations {
        if let Some(key) = &integration.manifest.oauth_integration_key {
            by_key.entry(key.as_str()).or_default().push(integration);
        }
    }
    let mut diagnostics = Vec::new();
    for (key, users) in by_key {
        if users.len() < 2 {
            continue;
        }
        let all_in_group = users
            .iter()
            .all(|i| SHARED_OAUTH_KEY_GROUP.contains(&i.key.as_str()));
        if all_in_group {
            continue;
        }
        let names: Vec<&str> = users.iter().map(|i| i.key.as_str()).collect();
        for integration in &users {
            diagnostics.push(Diagnostic::error(
                "oauth-integration-key-unique",
                integration.dir.join("manifest.json"),
                "/oauthIntegrationKey",
                format!(
                    "oauthIntegrationKey `{key}` is used by {}: each integration needs its own",
                    names.join(", ")
                ),
            ));
        }
    }
    diagnostics
}

fn has_field(variable: &FormVariable, field: &str) -> bool {
    match field {
        "defaultValue" => variable.default_value.is_some(),
        "dynamicOptions" => variable.dynamic_options.is_some(),
        "allowedValues" => variable.allowed_values.is_some(),
        "isSecret" => variable.is_secret,
        "multiselectOptions" => variable.multiselect_options.is_some(),
        "multiselectDefaultOptions" => variable.multiselect_default_options.is_some(),
        _ => false,
    }
}

fn push_dynamic_option_endpoints<'m>(
    base: &str,
    variables: &'m [FormVariable],
    found: &mut Vec<(String, &'m Endpoint)>,
) {
    for (index, variable) in variables.iter().enumerate() {
        if let Some(options) = &variable.dynamic_options {
            found.push((
                format!("{base}/{index}/dynamicOptions/endpoint"),
                &options.endpoint,
            ));
        }
    }
}

/// Every endpoint in the manifest with its JSON pointer.
pub fn endpoints(manifest: &Manifest) -> Vec<(String, &Endpoint)> {
    let mut found = Vec::new();
    push_dynamic_option_endpoints("/formVariables", &manifest.form_variables, &mut found);
    let Some(capabilities) = &manifest.capabilities else {
        return found;
    };
    let c = "/capabilities";
    if let Some(hook) = &capabilities.audit_log_events_hook
        && let Some(endpoint) = &hook.endpoint
    {
        found.push((format!("{c}/auditLogEventsHook/endpoint"), endpoint));
    }
    if let Some(hook) = &capabilities.events_hook {
        found.push((format!("{c}/eventsHook/endpoint"), &hook.endpoint));
    }
    if let Some(approval) = &capabilities.approval {
        found.push((
            format!("{c}/approval/creationRequest/endpoint"),
            &approval.creation_request.endpoint,
        ));
        for (name, request) in [
            ("statusRequest", &approval.status_request),
            ("postApplyRequest", &approval.post_apply_request),
            ("deletionRequest", &approval.deletion_request),
        ] {
            found.push((format!("{c}/approval/{name}/endpoint"), &request.endpoint));
        }
        if let Some(list) = &approval.member_list_request {
            found.push((
                format!("{c}/approval/memberListRequest/endpoint"),
                &list.endpoint,
            ));
        }
        push_dynamic_option_endpoints(
            "/capabilities/approval/environmentFormVariables",
            &approval.environment_form_variables,
            &mut found,
        );
        push_dynamic_option_endpoints(
            "/capabilities/approval/approvalFormVariables",
            &approval.approval_form_variables,
            &mut found,
        );
    }
    if let Some(store) = &capabilities.feature_store {
        found.push((
            format!("{c}/featureStore/featureStoreRequest/endpoint"),
            &store.feature_store_request.endpoint,
        ));
        if let Some(validation) = &store.validation_request {
            found.push((
                format!("{c}/featureStore/validationRequest/endpoint"),
                &validation.endpoint,
            ));
        }
    }
    if let Some(button) = &capabilities.button_action {
        found.push((
            format!("{c}/buttonAction/actionRequest/endpoint"),
            &button.action_request.endpoint,
        ));
    }
    found
}

/// `(pointer, relative path)` of every template file the manifest references.
pub fn file_template_references(manifest: &Manifest) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let Some(capabilities) = &manifest.capabilities else {
        return found;
    };
    if let Some(hook) = &capabilities.audit_log_events_hook {
        for (key, path) in hook.templates.entries() {
            found.push((
                format!("/capabilities/auditLogEventsHook/templates/{key}"),
                path.to_string(),
            ));
        }
    }
    if let Some(hook) = &capabilities.events_hook {
        for (key, path) in hook.templates.entries() {
            found.push((
                format!("/capabilities/eventsHook/templates/{key}"),
                path.to_string(),
            ));
        }
    }
    if let Some(import) = &capabilities.flag_import
        && let Some(templates) = &import.templates
    {
        for (key, path) in templates.entries() {
            found.push((
                format!("/capabilities/flagImport/templates/{key}"),
                path.to_string(),
            ));
        }
    }
    found
}

/// Whether a manifest JSON pointer holds a Handlebars template.
pub fn is_inline_template_pointer(pointer: &str) -> bool {
    let segments: Vec<&str> = pointer.split('/').collect();
    let last = segments.last().copied().unwrap_or_default();
    let parent = segments
        .len()
        .checked_sub(2)
        .map(|i| segments[i])
        .unwrap_or_default();
    if pointer.starts_with("/capabilities/flagLink/uiBlocks/") {
        return matches!(last, "text" | "url" | "sourceUrl" | "name" | "description");
    }
    if last == "url" && parent == "endpoint" {
        return true;
    }
    if last == "value"
        && segments.len() >= 4
        && segments[segments.len() - 3] == "headers"
        && segments[segments.len() - 4] == "endpoint"
    {
        return true;
    }
    matches!(
        last,
        "jsonBody" | "urlTemplate" | "payloadPrefix" | "payloadSuffix" | "jsonResponseBody"
    )
}

/// Every inline template string in the raw manifest, by JSON pointer.
pub fn inline_template_sources(raw: &Value) -> Vec<(String, String)> {
    let mut found = Vec::new();
    walk(raw, &mut String::new(), &mut found);
    found
}

fn walk(value: &Value, pointer: &mut String, found: &mut Vec<(String, String)>) {
    match value {
        Value::String(text) if is_inline_template_pointer(pointer) => {
            found.push((pointer.clone(), text.clone()));
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&index.to_string());
                walk(item, pointer, found);
                pointer.truncate(len);
            }
        }
        Value::Object(object) => {
            for (key, item) in object {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&pointer_token(key));
                walk(item, pointer, found);
                pointer.truncate(len);
            }
        }
        _ => {}
    }
}

struct HostVariable {
    name: String,
    /// The upstream test recognises `{{name}}` written without inner spaces only.
    upstream_detects: bool,
}

/// Template variables that make up part of a URL template's host.
fn host_variables(url: &str) -> Vec<HostVariable> {
    let after_scheme = match url.find("://") {
        Some(index) if !url[..index].contains("{{") => &url[index + 3..],
        _ => url,
    };
    // The host ends at the first `/`, `?` or `#` outside a mustache.
    let mut end = after_scheme.len();
    let mut depth = 0usize;
    let bytes = after_scheme.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(b"{{") {
            depth += 1;
            i += 2;
            continue;
        }
        if bytes[i..].starts_with(b"}}") && depth > 0 {
            depth -= 1;
            i += 2;
            continue;
        }
        if depth == 0 && matches!(bytes[i], b'/' | b'?' | b'#') {
            end = i;
            break;
        }
        i += 1;
    }
    let host = &after_scheme[..end];
    let mut found = Vec::new();
    let mut rest = host;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(close) = after.find("}}") else { break };
        let inner = after[..close].trim_start_matches('{');
        let spaced = inner.starts_with(char::is_whitespace) || inner.ends_with(char::is_whitespace);
        let name = inner.trim().trim_start_matches('&').trim();
        if !name.is_empty() && !name.starts_with(['#', '/', '!', '^']) {
            let first = name.split_whitespace().next().unwrap_or(name);
            found.push(HostVariable {
                name: first.to_string(),
                upstream_detects: !spaced,
            });
        }
        rest = &after[close + 2..];
    }
    found
}

fn schema_message(error: &jsonschema::ValidationError<'_>) -> String {
    use jsonschema::error::ValidationErrorKind as Kind;
    match error.kind() {
        Kind::AdditionalProperties { unexpected } => format!(
            "unknown key{} {}: remove {} or check the spelling against the manifest schema \
             (`flagstaff integrations schema`)",
            if unexpected.len() == 1 { "" } else { "s" },
            unexpected
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", "),
            if unexpected.len() == 1 { "it" } else { "them" }
        ),
        Kind::Required { property } => format!("missing required key {property}"),
        _ => error.to_string(),
    }
}

fn path_to_pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut pointer = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => {
                pointer.push('/');
                pointer.push_str(&index.to_string());
            }
            Segment::Map { key } | Segment::Enum { variant: key } => {
                pointer.push('/');
                pointer.push_str(&pointer_token(key));
            }
            Segment::Unknown => {}
        }
    }
    pointer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_variables_find_the_host_part_only() {
        let names = |url: &str| -> Vec<(String, bool)> {
            host_variables(url)
                .into_iter()
                .map(|v| (v.name, v.upstream_detects))
                .collect()
        };
        assert_eq!(
            names("{{hostURL}}/api/v1/events"),
            vec![("hostURL".to_string(), true)]
        );
        assert_eq!(
            names("{{ endpointUrl }}/events"),
            vec![("endpointUrl".to_string(), false)]
        );
        assert!(names("https://insights.example.com/v1/accounts/{{accountId}}/events").is_empty());
        assert_eq!(
            names("https://{{region}}.example.com/x?color={{color}}"),
            vec![("region".to_string(), true)]
        );
        assert!(names("https://example.com/webhookin?color={{color}}").is_empty());
    }

    #[test]
    fn inline_template_pointers() {
        assert!(is_inline_template_pointer(
            "/capabilities/auditLogEventsHook/endpoint/url"
        ));
        assert!(is_inline_template_pointer(
            "/capabilities/approval/creationRequest/endpoint/headers/2/value"
        ));
        assert!(is_inline_template_pointer(
            "/capabilities/flagLink/uiBlocks/title/elements/0/text"
        ));
        assert!(is_inline_template_pointer(
            "/formVariables/3/dynamicOptions/endpoint/url"
        ));
        assert!(!is_inline_template_pointer("/links/site"));
        assert!(!is_inline_template_pointer(
            "/capabilities/auditLogEventsHook/endpoint/headers/0/name"
        ));
        assert!(!is_inline_template_pointer("/capabilities/flagLink/header"));
    }
}
