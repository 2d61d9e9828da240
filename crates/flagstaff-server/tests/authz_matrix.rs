//! Authorization on every route: each operation of the generated OpenAPI document, called by
//! a token of each built-in role, against a fresh fixture. The statuses are kept as a
//! snapshot a reviewer can read (`tests/snapshots/authorization_matrix.txt`; regenerate with
//! `UPDATE_SNAPSHOTS=1`). A route without a case here fails the test.
//!
//! Also: the end-to-end least-privilege scenario of a service token with an inline policy.

mod support;

use std::collections::BTreeMap;

use flagstaff_testkit::app::{TEST_TOKEN, TestApp};
use reqwest::Method;
use serde_json::{Value, json};
use support::oauth::{Browser, PASSWORD, authorize_url, query};
use support::{call, call_with_type, member_with_token};

const ROLES: &[&str] = &["owner", "admin", "writer", "reader", "no_access"];

/// Operations any valid token may call, whatever its role.
const OPEN_TO_EVERY_TOKEN: &[&str] = &["getRoot", "getCallerIdentity", "getVersions"];

/// Keys of the fixture one case runs against.
#[derive(Clone)]
struct Fixture {
    n: usize,
    member_id: String,
    token_id: String,
    audit_id: String,
    webhook_id: String,
    subscription_id: String,
    delivery_id: String,
    client_id: String,
    /// The owner's authorization of `client_id`; made only for the case that revokes it.
    grant_id: String,
    approval_id: String,
    /// The client-side ID of the project's `test` environment (synced segments).
    env_client_id: String,
    /// A generic trigger on flag `f` in `test`.
    trigger_id: String,
    /// A URL link on flag `f`.
    link_id: String,
    /// A generic-feature-store configuration (off) of `test`.
    feature_store_id: String,
    /// A redis big-segment store configuration of `test`.
    big_segment_store_id: String,
}

/// A public address that passes the outbound policy; port 0 fails at once, so deliveries and
/// "validate connection" fail quickly without affecting the matrix.
const PUBLIC_URL: &str = "http://93.184.216.34:0/hook";
const SUBSCRIPTIONS: &str = "/api/v2/integrations/flagstaff-webhook";
const FEATURE_STORES: &str = "/api/v2/integration-capabilities/featureStore";
const BIG_SEGMENT_STORES: &str = "/api/v2/integration-capabilities/big-segment-store";

