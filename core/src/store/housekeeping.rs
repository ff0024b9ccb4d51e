//! Retention: personal data erased after its window, old history deleted.

use sqlx::PgPool;
use std::time::Duration;

use super::StoreError;

/// Erases the SMS text, code and phone number of settled verifications created more than
/// `older_than` ago, and the same fields in their webhook payloads. Rows stay for accounting.
pub async fn erase_personal_data(pool: &PgPool, older_than: Duration) -> Result<u64, StoreError> {
    let mut tx = pool.begin().await?;
    let erased: i64 = sqlx::query_scalar(
        "WITH erased AS (
             UPDATE verifications SET sms_text = NULL, code = NULL, phone_number = NULL,
                                      personal_data_erased_at = now()
             WHERE personal_data_erased_at IS NULL
               AND created_at < now() - make_interval(secs => $1)
               AND status IN ('completed', 'refunded')
             RETURNING id
         ), unlisted AS (
             DELETE FROM verification_numbers n USING erased e WHERE n.verification_id = e.id
         )
         SELECT count(*) FROM erased",
    )
    .bind(older_than.as_secs_f64())
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE webhook_messages
         SET payload = jsonb_set(jsonb_set(jsonb_set(payload, '{data,sms_text}', 'null'),
                                           '{data,code}', 'null'), '{data,phone_number}', 'null')
         WHERE created_at < now() - make_interval(secs => $1)
           AND event_type LIKE 'verification.%'
           AND (payload #>> '{data,phone_number}' IS NOT NULL OR payload #>> '{data,code}' IS NOT NULL
                OR payload #>> '{data,sms_text}' IS NOT NULL)",
    )
    .bind(older_than.as_secs_f64())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    // A count is never negative.
    Ok(u64::try_from(erased).unwrap_or_default())
}

/// Deletes webhook delivery attempts older than `older_than`: they keep the first KiB of
/// whatever the customer's server answered, which may be personal data.
pub async fn delete_old_webhook_attempts(
    pool: &PgPool,
    older_than: Duration,
) -> Result<u64, StoreError> {
    Ok(sqlx::query(
        "DELETE FROM webhook_attempts WHERE attempted_at < now() - make_interval(secs => $1)",
    )
    .bind(older_than.as_secs_f64())
    .execute(pool)
    .await?
    .rows_affected())
}

/// Deletes outbox rows marked sent. The relay deletes the rows it publishes; only a relay of
/// the release before (migration 0017), running during a rolling deploy, marks them.
pub async fn delete_sent_outbox_rows(pool: &PgPool) -> Result<u64, StoreError> {
    Ok(sqlx::query("DELETE FROM outbox WHERE sent_at IS NOT NULL")
        .execute(pool)
        .await?
        .rows_affected())
}

/// Deletes the web app's and the dashboard's sessions that expired, and password-reset
/// links a day after they expired (kept that long to tell "expired" from "never sent" in
/// an investigation).
pub async fn delete_expired_sessions(pool: &PgPool) -> Result<u64, StoreError> {
    let mut deleted = 0;
    for statement in [
        "DELETE FROM customer_sessions WHERE expires_at < now()",
        "DELETE FROM admin_sessions WHERE expires_at < now()",
        "DELETE FROM password_resets WHERE expires_at < now() - interval '1 day'",
    ] {
        deleted += sqlx::query(statement).execute(pool).await?.rows_affected();
    }
    Ok(deleted)
}
