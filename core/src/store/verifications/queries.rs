//! Reading verifications: by id, for an account, a page at a time.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::{StoreError, Verification, sql};
use crate::domain::{AccountId, Status, VerificationId};

/// The most ids one statement names; a longer list is read in several.
const MOST_IDS_PER_STATEMENT: usize = 1024;

/// The verifications, in one statement per 1,024 ids; the answers are in the order of
/// `ids`, `None` for an unknown id.
///
/// The statement names its ids one parameter each, as many as the next power of two (the
/// last id repeated), rather than `id = ANY($1)`: PostgreSQL's generic plan of an array
/// parameter guesses ten rows and loses to a custom plan, so every call was planned anew,
/// as long as it ran (docs/benchmarks.md). A fixed number of parameters gets a generic
/// plan after five calls, and there are at most eleven such statements per connection.
pub async fn find_many(
    pool: &PgPool,
    ids: &[VerificationId],
) -> Result<Vec<Option<Verification>>, StoreError> {
    let mut found = std::collections::HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(MOST_IDS_PER_STATEMENT) {
        let Some(last) = chunk.last() else { continue };
        let arity = chunk.len().next_power_of_two();
        let placeholders: Vec<String> = (1..=arity).map(|n| format!("${n}")).collect();
        let statement = format!(
            "SELECT {{COLUMNS}} FROM verifications WHERE id IN ({})",
            placeholders.join(", ")
        );
        let mut query = sqlx::query_as::<_, Verification>(sql(&statement));
        for id in chunk
            .iter()
            .chain(std::iter::repeat_n(last, arity - chunk.len()))
        {
            query = query.bind(*id);
        }
        for verification in query.fetch_all(pool).await? {
            found.insert(verification.id, verification);
        }
    }
    Ok(ids.iter().map(|id| found.get(id).cloned()).collect())
}

/// The verification, if it belongs to the account; another account's id is "not found".
pub async fn find_for_account(
    pool: &PgPool,
    account: AccountId,
    id: VerificationId,
) -> Result<Option<Verification>, StoreError> {
    Ok(sqlx::query_as::<_, Verification>(sql(
        "SELECT {COLUMNS} FROM verifications WHERE id = $1 AND account_id = $2",
    ))
    .bind(id)
    .bind(account)
    .fetch_optional(pool)
    .await?)
}

/// A page of an account's verifications, newest first, optionally of one status and one
/// service.
pub async fn list_for_account(
    pool: &PgPool,
    account: AccountId,
    status: Option<Status>,
    service: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<Vec<Verification>, StoreError> {
    Ok(
        sqlx::query_as::<_, Verification>(sql("SELECT {COLUMNS} FROM verifications
         WHERE account_id = $1 AND ($2::text IS NULL OR status = $2)
           AND ($5::text IS NULL OR service = $5)
         ORDER BY created_at DESC, id DESC
         LIMIT $3 OFFSET $4"))
        .bind(account)
        .bind(status.map(Status::as_str))
        .bind(limit)
        .bind(offset)
        .bind(service)
        .fetch_all(pool)
        .await?,
    )
}

/// A page of an account's verifications, newest first, strictly after `cursor` (the
/// creation time and id of the last row of the previous page). Keyset pagination: a row
/// that existed when the first page was read appears on exactly one page, whatever is
/// inserted meanwhile (offsets would shift and skip or repeat rows).
pub async fn page_for_account(
    pool: &PgPool,
    account: AccountId,
    status: Option<Status>,
    cursor: Option<(DateTime<Utc>, VerificationId)>,
    limit: i64,
) -> Result<Vec<Verification>, StoreError> {
    let (created_at, id) = cursor.unzip();
    Ok(
        sqlx::query_as::<_, Verification>(sql("SELECT {COLUMNS} FROM verifications
         WHERE account_id = $1 AND ($2::text IS NULL OR status = $2)
           AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4))
         ORDER BY created_at DESC, id DESC
         LIMIT $5"))
        .bind(account)
        .bind(status.map(Status::as_str))
        .bind(created_at)
        .bind(id)
        .bind(limit)
        .fetch_all(pool)
        .await?,
    )
}