/// What one operation sends: method, path and body, given the fixture.
fn request_for(op: &str, f: &Fixture) -> Option<(Method, String, Option<Value>)> {
    let n = f.n;
    let p = format!("/api/v2/projects/m{n}");
    let flags = format!("/api/v2/flags/m{n}");
    let links = format!("/api/v2/flag-links/projects/m{n}/flags/f");
    let segs = format!("/api/v2/segments/m{n}/test");
    let patch_name = |name: &str| Some(json!([{"op": "replace", "path": "/name", "value": name}]));
    let approval = format!("/api/v2/approval-requests/{}", f.approval_id);
    let flag_approvals =
        format!("/api/v2/projects/m{n}/flags/f/environments/test/approval-requests");
    let flag_approval = format!("{flag_approvals}/{}", f.approval_id);
    Some(match op {
        "getRoot" => (Method::GET, "/api/v2".into(), None),
        "getCallerIdentity" => (Method::GET, "/api/v2/caller-identity".into(), None),
        "getVersions" => (Method::GET, "/api/v2/versions".into(), None),
        "getAuditLogEntries" => (Method::GET, "/api/v2/auditlog".into(), None),
        "getAuditLogEntry" => (
            Method::GET,
            format!("/api/v2/auditlog/{}", f.audit_id),
            None,
        ),
        "getProjects" => (Method::GET, "/api/v2/projects".into(), None),
        "postProject" => (
            Method::POST,
            "/api/v2/projects".into(),
            Some(json!({"key": format!("new{n}"), "name": "New"})),
        ),
        "getProject" => (Method::GET, p, None),
        "patchProject" => (Method::PATCH, p, patch_name("Renamed")),
        "deleteProject" => (Method::DELETE, p, None),
        "getEnvironmentsByProject" => (Method::GET, format!("{p}/environments"), None),
        "postEnvironment" => (
            Method::POST,
            format!("{p}/environments"),
            Some(json!({"key": "staging", "name": "Staging", "color": "00ff00"})),
        ),
        "getEnvironment" => (Method::GET, format!("{p}/environments/test"), None),
        "patchEnvironment" => (
            Method::PATCH,
            format!("{p}/environments/test"),
            Some(json!([{"op": "replace", "path": "/color", "value": "112233"}])),
        ),
        "deleteEnvironment" => (Method::DELETE, format!("{p}/environments/test"), None),
        "resetEnvironmentSDKKey" => (Method::POST, format!("{p}/environments/test/apiKey"), None),
        "resetEnvironmentMobileKey" => (
            Method::POST,
            format!("{p}/environments/test/mobileKey"),
            None,
        ),
        "getFeatureFlags" => (Method::GET, flags, None),
        "postFeatureFlag" => (
            Method::POST,
            flags,
            Some(json!({"key": "new-flag", "name": "New"})),
        ),
        "getFeatureFlag" => (Method::GET, format!("{flags}/f"), None),
        "patchFeatureFlag" => (
            Method::PATCH,
            format!("{flags}/f"),
            Some(json!([{"op": "replace", "path": "/environments/test/on", "value": true}])),
        ),
        "deleteFeatureFlag" => (Method::DELETE, format!("{flags}/f"), None),
        "copyFeatureFlag" => (
            Method::POST,
            format!("{flags}/f/copy"),
            Some(json!({"source": {"key": "production"}, "target": {"key": "test"}})),
        ),
        "getSegments" => (Method::GET, segs, None),
        "postSegment" => (
            Method::POST,
            segs,
            Some(json!({"key": "new-seg", "name": "New"})),
        ),
        "getSegment" => (Method::GET, format!("{segs}/s"), None),
        "getSegmentMembershipForContext" => (Method::GET, format!("{segs}/s/contexts/u"), None),
        "patchSegment" => (Method::PATCH, format!("{segs}/s"), patch_name("Renamed")),
        "deleteSegment" => (Method::DELETE, format!("{segs}/s"), None),
        "getApprovalRequests" => (Method::GET, "/api/v2/approval-requests".into(), None),
        "postApprovalRequest" => (
            Method::POST,
            "/api/v2/approval-requests".into(),
            Some(json!({"resourceId": format!("proj/m{n}:env/test:flag/f"),
                "description": "d", "instructions": [{"kind": "turnFlagOn"}]})),
        ),
        "getApprovalRequest" => (Method::GET, approval, None),
        "deleteApprovalRequest" => (Method::DELETE, approval, None),
        "postApprovalRequestReview" => (
            Method::POST,
            format!("{approval}/reviews"),
            Some(json!({"kind": "comment", "comment": "c"})),
        ),
        "postApprovalRequestApply" => (Method::POST, format!("{approval}/apply"), Some(json!({}))),
        "getApprovalsForFlag" => (Method::GET, flag_approvals, None),
        "postApprovalRequestForFlag" => (
            Method::POST,
            flag_approvals,
            Some(json!({"description": "d", "instructions": [{"kind": "turnFlagOn"}]})),
        ),
        "getApprovalForFlag" => (Method::GET, flag_approval, None),
        "deleteApprovalRequestForFlag" => (Method::DELETE, flag_approval, None),
        "postApprovalRequestReviewForFlag" => (
            Method::POST,
            format!("{flag_approval}/reviews"),
            Some(json!({"kind": "comment", "comment": "c"})),
        ),
        "postApprovalRequestApplyForFlag" => (
            Method::POST,
            format!("{flag_approval}/apply"),
            Some(json!({})),
        ),
        "getApprovalRequestSettings" => (
            Method::GET,
            format!("/api/v2/approval-requests/projects/m{n}/settings"),
            None,
        ),
        "patchApprovalRequestSettings" => (
            Method::PATCH,
            format!("/api/v2/approval-requests/projects/m{n}/settings"),
            Some(json!({"environmentKey": "test", "resourceKind": "flag", "minNumApprovals": 2})),
        ),
        "getMembers" => (Method::GET, "/api/v2/members".into(), None),
        "postMembers" => (
            Method::POST,
            "/api/v2/members".into(),
            Some(json!([{"email": format!("new{n}@example.com"), "role": "reader"}])),
        ),
        "getMember" => (
            Method::GET,
            format!("/api/v2/members/{}", f.member_id),
            None,
        ),
        "patchMember" => (
            Method::PATCH,
            format!("/api/v2/members/{}", f.member_id),
            Some(json!([{"op": "replace", "path": "/role", "value": "writer"}])),
        ),
        "deleteMember" => (
            Method::DELETE,
            format!("/api/v2/members/{}", f.member_id),
            None,
        ),
        "getCustomRoles" => (Method::GET, "/api/v2/roles".into(), None),
        "postCustomRole" => (
            Method::POST,
            "/api/v2/roles".into(),
            Some(
                json!({"key": format!("new-role{n}"), "name": "New", "policy": [{"effect": "allow", "actions": ["viewProject"], "resources": ["proj/*"]}]}),
            ),
        ),
        "getCustomRole" => (Method::GET, format!("/api/v2/roles/r{n}"), None),
        "patchCustomRole" => (
            Method::PATCH,
            format!("/api/v2/roles/r{n}"),
            patch_name("Renamed"),
        ),
        "deleteCustomRole" => (Method::DELETE, format!("/api/v2/roles/r{n}"), None),
        "getTeams" => (Method::GET, "/api/v2/teams".into(), None),
        "postTeam" => (
            Method::POST,
            "/api/v2/teams".into(),
            Some(json!({"key": format!("new-team{n}"), "name": "New"})),
        ),
        "getTeam" => (Method::GET, format!("/api/v2/teams/t{n}"), None),
        "patchTeam" => (
            Method::PATCH,
            format!("/api/v2/teams/t{n}"),
            Some(json!({"instructions": [{"kind": "updateName", "value": "Renamed"}]})),
        ),
        "deleteTeam" => (Method::DELETE, format!("/api/v2/teams/t{n}"), None),
        "getTokens" => (Method::GET, "/api/v2/tokens".into(), None),
        "postToken" => (
            Method::POST,
            "/api/v2/tokens".into(),
            Some(json!({"name": "minted", "role": "reader"})),
        ),
        "getToken" => (Method::GET, format!("/api/v2/tokens/{}", f.token_id), None),
        "patchToken" => (
            Method::PATCH,
            format!("/api/v2/tokens/{}", f.token_id),
            patch_name("renamed"),
        ),
        "deleteToken" => (
            Method::DELETE,
            format!("/api/v2/tokens/{}", f.token_id),
            None,
        ),
        "resetToken" => (
            Method::POST,
            format!("/api/v2/tokens/{}/reset", f.token_id),
            None,
        ),
        "getIntegrationManifests" => (Method::GET, "/api/v2/integration-manifests".into(), None),
        "getIntegrationManifest" => (
            Method::GET,
            "/api/v2/integration-manifests/flagstaff-webhook".into(),
            None,
        ),
        "getAllWebhooks" => (Method::GET, "/api/v2/webhooks".into(), None),
        "postWebhook" => (
            Method::POST,
            "/api/v2/webhooks".into(),
            Some(json!({"url": PUBLIC_URL, "sign": false, "on": true})),
        ),
        "getWebhook" => (
            Method::GET,
            format!("/api/v2/webhooks/{}", f.webhook_id),
            None,
        ),
        "patchWebhook" => (
            Method::PATCH,
            format!("/api/v2/webhooks/{}", f.webhook_id),
            patch_name("Renamed"),
        ),
        "deleteWebhook" => (
            Method::DELETE,
            format!("/api/v2/webhooks/{}", f.webhook_id),
            None,
        ),
        "getWebhookDeliveries" => (
            Method::GET,
            format!("/api/v2/webhooks/{}/deliveries", f.webhook_id),
            None,
        ),
        "getSubscriptions" => (Method::GET, SUBSCRIPTIONS.into(), None),
        "createSubscription" => (
            Method::POST,
            SUBSCRIPTIONS.into(),
            Some(json!({"name": "new", "config": {"url": PUBLIC_URL, "secret": "s"}})),
        ),
        "getSubscriptionByID" => (
            Method::GET,
            format!("{SUBSCRIPTIONS}/{}", f.subscription_id),
            None,
        ),
        "updateSubscription" => (
            Method::PATCH,
            format!("{SUBSCRIPTIONS}/{}", f.subscription_id),
            patch_name("Renamed"),
        ),
        "deleteSubscription" => (
            Method::DELETE,
            format!("{SUBSCRIPTIONS}/{}", f.subscription_id),
            None,
        ),
        "getSubscriptionDeliveries" => (
            Method::GET,
            format!("{SUBSCRIPTIONS}/{}/deliveries", f.subscription_id),
            None,
        ),
        "validateSubscription" => (
            Method::POST,
            format!("{SUBSCRIPTIONS}/{}/validate", f.subscription_id),
            None,
        ),
        "getAllIntegrationConfigurations" => (
            Method::GET,
            "/api/v2/integration-configurations/keys/flagstaff-webhook".into(),
            None,
        ),
        "createIntegrationConfiguration" => (
            Method::POST,
            "/api/v2/integration-configurations/keys/flagstaff-webhook".into(),
            Some(json!({"name": "new", "configValues": {"url": PUBLIC_URL, "secret": "s"}})),
        ),
        "getIntegrationConfiguration" => (
            Method::GET,
            format!("/api/v2/integration-configurations/{}", f.subscription_id),
            None,
        ),
        "updateIntegrationConfiguration" => (
            Method::PATCH,
            format!("/api/v2/integration-configurations/{}", f.subscription_id),
            patch_name("Renamed"),
        ),
        "deleteIntegrationConfiguration" => (
            Method::DELETE,
            format!("/api/v2/integration-configurations/{}", f.subscription_id),
            None,
        ),
        "getDelivery" => (
            Method::GET,
            format!("/api/v2/deliveries/{}", f.delivery_id),
            None,
        ),
        "redeliver" => (
            Method::POST,
            format!("/api/v2/deliveries/{}/redeliver", f.delivery_id),
            None,
        ),
        "getOAuthClients" => (Method::GET, "/api/v2/oauth/clients".into(), None),
        "createOAuth2Client" => (
            Method::POST,
            "/api/v2/oauth/clients".into(),
            Some(json!({"name": "New app", "redirectUri": "https://app.example.com/cb"})),
        ),
        "getOAuthClientById" => (
            Method::GET,
            format!("/api/v2/oauth/clients/{}", f.client_id),
            None,
        ),
        "patchOAuthClient" => (
            Method::PATCH,
            format!("/api/v2/oauth/clients/{}", f.client_id),
            patch_name("Renamed"),
        ),
        "deleteOAuthClient" => (
            Method::DELETE,
            format!("/api/v2/oauth/clients/{}", f.client_id),
            None,
        ),
        "getOAuthAuthorizations" => (Method::GET, "/api/v2/oauth/authorizations".into(), None),
        "deleteOAuthAuthorization" => (
            Method::DELETE,
            format!("/api/v2/oauth/authorizations/{}", f.grant_id),
            None,
        ),
        "getAuditLogEntryIntegrationContext" => (
            Method::GET,
            format!("/api/v2/auditlog/{}/integration-context", f.audit_id),
            None,
        ),
        "getIntegrationOAuthProviders" => (Method::GET, OAUTH_PROVIDERS.into(), None),
        "getIntegrationOAuthProvider" => (Method::GET, format!("{OAUTH_PROVIDERS}/o{n}"), None),
        "putIntegrationOAuthProvider" => (
            Method::PUT,
            format!("{OAUTH_PROVIDERS}/new{n}"),
            Some(oauth_provider()),
        ),
        "deleteIntegrationOAuthProvider" => {
            (Method::DELETE, format!("{OAUTH_PROVIDERS}/o{n}"), None)
        }
        "getIntegrationOAuthConnection" => (Method::GET, format!("{OAUTH_CONNECTIONS}/o{n}"), None),
        "deleteIntegrationOAuthConnection" => {
            (Method::DELETE, format!("{OAUTH_CONNECTIONS}/o{n}"), None)
        }
        "connectIntegrationOAuth" => (
            Method::POST,
            format!("{OAUTH_CONNECTIONS}/o{n}/connect"),
            None,
        ),
        "getTriggerWorkflows" => (Method::GET, format!("{flags}/f/triggers/test"), None),
        "createTriggerWorkflow" => (
            Method::POST,
            format!("{flags}/f/triggers/test"),
            Some(
                json!({"integrationKey": "generic-trigger", "instructions": [{"kind": "turnFlagOff"}]}),
            ),
        ),
        "getTriggerWorkflowById" => (
            Method::GET,
            format!("{flags}/f/triggers/test/{}", f.trigger_id),
            None,
        ),
        "patchTriggerWorkflow" => (
            Method::PATCH,
            format!("{flags}/f/triggers/test/{}", f.trigger_id),
            Some(json!({"instructions": [{"kind": "disableTrigger"}]})),
        ),
        "deleteTriggerWorkflow" => (
            Method::DELETE,
            format!("{flags}/f/triggers/test/{}", f.trigger_id),
            None,
        ),
        "getFlagLinks" => (Method::GET, links.clone(), None),
        "createFlagLink" => (
            Method::POST,
            links.clone(),
            Some(json!({"deepLink": "https://example.com/issue/1", "title": "T"})),
        ),
        "getFlagLink" => (Method::GET, format!("{links}/{}", f.link_id), None),
        "updateFlagLink" => (
            Method::PATCH,
            format!("{links}/{}", f.link_id),
            Some(json!([{"op": "add", "path": "/title", "value": "U"}])),
        ),
        "deleteFlagLink" => (Method::DELETE, format!("{links}/{}", f.link_id), None),
        "getIntegrationDeliveryConfigurations" => (Method::GET, FEATURE_STORES.into(), None),
        "getIntegrationDeliveryConfigurationByEnvironment" => {
            (Method::GET, format!("{FEATURE_STORES}/m{n}/test"), None)
        }
        "createIntegrationDeliveryConfiguration" => (
            Method::POST,
            format!("{FEATURE_STORES}/m{n}/test/generic-feature-store"),
            Some(
                json!({"name": "new", "config": {"featureStoreReqUrl": PUBLIC_URL,
                "validationReqUrl": PUBLIC_URL}}),
            ),
        ),
        "getIntegrationDeliveryConfigurationById" => (
            Method::GET,
            format!(
                "{FEATURE_STORES}/m{n}/test/generic-feature-store/{}",
                f.feature_store_id
            ),
            None,
        ),
        "patchIntegrationDeliveryConfiguration" => (
            Method::PATCH,
            format!(
                "{FEATURE_STORES}/m{n}/test/generic-feature-store/{}",
                f.feature_store_id
            ),
            patch_name("Renamed"),
        ),
        "deleteIntegrationDeliveryConfiguration" => (
            Method::DELETE,
            format!(
                "{FEATURE_STORES}/m{n}/test/generic-feature-store/{}",
                f.feature_store_id
            ),
            None,
        ),
        "validateIntegrationDeliveryConfiguration" => (
            Method::POST,
            format!(
                "{FEATURE_STORES}/m{n}/test/generic-feature-store/{}/validate",
                f.feature_store_id
            ),
            None,
        ),
        "getBigSegmentStoreIntegrations" => (Method::GET, BIG_SEGMENT_STORES.into(), None),
        "createBigSegmentStoreIntegration" => (
            Method::POST,
            format!("{BIG_SEGMENT_STORES}/m{n}/test/redis"),
            Some(json!({"name": "new", "config": {"host": "93.184.216.34"}})),
        ),
        "getBigSegmentStoreIntegration" => (
            Method::GET,
            format!(
                "{BIG_SEGMENT_STORES}/m{n}/test/redis/{}",
                f.big_segment_store_id
            ),
            None,
        ),
        "patchBigSegmentStoreIntegration" => (
            Method::PATCH,
            format!(
                "{BIG_SEGMENT_STORES}/m{n}/test/redis/{}",
                f.big_segment_store_id
            ),
            patch_name("Renamed"),
        ),
        "deleteBigSegmentStoreIntegration" => (
            Method::DELETE,
            format!(
                "{BIG_SEGMENT_STORES}/m{n}/test/redis/{}",
                f.big_segment_store_id
            ),
            None,
        ),
        "postSegmentTargets" => (
            Method::POST,
            "/api/v2/segment-targets/amplitude".into(),
            Some(json!({"environmentId": f.env_client_id, "batch": [
                {"userId": "u", "cohortId": "c", "cohortName": "C", "value": true}]})),
        ),
        "getReservedCustomProperties" => (
            Method::GET,
            "/api/v2/integration-capabilities/reserved-custom-properties".into(),
            None,
        ),
        _ => return None,
    })
}

