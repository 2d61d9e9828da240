//! First start: the account, its owner member and an owner API token.

use flagstaff_model::account::{AccessToken, Account, Member, is_api_token_format, new_api_token};
use flagstaff_model::new_object_id;
use std::sync::Arc;

use flagstaff_policy::Resource;

use flagstaff_store::{EntityKind, EntityRef, EntityWrite, Store};
use serde::Deserialize;

use super::{AuditDraft, PendingChange, Services, access, decode, encode, now_millis};
use crate::auth::{hash_secret, token_alias};
use crate::error::{ApiError, ApiResult};

/// The outcome of [`bootstrap`].
pub struct Bootstrapped {
    pub account_id: String,
    /// The owner token's secret when this start created it from a random value: shown once.
    pub generated_token: Option<String>,
}

const API_VERSION: i64 = 20240415;

#[derive(Deserialize)]
struct AccountId {
    #[serde(rename = "_id")]
    id: String,
}

/// Makes sure an account with an owner exists. `requested_token` (from
/// `FLAGSTAFF_BOOTSTRAP_TOKEN`) becomes an owner token if it is not one already.
pub async fn bootstrap(
    store: Arc<dyn Store>,
    requested_token: Option<&str>,
) -> ApiResult<Bootstrapped> {
    if let Some(token) = requested_token
        && !is_api_token_format(token)
    {
        return Err(ApiError::invalid(
            "FLAGSTAFF_BOOTSTRAP_TOKEN must have the form api-<uuid>, e.g. api-6f1c2a4e-1b2c-4d5e-8f90-1234567890ab",
        ));
    }
    let existing = store.list(EntityKind::Account, "").await?;
    if let Some(account) = existing.first() {
        let account: AccountId = decode(&account.doc)?;
        if let Some(token) = requested_token
            && store
                .resolve_alias(&token_alias(&hash_secret(token)))
                .await?
                .is_none()
        {
            let owner = store
                .list(EntityKind::Member, "")
                .await?
                .into_iter()
                .map(|m| decode::<Member>(&m.doc))
                .find(|m| m.as_ref().is_ok_and(|m| m.role == "owner"));
            let owner =
                owner.ok_or_else(|| ApiError::Internal("the account has no owner".into()))??;
            let change = token_change(
                &owner,
                token,
                "bootstrap token (FLAGSTAFF_BOOTSTRAP_TOKEN)",
                now_millis(),
            )?;
            commit_with(store.clone(), &account.id, change).await?;
        }
        return Ok(Bootstrapped {
            account_id: account.id,
            generated_token: None,
        });
    }
    let now = now_millis();
    let account = Account {
        id: new_object_id(),
        name: "Flagstaff".into(),
        creation_date: now,
    };
    let owner = Member {
        id: new_object_id(),
        email: "owner@flagstaff.local".into(),
        first_name: Some("Flagstaff".into()),
        last_name: Some("Owner".into()),
        role: "owner".into(),
        custom_roles: Vec::new(),
        role_attributes: Default::default(),
        creation_date: now,
        last_seen: None,
        version: 1,
    };
    let (secret, generated) = match requested_token {
        Some(t) => (t.to_string(), None),
        None => {
            let t = new_api_token();
            (t.clone(), Some(t))
        }
    };
    let mut change = token_change(&owner, &secret, "bootstrap owner token", now)?;
    change.writes.insert(
        0,
        EntityWrite::Insert {
            target: EntityRef::new(EntityKind::Account, "", account.id.clone()),
            version: 1,
            doc: encode(&account)?,
            aliases: Vec::new(),
        },
    );
    change.writes.insert(
        1,
        EntityWrite::Insert {
            target: EntityRef::new(EntityKind::Member, "", owner.id.clone()),
            version: 1,
            doc: encode(&owner)?,
            aliases: Vec::new(),
        },
    );
    change
        .audit
        .description
        .insert(0, "Created the account and its owner member".into());
    change
        .audit
        .accesses
        .insert(0, access("createMember", &Resource::member(&owner.id)));
    commit_with(store, &account.id, change).await?;
    Ok(Bootstrapped {
        account_id: account.id,
        generated_token: generated,
    })
}

fn token_change(owner: &Member, secret: &str, name: &str, now: i64) -> ApiResult<PendingChange> {
    let token = AccessToken {
        id: new_object_id(),
        name: name.into(),
        owner_id: owner.id.clone(),
        member_id: owner.id.clone(),
        description: String::new(),
        role: Some("owner".into()),
        custom_role_ids: Vec::new(),
        inline_role: Vec::new(),
        service_token: false,
        secret_hash: hash_secret(secret),
        ending: flagstaff_model::account::secret_ending(secret),
        default_api_version: API_VERSION,
        creation_date: now,
        last_modified: now,
        last_used: None,
        previous_secret: None,
        version: 1,
    };
    let resource = Resource::personal_token(&owner.id, &token.id);
    Ok(PendingChange {
        writes: vec![EntityWrite::Insert {
            target: EntityRef::new(EntityKind::Token, "", token.id.clone()),
            version: 1,
            doc: encode(&token)?,
            aliases: vec![token_alias(&token.secret_hash)],
        }],
        audit: AuditDraft::single(
            "token",
            token.name.clone(),
            "createAccessToken",
            &resource,
            "created the access token",
            format!(
                "Created the owner access token *{}* ending in {}",
                token.name, token.ending
            ),
            "/settings/authorization",
        ),
        outbox: Vec::new(),
    })
}

/// Bootstrap runs before the application state exists; it commits through the same
/// [`Services::commit`] path as every other write.
async fn commit_with(
    store: Arc<dyn Store>,
    account_id: &str,
    change: PendingChange,
) -> ApiResult<()> {
    let services = Services::new(
        store,
        account_id.to_string(),
        tokio::sync::broadcast::channel(1).0,
    );
    services
        .commit(None, now_millis(), change)
        .await
        .map(|_| ())
        .map_err(super::CommitError::already_exists)
}
