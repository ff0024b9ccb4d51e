//! Webhook endpoints: where an account wants its events, and with which secret.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use std::time::Duration;
use uuid::Uuid;

use super::StoreError;
use crate::{domain::AccountId, webhooks::WebhookSecret};

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Endpoint {
    pub id: Uuid,
    pub account_id: AccountId,
    pub url: String,
    pub description: String,
    pub event_types: Vec<String>,
    pub enabled: bool,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub failing_since: Option<DateTime<Utc>>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub disabled_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Endpoint {
    /// The secrets that sign a delivery now: the current one, and the previous one while its
    /// overlap after a rotation lasts.
    pub fn signing_secrets(&self, now: DateTime<Utc>) -> Vec<WebhookSecret> {
        let previous = self.previous_secret.as_deref().filter(|_| {
            self.previous_secret_expires_at
                .is_some_and(|until| until > now)
        });
        [Some(self.secret.as_str()), previous]
            .into_iter()
            .flatten()
            .filter_map(WebhookSecret::parse)
            .collect()
    }
}

const COLUMNS: &str = "id, account_id, url, description, event_types, enabled, secret, previous_secret,
    previous_secret_expires_at, failing_since, disabled_at, disabled_reason, created_at, updated_at";

fn sql(template: &str) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(template.replace("{COLUMNS}", COLUMNS))
}

/// A new endpoint's settings.
#[derive(Clone, Debug)]
pub struct NewEndpoint {
    pub url: String,
    pub description: String,
    pub event_types: Vec<String>,
    pub enabled: bool,
}

pub async fn create(
    pool: &PgPool,
    account: AccountId,
    new: &NewEndpoint,
    secret: &WebhookSecret,
) -> Result<Endpoint, StoreError> {
    Ok(sqlx::query_as::<_, Endpoint>(sql(
        "INSERT INTO webhook_endpoints (id, account_id, url, description, event_types, enabled, secret)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         RETURNING {COLUMNS}",
    ))
    .bind(Uuid::now_v7())
    .bind(account)
    .bind(&new.url)
    .bind(&new.description)
    .bind(&new.event_types)
    .bind(new.enabled)
    .bind(secret.expose())
    .fetch_one(pool)
    .await?)
}

pub async fn list(pool: &PgPool, account: AccountId) -> Result<Vec<Endpoint>, StoreError> {
    Ok(
        sqlx::query_as::<_, Endpoint>(sql("SELECT {COLUMNS} FROM webhook_endpoints
         WHERE account_id = $1 AND deleted_at IS NULL ORDER BY created_at, id"))
        .bind(account)
        .fetch_all(pool)
        .await?,
    )
}

pub async fn find(
    pool: &PgPool,
    account: AccountId,
    id: Uuid,
) -> Result<Option<Endpoint>, StoreError> {
    Ok(
        sqlx::query_as::<_, Endpoint>(sql("SELECT {COLUMNS} FROM webhook_endpoints
         WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL"))
        .bind(id)
        .bind(account)
        .fetch_optional(pool)
        .await?,
    )
}

/// Changes to an endpoint; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct EndpointPatch {
    pub url: Option<String>,
    pub description: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

/// Applies a patch. Enabling an endpoint also clears why it was disabled and its failure run.
pub async fn update(
    pool: &PgPool,
    account: AccountId,
    id: Uuid,
    patch: &EndpointPatch,
) -> Result<Option<Endpoint>, StoreError> {
    Ok(
        sqlx::query_as::<_, Endpoint>(sql("UPDATE webhook_endpoints SET
             url = coalesce($3, url),
             description = coalesce($4, description),
             event_types = coalesce($5, event_types),
             enabled = coalesce($6, enabled),
             disabled_at = CASE WHEN $6 THEN NULL ELSE disabled_at END,
             disabled_reason = CASE WHEN $6 THEN NULL ELSE disabled_reason END,
             failing_since = CASE WHEN $6 THEN NULL ELSE failing_since END,
             updated_at = now()
         WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL
         RETURNING {COLUMNS}"))
        .bind(id)
        .bind(account)
        .bind(patch.url.as_deref())
        .bind(patch.description.as_deref())
        .bind(patch.event_types.as_deref())
        .bind(patch.enabled)
        .fetch_optional(pool)
        .await?,
    )
}

/// Deletes an endpoint (kept for the delivery history, never delivered to again).
pub async fn delete(pool: &PgPool, account: AccountId, id: Uuid) -> Result<bool, StoreError> {
    let deleted = sqlx::query(
        "UPDATE webhook_endpoints SET deleted_at = now(), enabled = false, updated_at = now()
         WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL",
    )
    .bind(id)
    .bind(account)
    .execute(pool)
    .await?;
    Ok(deleted.rows_affected() == 1)
}

/// Installs a new secret; the current one keeps signing, second, for `overlap`.
pub async fn rotate_secret(
    pool: &PgPool,
    account: AccountId,
    id: Uuid,
    secret: &WebhookSecret,
    overlap: Duration,
) -> Result<Option<Endpoint>, StoreError> {
    Ok(
        sqlx::query_as::<_, Endpoint>(sql("UPDATE webhook_endpoints SET
             previous_secret = secret,
             previous_secret_expires_at = now() + make_interval(secs => $4),
             secret = $3,
             updated_at = now()
         WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL
         RETURNING {COLUMNS}"))
        .bind(id)
        .bind(account)
        .bind(secret.expose())
        .bind(overlap.as_secs_f64())
        .fetch_optional(pool)
        .await?,
    )
}
