//! The typed model of an integration's `manifest.json`.
//!
//! Field names, required fields and closed objects follow the upstream schema
//! (`schemas/base.json`, `definitions.json`, `capabilities/*.json`): where upstream closes an
//! object with `propertyNames`, the struct denies unknown fields; where it leaves an object
//! open (`flagLink.metadata`, `flagLink.uiBlocks.title`, `buttonAction.requestBodyTemplates[]`)
//! so does the model. Length and pattern constraints are carried as schemars attributes so
//! the published JSON Schema (`crate::schema`) enforces them; the lint validates against that
//! schema before deserializing, so every constraint violation gets a JSON pointer.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `^[Hh][Tt][Tt][Pp][Ss]?://`: every documentation and site link.
const HTTP_URL: &str = "^[Hh][Tt][Tt][Pp][Ss]?://";
const SEMVER: &str = r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$";
const SINGLE_LINE: &str = "^(.*)$";
const NO_WHITESPACE: &str = r"^[^\s]*$";
const INTERNAL_URL: &str = r"^(/[^/]+)+(?:\?[^\s]*)?$|^[^/]+(/[^/]+)*(?:\?[^\s]*)?$";

fn is_false(value: &bool) -> bool {
    !*value
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "LaunchDarkly integration manifest (Flagstaff model)")]
pub struct Manifest {
    /// Display name of the integration.
    #[schemars(length(min = 3, max = 100))]
    pub name: String,
    /// Semantic version of the manifest.
    #[schemars(length(min = 5, max = 14), regex(pattern = SEMVER))]
    pub version: String,
    /// One-line summary; must end with a period.
    #[schemars(length(min = 10, max = 100), regex(pattern = SINGLE_LINE))]
    pub overview: String,
    /// Markdown description shown on the integration's card.
    #[schemars(length(min = 50, max = 2048), regex(pattern = SINGLE_LINE))]
    pub description: String,
    /// "Learn more" text for cards whose setup happens outside the platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 50, max = 2048), regex(pattern = SINGLE_LINE))]
    pub details: Option<String>,
    #[schemars(length(min = 3, max = 100), regex(pattern = SINGLE_LINE))]
    pub author: String,
    #[schemars(email)]
    pub support_email: String,
    pub links: Links,
    #[schemars(length(min = 1, max = 3), extend("uniqueItems" = true))]
    pub categories: Vec<Category>,
    pub icons: Icons,
    /// Integration-wide configuration fields.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub form_variables: Vec<FormVariable>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legacy: Option<Legacy>,
    /// Capabilities not configured by manifests (hard-coded features or external cards).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub other_capabilities: Option<Vec<OtherCapability>>,
    /// Enables the `oauth.baseURI` and `oauth.accessToken` template variables.
    #[serde(default, skip_serializing_if = "is_false", rename = "requiresOAuth")]
    pub requires_oauth: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub hide_on_integrations_page: bool,
    /// Key under which the integration's OAuth credentials are stored.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "oauthIntegrationKey"
    )]
    #[schemars(length(min = 3, max = 100))]
    pub oauth_integration_key: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_integration_configurations: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Links {
    #[schemars(length(max = 2048), regex(pattern = HTTP_URL))]
    pub site: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), regex(pattern = HTTP_URL))]
    pub launchdarkly_docs: Option<String>,
    #[schemars(length(max = 2048), regex(pattern = HTTP_URL))]
    pub privacy_policy: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), regex(pattern = HTTP_URL))]
    pub support_website: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    Ai,
    Analytics,
    Approval,
    Authentication,
    Automation,
    BigSegmentStore,
    CodeReferences,
    CustomerSupport,
    Data,
    DeveloperTools,
    Import,
    Infrastructure,
    IssueTracking,
    LogManagement,
    Messaging,
    Migration,
    Monitoring,
    SyncedSegments,
    Notifications,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Icons {
    #[schemars(regex(pattern = r"\.svg$"))]
    pub square: String,
    #[schemars(regex(pattern = r"\.svg$"))]
    pub horizontal: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Legacy {
    pub kind: LegacyKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum LegacyKind {
    CodeRefs,
    Datadog,
    DataExport,
    SlackWebhooks,
    Webhooks,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum OtherCapability {
    CodeRefs,
    DataExport,
    External,
    Ide,
    Sso,
    Webhooks,
    WarehouseExperimentation,
    WarehouseExport,
}

// ---------------------------------------------------------------------------------------
// Form variables

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FormVariable {
    /// Token name: `{{key}}` in endpoint templates, `{{formVariables.key}}` in bodies.
    #[schemars(length(max = 20), regex(pattern = NO_WHITESPACE))]
    pub key: String,
    #[schemars(length(max = 50))]
    pub name: String,
    #[serde(rename = "type")]
    pub kind: FormVariableType,
    #[schemars(length(max = 250))]
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placeholder: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub is_secret: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub is_hidden: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub is_optional: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_value: Option<DefaultValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_values: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamic_options: Option<DynamicOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depends_on: Option<Vec<DependsOn>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiselect_options: Option<Vec<MultiselectOption>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiselect_default_options: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub disable_after_saving: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub hide_empty: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum FormVariableType {
    String,
    Boolean,
    Uri,
    Enum,
    Oauth,
    DynamicEnum,
    Generated,
    EnvironmentSelector,
    Multiselect,
    PublicKey,
}

impl FormVariableType {
    pub fn as_str(self) -> &'static str {
        match self {
            FormVariableType::String => "string",
            FormVariableType::Boolean => "boolean",
            FormVariableType::Uri => "uri",
            FormVariableType::Enum => "enum",
            FormVariableType::Oauth => "oauth",
            FormVariableType::DynamicEnum => "dynamicEnum",
            FormVariableType::Generated => "generated",
            FormVariableType::EnvironmentSelector => "environmentSelector",
            FormVariableType::Multiselect => "multiselect",
            FormVariableType::PublicKey => "publicKey",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum DefaultValue {
    Bool(bool),
    String(String),
}

impl DefaultValue {
    pub fn to_json(&self) -> Value {
        match self {
            DefaultValue::Bool(b) => Value::Bool(*b),
            DefaultValue::String(s) => Value::String(s.clone()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DynamicOptions {
    pub endpoint: Endpoint,
    pub parser: DynamicOptionsParser,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DynamicOptionsParser {
    /// JSON pointer to the options array in the response.
    pub options_path: String,
    pub options_items: OptionsItems,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OptionsItems {
    /// JSON pointer, relative to each item, to the option's label.
    pub label: String,
    /// JSON pointer, relative to each item, to the option's value.
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DependsOn {
    #[schemars(length(max = 20), regex(pattern = NO_WHITESPACE))]
    pub variable_key: String,
    pub variable_location: VariableLocation,
    pub conditions: Vec<Condition>,
    pub action: DependsOnAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum VariableLocation {
    ApprovalFormVariables,
    EnvironmentFormVariables,
    FormVariables,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum DependsOnAction {
    HideField,
    ShowField,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    pub operator: ConditionOperator,
    #[schemars(length(max = 250))]
    pub value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ConditionOperator {
    LessThan,
    LessThanOrEqualTo,
    GreaterThan,
    GreaterThanOrEqualTo,
    EqualTo,
    NotEqual,
    Contains,
    StartsWith,
    EndsWith,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MultiselectOption {
    pub label: String,
    pub value: String,
}

// ---------------------------------------------------------------------------------------
// Endpoint (shared by every outbound capability)

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Endpoint {
    /// Handlebars template of the request URL.
    pub url: String,
    pub method: HttpMethod,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<Header>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hmac_signature: Option<HmacSignature>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    Post,
    Put,
    Patch,
    Get,
    Delete,
}

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Patch => "PATCH",
            HttpMethod::Get => "GET",
            HttpMethod::Delete => "DELETE",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Header {
    #[schemars(length(max = 50), regex(pattern = NO_WHITESPACE))]
    pub name: String,
    /// Handlebars template of the header value.
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HmacSignature {
    /// Header that carries the hex HMAC-SHA256 of the body.
    #[serde(default)]
    pub header_name: String,
    /// The secret string form variable holding the signing key.
    #[serde(default)]
    pub hmac_secret_form_variable_key: String,
}

// ---------------------------------------------------------------------------------------
// Capabilities

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Capabilities {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_log_events_hook: Option<AuditLogEventsHook>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub button_action: Option<ButtonAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved_custom_properties: Option<Vec<ReservedCustomProperty>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature_store: Option<FeatureStore>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flag_link: Option<FlagLink>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hide_configuration: Option<bool>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "externalConfigurationURL"
    )]
    #[schemars(length(max = 2048), regex(pattern = HTTP_URL))]
    pub external_configuration_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_configuration_pages: Option<ExternalConfigurationPages>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synced_segment: Option<SyncedSegment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub big_segment_store: Option<BigSegmentStore>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flag_import: Option<FlagImport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_hook: Option<EventsHook>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flag_cleanup: Option<FlagCleanup>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "internalConfigurationURL"
    )]
    #[schemars(length(max = 2048), regex(pattern = INTERNAL_URL))]
    pub internal_configuration_url: Option<String>,
}

/// Outbound webhook per change-history (audit log) entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditLogEventsHook {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<Endpoint>,
    pub templates: AuditLogTemplates,
    /// Policy statements a subscription uses when it has none of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub default_policy: Option<Vec<PolicyStatement>>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub include_error_response_body: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_method: Option<DeliveryMethod>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub use_standard_webhook_payload: bool,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditLogTemplates {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
}

impl AuditLogTemplates {
    /// `(manifest key, relative file path)` for every template the manifest names.
    pub fn entries(&self) -> Vec<(&'static str, &str)> {
        [
            ("flag", &self.flag),
            ("project", &self.project),
            ("environment", &self.environment),
            ("default", &self.default),
            ("validation", &self.validation),
            ("member", &self.member),
        ]
        .into_iter()
        .filter_map(|(key, path)| path.as_deref().map(|path| (key, path)))
        .collect()
    }

    /// The template the dispatcher uses for an event of this kind: `templates[kind]` for the
    /// kinds that have their own key, else `default`.
    pub fn for_kind(&self, kind: &str) -> Option<&str> {
        let specific = match kind {
            "flag" => self.flag.as_deref(),
            "project" => self.project.as_deref(),
            "environment" => self.environment.as_deref(),
            "member" => self.member.as_deref(),
            _ => None,
        };
        specific.or(self.default.as_deref())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum DeliveryMethod {
    Custom,
}

/// A LaunchDarkly policy statement as written in manifests (`defaultPolicy`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyStatement {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actions: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<PolicyEffect>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_actions: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_resources: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum PolicyEffect {
    Allow,
    Deny,
}

/// Outbound webhook for non-audit "observed events".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventsHook {
    pub endpoint: Endpoint,
    pub templates: EventsHookTemplates,
    #[serde(default, skip_serializing_if = "is_false")]
    pub include_error_response_body: bool,
    /// Allowed by the upstream `propertyNames` without a schema of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triggers: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventsHookTemplates {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured_rollout_regression_detected: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured_rollout_reverted: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_monitoring_new_issue_found: Option<String>,
}

impl EventsHookTemplates {
    pub fn entries(&self) -> Vec<(&'static str, &str)> {
        [
            (
                "measuredRolloutRegressionDetected",
                &self.measured_rollout_regression_detected,
            ),
            ("measuredRolloutReverted", &self.measured_rollout_reverted),
            (
                "errorMonitoringNewIssueFound",
                &self.error_monitoring_new_issue_found,
            ),
        ]
        .into_iter()
        .filter_map(|(key, path)| path.as_deref().map(|path| (key, path)))
        .collect()
    }
}

/// Inbound webhook that turns a flag on or off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Trigger {
    #[schemars(length(max = 2048), regex(pattern = HTTP_URL))]
    pub documentation: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<TriggerAuth>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parser: Option<TriggerParser>,
    /// Event name used when the parser finds none (default "An alert").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_event_name: Option<String>,
    /// Event names matching this regular expression are test events and change nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_event_name_regexp: Option<String>,
}

impl Trigger {
    pub const DEFAULT_EVENT_NAME: &'static str = "An alert";
    pub const DEFAULT_TEST_EVENT_NAME_REGEXP: &'static str = ".*[Tt][Ee][Ss][Tt].*";
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum TriggerAuth {
    SharedSecret,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TriggerParser {
    /// JSON pointers into the inbound body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// Inbound cohort/audience sync.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SyncedSegment {
    /// Handlebars template of the response body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_response_body: Option<String>,
    pub request_parser: SyncedSegmentRequestParser,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SyncedSegmentRequestParser {
    pub environment_id_path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_kind_path: Option<String>,
    pub cohort_id_path: String,
    pub cohort_name_path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cohort_url_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_array_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_member_array_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove_member_array_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub array_inclusion: Option<ArrayInclusion>,
    pub member_array_parser: MemberArrayParser,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ArrayInclusion {
    pub path: String,
    pub matcher: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MemberArrayParser {
    pub member_id_path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boolean_membership_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cohort_name_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cohort_id_path: Option<String>,
}

/// Push full flag data to an edge key-value store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FeatureStore {
    pub form_variables: Vec<FormVariable>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_request: Option<FeatureStoreValidationRequest>,
    pub feature_store_request: FeatureStoreRequest,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FeatureStoreValidationRequest {
    pub endpoint: Endpoint,
    pub parser: FeatureStoreValidationParser,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FeatureStoreValidationParser {
    /// JSON pointer to a boolean success flag in the validation response.
    pub success: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FeatureStoreRequest {
    pub endpoint: Endpoint,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_suffix: Option<String>,
}

/// External change-management approvals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Approval {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 100))]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environment_form_variables: Vec<FormVariable>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approval_form_variables: Vec<FormVariable>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_additional_approval_form_variables: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_approval_integration_configurations: bool,
    pub creation_request: ApprovalCreationRequest,
    pub status_request: ApprovalRequest,
    pub post_apply_request: ApprovalRequest,
    pub deletion_request: ApprovalRequest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_list_request: Option<MemberListRequest>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApprovalCreationRequest {
    pub endpoint: Endpoint,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parser: Option<ApprovalParser>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApprovalRequest {
    pub endpoint: Endpoint,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_body: Option<String>,
    pub parser: ApprovalParser,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApprovalParser {
    /// JSON pointer to the external approval id in the creation response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<String>,
    /// JSON pointer to the status value.
    pub status_value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_display: Option<String>,
    /// JavaScript regular expression: a matching status means approved.
    pub approval_matcher: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejection_matcher: Option<String>,
    /// Handlebars template of a link to the external change request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_template: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MemberListRequest {
    pub endpoint: Endpoint,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_body: Option<String>,
    pub parser: MemberListParser,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MemberListParser {
    pub member_array_path: String,
    pub member_items: MemberItems,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MemberItems {
    pub email: String,
    pub member_id: String,
}

/// Renders externally created flag links.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FlagLink {
    pub ui_blocks: UiBlocks,
    pub empty_state: EmptyState,
    pub header: String,
    /// Free-form map of metadata keys to their types.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, FlagLinkMetadata>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EmptyState {
    /// Upstream allows the key without giving it a schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lead_text: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FlagLinkMetadata {
    #[serde(rename = "type")]
    pub kind: MetadataType,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum MetadataType {
    String,
    Uri,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UiBlocks {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<UiImage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Upstream allows `title` and `description` without a schema; the catalogue uses an
    /// element block and a template string respectively.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<UiContext>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UiImage {
    pub source_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_icon: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_avatar: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UiContext {
    pub elements: Vec<UiBlockElement>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UiBlockElement {
    /// Handlebars template.
    pub text: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub is_bold: bool,
    /// The text is unix milliseconds to show as a readable time.
    #[serde(default, skip_serializing_if = "is_false")]
    pub is_timestamp: bool,
    /// Handlebars template; makes the element a link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// Flag custom-property keys reserved by the integration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReservedCustomProperty {
    #[schemars(length(max = 64))]
    pub name: String,
    #[schemars(length(max = 64))]
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BigSegmentStore {
    pub db_style: BigSegmentDbStyle,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum BigSegmentDbStyle {
    #[serde(rename = "redis")]
    Redis,
    #[serde(rename = "dynamoDB")]
    DynamoDb,
}

/// A UI button that sends an outbound request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ButtonAction {
    pub action_request: ButtonActionRequest,
    pub request_body_templates: Vec<RequestBodyTemplate>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ButtonActionRequest {
    pub endpoint: Endpoint,
}

/// Upstream leaves these items open (no `propertyNames`), so unknown keys are kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestBodyTemplate {
    pub key: String,
    /// Handlebars template of the JSON body.
    pub json_body: String,
    pub required_context: Vec<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExternalConfigurationPages {
    #[schemars(length(max = 2048), regex(pattern = HTTP_URL))]
    pub create_url: String,
    #[schemars(length(max = 2048), regex(pattern = HTTP_URL))]
    pub edit_url: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FlagImport {
    #[serde(default = "default_true")]
    pub include_error_response_body: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub templates: Option<FlagImportTemplates>,
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FlagImportTemplates {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_overview: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_details: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statsig: Option<String>,
}

impl FlagImportTemplates {
    pub fn entries(&self) -> Vec<(&'static str, &str)> {
        [
            ("splitOverview", &self.split_overview),
            ("splitDetails", &self.split_details),
            ("statsig", &self.statsig),
        ]
        .into_iter()
        .filter_map(|(key, path)| path.as_deref().map(|path| (key, path)))
        .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FlagCleanup {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub form_variables: Vec<FormVariable>,
}