const OAUTH_PROVIDERS: &str = "/api/v2/integration-oauth/providers";
const OAUTH_CONNECTIONS: &str = "/api/v2/integration-oauth/connections";

/// An authorization-code provider registration (connecting makes no outbound call).
fn oauth_provider() -> Value {
    json!({"authorizationUrl": "https://partner.example/authorize", "tokenUrl": PUBLIC_URL,
           "clientId": "c", "clientSecret": "s", "baseUri": PUBLIC_URL})
}

/// The conformance catalogue besides the built-in integrations: trigger and synced-segment
/// routes need integrations with those capabilities.
fn with_catalogue(state: flagstaff_server::AppState) -> flagstaff_server::AppState {
    state.with_integrations(flagstaff_testkit::integrations::catalogue_integrations(
        flagstaff_testkit::integrations::Outbound::PublicOnly,
        flagstaff_server::integrations::DeliverySettings::default(),
    ))
}

/// A project `m{n}` (flag `f` on in production only, segment `s` in test), a custom role
/// `r{n}`, a team `t{n}`, a reader member and a service token, all made by the owner.
async fn fixture(app: &TestApp, n: usize) -> Fixture {
    let webhook = app
        .post(
            "/api/v2/webhooks",
            // Only the fixture's project creation is delivered: one delivery to look at,
            // without a background delivery for every change of the matrix.
            json!({"url": PUBLIC_URL, "sign": true, "on": true, "name": format!("w{n}"),
                "statements": [{"effect": "allow", "actions": ["createProject"], "resources": ["proj/*"]}]}),
        )
        .await
        .expect(200);
    let subscription = app
        .post(
            SUBSCRIPTIONS,
            json!({"name": format!("s{n}"), "config": {"url": PUBLIC_URL, "secret": "s"},
                "statements": [{"effect": "deny", "actions": ["*"], "resources": ["proj/*"]}]}),
        )
        .await
        .expect(201);
    // Provider `o{n}` with a pending authorization (a connection document to disconnect).
    app.request(
        Method::PUT,
        &format!("{OAUTH_PROVIDERS}/o{n}"),
        Some(oauth_provider().to_string()),
        None,
    )
    .await
    .expect(200);
    app.post(&format!("{OAUTH_CONNECTIONS}/o{n}/connect"), json!({}))
        .await
        .expect(200);
    app.post(
        "/api/v2/projects",
        json!({"key": format!("m{n}"), "name": "M"}),
    )
    .await
    .expect(201);
    app.post(
        &format!("/api/v2/flags/m{n}"),
        json!({"key": "f", "name": "F"}),
    )
    .await
    .expect(201);
    app.patch(
        &format!("/api/v2/flags/m{n}/f"),
        json!([{"op": "replace", "path": "/environments/production/on", "value": true}]),
    )
    .await
    .expect(200);
    app.post(
        &format!("/api/v2/segments/m{n}/test"),
        json!({"key": "s", "name": "S"}),
    )
    .await
    .expect(201);
    // An approved request (the owner may approve their own here) on the flag in `test`.
    app.patch(
        &format!("/api/v2/projects/m{n}/environments/test"),
        json!([{"op": "add", "path": "/approvalSettings", "value": {"required": false,
            "minNumApprovals": 1, "canReviewOwnRequest": true, "serviceKind": "launchdarkly"}}]),
    )
    .await
    .expect(200);
    let approval = app
        .post(
            "/api/v2/approval-requests",
            json!({"resourceId": format!("proj/m{n}:env/test:flag/f"), "description": "d",
                "instructions": [{"kind": "turnFlagOn"}]}),
        )
        .await
        .expect(201);
    let approval_id = approval["_id"].as_str().unwrap().to_string();
    app.post(
        &format!("/api/v2/approval-requests/{approval_id}/reviews"),
        json!({"kind": "approve"}),
    )
    .await
    .expect(200);
    app.post("/api/v2/roles", json!({"key": format!("r{n}"), "name": "R", "policy": [{"effect": "allow", "actions": ["viewProject"], "resources": ["proj/*"]}]})).await.expect(201);
    app.post(
        "/api/v2/teams",
        json!({"key": format!("t{n}"), "name": "T"}),
    )
    .await
    .expect(201);
    let member = app
        .post(
            "/api/v2/members",
            json!([{"email": format!("m{n}@example.com"), "role": "reader"}]),
        )
        .await
        .expect(201);
    let token = app
        .post(
            "/api/v2/tokens",
            json!({"name": format!("svc{n}"), "role": "reader", "serviceToken": true}),
        )
        .await
        .expect(201);
    let trigger = app
        .post(
            &format!("/api/v2/flags/m{n}/f/triggers/test"),
            json!({"integrationKey": "generic-trigger", "instructions": [{"kind": "turnFlagOn"}]}),
        )
        .await
        .expect(201);
    let link = app
        .post(
            &format!("/api/v2/flag-links/projects/m{n}/flags/f"),
            json!({"deepLink": "https://example.com/issue/0"}),
        )
        .await
        .expect(201);
    let env = app
        .get(&format!("/api/v2/projects/m{n}/environments/test"))
        .await
        .expect(200);
    let audit = app.get("/api/v2/auditlog?limit=1&q=m").await.expect(200);
    let feature_store = app
        .post(
            &format!("{FEATURE_STORES}/m{n}/test/generic-feature-store"),
            json!({"name": "fs", "config": {"featureStoreReqUrl": PUBLIC_URL,
                "validationReqUrl": PUBLIC_URL}}),
        )
        .await
        .expect(201);
    let big_segment_store = app
        .post(
            &format!("{BIG_SEGMENT_STORES}/m{n}/test/redis"),
            json!({"name": "bss", "config": {"host": "93.184.216.34", "password": "p"}}),
        )
        .await
        .expect(201);
    let client = app
        .post(
            "/api/v2/oauth/clients",
            json!({"name": format!("app{n}"), "redirectUri": "http://127.0.0.1:1/cb"}),
        )
        .await
        .expect(201);
    let webhook_id = webhook["_id"].as_str().unwrap().to_string();
    let deliveries = app
        .get(&format!("/api/v2/webhooks/{webhook_id}/deliveries"))
        .await
        .expect(200);
    Fixture {
        n,
        member_id: member["items"][0]["_id"].as_str().unwrap().to_string(),
        token_id: token["_id"].as_str().unwrap().to_string(),
        audit_id: audit["items"][0]["_id"].as_str().unwrap().to_string(),
        webhook_id,
        subscription_id: subscription["_id"].as_str().unwrap().to_string(),
        delivery_id: deliveries["items"][0]["_id"].as_str().unwrap().to_string(),
        client_id: client["_clientId"].as_str().unwrap().to_string(),
        grant_id: String::new(),
        approval_id,
        env_client_id: env["_id"].as_str().unwrap().to_string(),
        trigger_id: trigger["_id"].as_str().unwrap().to_string(),
        link_id: link["_id"].as_str().unwrap().to_string(),
        feature_store_id: feature_store["_id"].as_str().unwrap().to_string(),
        big_segment_store_id: big_segment_store["_id"].as_str().unwrap().to_string(),
    }
}

