//! An account's events in stream order, for `GET /v2/events` and `expand=events`.
//!
//! Events are the rows of `webhook_messages`. Stream order is (transaction id, seq), and
//! only events of transactions older than every transaction still running are handed out
//! (migration 0008 explains why): a position is then final, and resuming after an event
//! never skips one that committed late.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgPool;

use super::StoreError;
use crate::domain::{AccountId, VerificationId};

/// Where a stream is: just after the event at (`xact_id`, `seq`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamPosition {
    pub xact_id: u64,
    pub seq: i64,
}

impl StreamPosition {
    /// The event id clients send back in `Last-Event-ID`: `<xact_id>-<seq>`.
    pub fn to_event_id(self) -> String {
        format!("{}-{}", self.xact_id, self.seq)
    }

    pub fn parse(event_id: &str) -> Option<Self> {
        let (xact_id, seq) = event_id.trim().split_once('-')?;
        Some(Self {
            xact_id: xact_id.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Event {
    pub id: String,
    pub event_type: String,
    pub payload: Value,
    pub created_at: DateTime<Utc>,
    #[sqlx(try_from = "String")]
    pub xact_id: XactId,
    pub seq: i64,
}

/// A transaction id read as text (xid8 has no binary decoding in sqlx).
#[derive(Clone, Copy, Debug)]
pub struct XactId(pub u64);

impl TryFrom<String> for XactId {
    type Error = std::num::ParseIntError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse().map(XactId)
    }
}

impl Event {
    pub fn position(&self) -> StreamPosition {
        StreamPosition {
            xact_id: self.xact_id.0,
            seq: self.seq,
        }
    }
}

const COLUMNS: &str = "id, event_type, payload, created_at, xact_id::text AS xact_id, seq";

/// The account's next events after `after` (from the start when `None`), at most `limit`.
pub async fn after(
    pool: &PgPool,
    account: AccountId,
    after: Option<StreamPosition>,
    limit: i64,
) -> Result<Vec<Event>, StoreError> {
    let position = after.unwrap_or_default();
    let sql = format!(
        "SELECT {COLUMNS} FROM webhook_messages
         WHERE account_id = $1
           AND (xact_id, seq) > ($2::text::xid8, $3)
           AND xact_id < pg_snapshot_xmin(pg_current_snapshot())
         ORDER BY xact_id, seq
         LIMIT $4"
    );
    Ok(sqlx::query_as::<_, Event>(sqlx::AssertSqlSafe(sql))
        .bind(account)
        .bind(position.xact_id.to_string())
        .bind(position.seq)
        .bind(limit)
        .fetch_all(pool)
        .await?)
}

/// Where a stream that wants only new events starts: after everything final so far.
pub async fn head(pool: &PgPool, account: AccountId) -> Result<StreamPosition, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM webhook_messages
         WHERE account_id = $1 AND xact_id < pg_snapshot_xmin(pg_current_snapshot())
         ORDER BY xact_id DESC, seq DESC
         LIMIT 1"
    );
    let last = sqlx::query_as::<_, Event>(sqlx::AssertSqlSafe(sql))
        .bind(account)
        .fetch_optional(pool)
        .await?;
    Ok(last.map(|event| event.position()).unwrap_or_default())
}

/// The events of these verifications, oldest first.
pub async fn of_verifications(
    pool: &PgPool,
    account: AccountId,
    verifications: &[VerificationId],
) -> Result<Vec<Event>, StoreError> {
    let ids: Vec<String> = verifications.iter().map(ToString::to_string).collect();
    let sql = format!(
        "SELECT {COLUMNS} FROM webhook_messages
         WHERE payload #>> '{{data,id}}' = ANY($1) AND account_id = $2
         ORDER BY xact_id, seq"
    );
    Ok(sqlx::query_as::<_, Event>(sqlx::AssertSqlSafe(sql))
        .bind(&ids)
        .bind(account)
        .fetch_all(pool)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_round_trip_and_reject_garbage() {
        let position = StreamPosition {
            xact_id: 643_956,
            seq: 12,
        };
        assert_eq!(position.to_event_id(), "643956-12");
        assert_eq!(StreamPosition::parse("643956-12"), Some(position));
        for bad in ["", "12", "a-1", "1-b", "-1-2", "1-2-3"] {
            assert_eq!(StreamPosition::parse(bad), None, "{bad}");
        }
    }
}
