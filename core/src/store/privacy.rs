//! GDPR: everything an account holds, as one document, and erasure that anonymises it while
//! the ledger stays whole (balances still equal their ledgers; `namaskah check` stays clean).

use serde_json::Value;
use sqlx::PgPool;

use super::StoreError;
use crate::domain::AccountId;

/// Every table's rows that belong to the account, as JSON built by PostgreSQL itself (so
/// no column is forgotten by a Rust struct). Secrets are left out: API key hashes and
/// webhook signing secrets are credentials, not personal data, and must not travel.
pub async fn export(pool: &PgPool, account: AccountId) -> Result<Option<Value>, StoreError> {
    let document: Option<Value> = sqlx::query_scalar(
        "SELECT jsonb_build_object(
             'account', to_jsonb(a) - 'open_verifications' - 'low_balance_notified',
             'api_keys', coalesce((SELECT jsonb_agg(to_jsonb(k) - 'key_hash' ORDER BY k.created_at)
                                   FROM api_keys k WHERE k.account_id = a.id), '[]'),
             'verifications', coalesce((SELECT jsonb_agg(to_jsonb(v) ORDER BY v.created_at)
                                        FROM verifications v WHERE v.account_id = a.id), '[]'),
             'ledger_entries', coalesce((SELECT jsonb_agg(to_jsonb(l) ORDER BY l.id)
                                         FROM ledger_entries l WHERE l.account_id = a.id), '[]'),
             'payments', coalesce((SELECT jsonb_agg(to_jsonb(p) ORDER BY p.created_at)
                                   FROM payments p WHERE p.account_id = a.id), '[]'),
             'webhook_endpoints', coalesce((SELECT jsonb_agg(to_jsonb(e) - 'secret' - 'previous_secret'
                                                             ORDER BY e.created_at)
                                            FROM webhook_endpoints e WHERE e.account_id = a.id), '[]'),
             'webhook_messages', coalesce((SELECT jsonb_agg(to_jsonb(m) ORDER BY m.created_at)
                                           FROM webhook_messages m WHERE m.account_id = a.id), '[]'),
             'referees', coalesce((SELECT jsonb_agg(jsonb_build_object('account_id', r.id,
                                                                      'referred_at', r.referred_at))
                                   FROM accounts r WHERE r.referred_by = a.id), '[]'),
             'exported_at', now())
         FROM accounts a WHERE a.id = $1",
    )
    .bind(account)
    .fetch_optional(pool)
    .await?;
    Ok(document)
}

/// Why an account could not be erased.
#[derive(Debug, PartialEq, Eq)]
pub enum Erasure {
    Erased,
    AlreadyErased,
    /// Verifications still running would write a phone number and code after the erasure.
    OpenVerifications(i64),
    NoSuchAccount,
}

/// Anonymises the account in one transaction: e-mail, numbers, codes and SMS texts (also in
/// webhook payloads), webhook URLs and the answers they gave, stored idempotent responses;
/// keys revoked, endpoints deleted. Ledger rows, payments and verification rows stay, without
/// anything that identifies a person.
pub async fn erase(pool: &PgPool, account: AccountId) -> Result<Erasure, StoreError> {
    let mut tx = pool.begin().await?;
    let state: Option<(Option<chrono::DateTime<chrono::Utc>>, i32)> = sqlx::query_as(
        "SELECT erased_at, open_verifications FROM accounts WHERE id = $1 FOR UPDATE",
    )
    .bind(account)
    .fetch_optional(&mut *tx)
    .await?;
    match state {
        None => return Ok(Erasure::NoSuchAccount),
        Some((Some(_), _)) => return Ok(Erasure::AlreadyErased),
        Some((None, open)) if open > 0 => return Ok(Erasure::OpenVerifications(open.into())),
        Some((None, _)) => {}
    }
    let statements = [
        "UPDATE accounts SET email = 'erased-' || id::text || '@erased.invalid', erased_at = now()
         WHERE id = $1",
        "UPDATE verifications SET phone_number = NULL, code = NULL, sms_text = NULL,
                                  personal_data_erased_at = coalesce(personal_data_erased_at, now())
         WHERE account_id = $1",
        "DELETE FROM verification_numbers
         WHERE verification_id IN (SELECT id FROM verifications WHERE account_id = $1)",
        "UPDATE webhook_messages
         SET payload = payload #- '{data,phone_number}' #- '{data,code}' #- '{data,sms_text}'
                               #- '{data,email}'
         WHERE account_id = $1",
        "DELETE FROM webhook_attempts WHERE delivery_id IN (
             SELECT d.id FROM webhook_deliveries d
             JOIN webhook_endpoints e ON e.id = d.endpoint_id WHERE e.account_id = $1)",
        "UPDATE webhook_endpoints
         SET url = 'https://erased.invalid/', description = '', enabled = false,
             deleted_at = coalesce(deleted_at, now()), updated_at = now()
         WHERE account_id = $1",
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()), name = '' WHERE account_id = $1",
        "DELETE FROM idempotency_keys WHERE account_id = $1",
        // The web app's sign-in goes with the e-mail address it used.
        "DELETE FROM customer_sessions WHERE account_id = $1",
        "DELETE FROM password_resets WHERE account_id = $1",
        "DELETE FROM customer_credentials WHERE account_id = $1",
    ];
    for statement in statements {
        sqlx::query(statement)
            .bind(account)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(Erasure::Erased)
}