/// Password hashing cheap enough for tests (production uses OWASP's argon2id parameters).
fn cheap_passwords() -> flagstaff_server::services::oauth::OAuthSettings {
    flagstaff_server::services::oauth::OAuthSettings {
        argon2_memory_kib: 64,
        argon2_iterations: 1,
        ..Default::default()
    }
}

/// The owner signs in and authorizes the fixture's client; returns the authorization's id.
async fn owner_grant(app: &TestApp, browser: &mut Browser, f: &Fixture) -> String {
    let location = browser
        .consent(
            &authorize_url(&[("response_type", "code"), ("client_id", &f.client_id)]),
            "owner@flagstaff.local",
            "allow",
        )
        .await;
    assert!(query(&location).contains_key("code"), "{location}");
    let grants = app.get("/api/v2/oauth/authorizations").await.expect(200);
    grants["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["clientId"] == f.client_id.as_str())
        .unwrap()["_id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_times_every_built_in_role() {
    let app = TestApp::sqlite_with(|state| {
        with_catalogue(state.with_rate_limit(0).with_oauth(cheap_passwords()))
    })
    .await;
    flagstaff_server::services::oauth::set_password_offline(
        app.store.clone(),
        "owner@flagstaff.local",
        PASSWORD,
        &cheap_passwords(),
    )
    .await
    .unwrap();
    let mut browser = Browser::new(&app);
    let mut secrets: BTreeMap<&str, String> = BTreeMap::new();
    let mut member_ids: BTreeMap<&str, String> = BTreeMap::new();
    secrets.insert("owner", TEST_TOKEN.to_string());
    for role in ["admin", "writer", "reader", "no_access"] {
        let (id, secret) = member_with_token(&app, &format!("{role}@matrix.test"), role).await;
        secrets.insert(role, secret);
        member_ids.insert(role, id);
    }
    let doc = app.get("/api/v2/openapi.json").await.expect(200);
    let mut operations: Vec<String> = Vec::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            operations.push(op["operationId"].as_str().unwrap().to_string());
        }
    }
    operations.sort();
    let probe = Fixture {
        n: 0,
        member_id: String::new(),
        token_id: String::new(),
        audit_id: String::new(),
        webhook_id: String::new(),
        subscription_id: String::new(),
        delivery_id: String::new(),
        client_id: String::new(),
        grant_id: String::new(),
        approval_id: String::new(),
        env_client_id: String::new(),
        trigger_id: String::new(),
        link_id: String::new(),
        feature_store_id: String::new(),
        big_segment_store_id: String::new(),
    };
    let undeclared: Vec<&String> = operations
        .iter()
        .filter(|op| request_for(op, &probe).is_none())
        .collect();
    assert!(
        undeclared.is_empty(),
        "routes without an authorization case: {undeclared:?}"
    );

    let mut n = 0;
    let mut lines = vec![format!(
        "{:<28}{}",
        "operation",
        ROLES.iter().map(|r| format!("{r:>11}")).collect::<String>()
    )];
    let mut problems = Vec::new();
    // Reads change nothing, so they all share one fixture; every write gets a fresh one.
    // (Fixtures are most of the test's time, and a 2-core CI machine runs it.)
    let shared = fixture(&app, 0).await;
    for op in &operations {
        let mut line = format!("{op:<28}");
        for role in ROLES {
            let reads_only = request_for(op, &shared).is_some_and(|(m, _, _)| m == Method::GET);
            let mut f = if reads_only {
                shared.clone()
            } else {
                n += 1;
                fixture(&app, n).await
            };
            if op == "deleteOAuthAuthorization" {
                f.grant_id = owner_grant(&app, &mut browser, &f).await;
            }
            let (method, path, body) = request_for(op, &f).unwrap();
            let content_type = if op == "patchTeam" || op == "patchTriggerWorkflow" {
                "application/json; domain-model=launchdarkly.semanticpatch"
            } else {
                "application/json"
            };
            let response =
                call_with_type(&app, &secrets[role], method, &path, body, content_type).await;
            let status = response.status;
            line.push_str(&format!("{status:>11}"));
            let open = OPEN_TO_EVERY_TOKEN.contains(&op.as_str());
            if *role == "owner" && status == 403 {
                problems.push(format!("owner was refused {op}: {}", response.body));
            }
            // no_access may list, seeing nothing but itself (its own member and personal
            // token), and is told "not found" for what it cannot see; anything else is a 403.
            let own = member_ids.get(role).cloned().unwrap_or_default();
            let only_own = status == 200
                && response.body["items"].as_array().is_some_and(|items| {
                    items
                        .iter()
                        .all(|i| i["_id"] == own.as_str() || i["memberId"] == own.as_str())
                });
            if *role == "no_access" && !open && status != 403 && status != 404 && !only_own {
                problems.push(format!(
                    "no_access was not refused {op}: {status} {}",
                    response.body
                ));
            }
            if open && status == 403 {
                problems.push(format!(
                    "{role} was refused {op}, which every token may call"
                ));
            }
            if status == 403 {
                let message = response.message();
                assert!(
                    message.contains("action") && message.contains('"'),
                    "403 must say which action on which resource: {message}"
                );
            }
            if status >= 500 {
                problems.push(format!("{role} {op}: {status} {}", response.body));
            }
        }
        lines.push(line);
    }
    let table = lines.join("\n") + "\n";
    println!("{table}");
    assert!(
        problems.is_empty(),
        "authorization problems:\n{}",
        problems.join("\n")
    );
    let snapshot = flagstaff_testkit::conformance::workspace_root()
        .join("crates/flagstaff-server/tests/snapshots/authorization_matrix.txt");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() || !snapshot.exists() {
        std::fs::write(&snapshot, &table).unwrap();
    }
    let expected = std::fs::read_to_string(&snapshot).unwrap();
    assert_eq!(
        table, expected,
        "the authorization matrix changed; review it and run with UPDATE_SNAPSHOTS=1 to accept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_privilege_service_token_toggles_test_only() {
    let app = TestApp::sqlite().await;
    app.post("/api/v2/projects", json!({"key": "shop", "name": "Shop"}))
        .await
        .expect(201);
    app.post(
        "/api/v2/flags/shop",
        json!({"key": "checkout", "name": "Checkout"}),
    )
    .await
    .expect(201);
    let token = app
        .post(
            "/api/v2/tokens",
            json!({"name": "ci-integration", "serviceToken": true,
                   "inlineRole": [{"effect": "allow", "actions": ["update*"], "resources": ["proj/*:env/test:flag/*"]}]}),
        )
        .await
        .expect(201);
    let secret = token["token"].as_str().unwrap().to_string();
    let toggle =
        |env: &str| json!({"environmentKey": env, "instructions": [{"kind": "turnFlagOn"}]});
    let semantic = "application/json; domain-model=launchdarkly.semanticpatch";
    let ok = call_with_type(
        &app,
        &secret,
        Method::PATCH,
        "/api/v2/flags/shop/checkout",
        Some(toggle("test")),
        semantic,
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.body["environments"]["test"]["on"], true);
    let denied = call_with_type(
        &app,
        &secret,
        Method::PATCH,
        "/api/v2/flags/shop/checkout",
        Some(toggle("production")),
        semantic,
    )
    .await;
    assert_eq!(denied.status, 403);
    assert_eq!(denied.code(), "forbidden");
    assert!(
        denied.message().contains("updateOn")
            && denied
                .message()
                .contains("proj/shop:env/production:flag/checkout"),
        "{}",
        denied.message()
    );
    // Nothing else: no reads, no other writes.
    assert_eq!(
        call(
            &app,
            &secret,
            Method::GET,
            "/api/v2/flags/shop/checkout",
            None
        )
        .await
        .status,
        403
    );
    assert_eq!(
        call(
            &app,
            &secret,
            Method::DELETE,
            "/api/v2/flags/shop/checkout",
            None
        )
        .await
        .status,
        403
    );
    let flag = app.get("/api/v2/flags/shop/checkout").await.expect(200);
    assert_eq!(
        flag["environments"]["production"]["on"], false,
        "the refused change wrote nothing"
    );
    let entry = &app.get("/api/v2/auditlog?limit=1").await.expect(200)["items"][0];
    assert_eq!(
        entry["accesses"][0]["resource"],
        "proj/shop:env/test:flag/checkout"
    );
    assert_eq!(entry["token"]["name"], "ci-integration");
    assert_eq!(entry["token"]["serviceToken"], true);
    assert_eq!(entry["token"]["ending"], secret[secret.len() - 4..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_attributes_scope_a_token_and_losing_them_revokes_access() {
    let app = TestApp::sqlite().await;
    for key in ["alpha", "beta"] {
        app.post("/api/v2/projects", json!({"key": key, "name": key}))
            .await
            .expect(201);
    }
    let member = app
        .post(
            "/api/v2/members",
            json!([{"email": "dev@example.com", "role": "writer", "roleAttributes": {"projects": ["alpha"]}}]),
        )
        .await
        .expect(201);
    let member_id = member["items"][0]["_id"].as_str().unwrap().to_string();
    let token = app
        .post(
            "/api/v2/tokens",
            json!({"name": "scoped", "memberId": member_id,
                   "inlineRole": [{"effect": "allow", "actions": ["viewProject", "createFlag"],
                                   "resources": ["proj/${roleAttribute/projects}", "proj/${roleAttribute/projects}:env/*:flag/*"]}]}),
        )
        .await
        .expect(201);
    let secret = token["token"].as_str().unwrap().to_string();
    let flag = |n: &str| json!({"key": n, "name": n});
    assert_eq!(
        call(
            &app,
            &secret,
            Method::POST,
            "/api/v2/flags/alpha",
            Some(flag("a1"))
        )
        .await
        .status,
        201
    );
    assert_eq!(
        call(
            &app,
            &secret,
            Method::POST,
            "/api/v2/flags/beta",
            Some(flag("b1"))
        )
        .await
        .status,
        403
    );
    app.patch(
        &format!("/api/v2/members/{member_id}"),
        json!([{"op": "remove", "path": "/roleAttributes/projects"}]),
    )
    .await
    .expect(200);
    let after = call(
        &app,
        &secret,
        Method::POST,
        "/api/v2/flags/alpha",
        Some(flag("a2")),
    )
    .await;
    assert_eq!(
        after.status, 403,
        "a placeholder without a value grants nothing: {}",
        after.body
    );
}
