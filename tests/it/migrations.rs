//! The path from an earlier release's database to this release's schema: rows written under
//! the old schema carry on under the new one, with every promise kept.

use namaskah_core::{
    domain::{AccountId, VerificationId},
    store::{self, invariants, ledger, verifications, webhook_deliveries, webhook_messages},
};
use sqlx::{PgPool, postgres::PgPoolOptions};
use std::time::Duration;
use uuid::Uuid;

use crate::support::server_url;

const PRICE: i64 = 100;

/// A verification written the way the release before migration 0019 wrote it: the order's
/// statement (debit, open count, charge), then each status change through the old triggers.
async fn old_release_verification(pool: &PgPool, account: Uuid, statuses: &[&str]) -> Uuid {
    let id = Uuid::new_v4();
    sqlx::query(
        "WITH debit AS (
             UPDATE accounts SET balance_cents = balance_cents - $3,
                                 open_verifications = open_verifications + 1
             WHERE id = $2 RETURNING id
         ), inserted AS (
             INSERT INTO verifications (id, account_id, service, country, price_cents, trace_id)
             SELECT $1, id, 'telegram', 'india', $3, 'migration-test' FROM debit RETURNING id
         )
         INSERT INTO ledger_entries (account_id, verification_id, kind, amount_cents)
         SELECT $2, id, 'charge', -$3 FROM inserted",
    )
    .bind(id)
    .bind(account)
    .bind(PRICE)
    .execute(pool)
    .await
    .expect("old release's order");
    for status in statuses {
        sqlx::query(
            "UPDATE verifications SET status = $2, provider = 'simulator',
                    provider_order_id = '1', phone_number = '+911234567890',
                    deadline = now() + interval '10 minutes',
                    completed_at = CASE WHEN $2 = 'completed' THEN now() END, updated_at = now()
             WHERE id = $1",
        )
        .bind(id)
        .bind(status)
        .execute(pool)
        .await
        .expect("old release's status change");
    }
    id
}

async fn open_since_is_set(pool: &PgPool, id: Uuid) -> bool {
    sqlx::query_scalar("SELECT open_since IS NOT NULL FROM verifications WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .expect("open_since")
}

async fn events_of(pool: &PgPool, id: Uuid) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT event_type FROM webhook_messages WHERE payload #>> '{data,id}' = $1::text
         ORDER BY seq",
    )
    .bind(id)
    .fetch_all(pool)
    .await
    .expect("events")
}

/// A fresh database with the schema as the release that ended at migration `last` left it:
/// its pool and URL.
pub(crate) async fn database_at_migration(last: i64) -> (PgPool, String) {
    let name = &Uuid::new_v4().simple().to_string()[..16];
    let url = format!("{}/namaskah_test_{name}", server_url());
    store::ensure_database_exists(&url).await.expect("database");
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect(&url)
        .await
        .expect("pool");
    store::migrator_until(last)
        .run(&pool)
        .await
        .expect("the previous release's schema");
    (pool, url)
}

#[tokio::test]
async fn verifications_from_before_the_lean_data_path_carry_on_under_it() {
    let (pool, url) = database_at_migration(18).await;

    let account = Uuid::new_v4();
    sqlx::query(
        "WITH account AS (
             INSERT INTO accounts (id, tenant_id, email, balance_cents)
             VALUES ($1, '00000000-0000-0000-0000-000000000001', 'old@example.com', 1000)
             RETURNING id
         )
         INSERT INTO ledger_entries (account_id, kind, amount_cents)
         SELECT id, 'top_up', 1000 FROM account",
    )
    .bind(account)
    .execute(&pool)
    .await
    .expect("account");
    let completed =
        old_release_verification(&pool, account, &["ordering", "waiting_sms", "completed"]).await;
    let waiting = old_release_verification(&pool, account, &["ordering", "waiting_sms"]).await;
    let timed_out =
        old_release_verification(&pool, account, &["ordering", "waiting_sms", "timed_out"]).await;

    store::migrator()
        .run(&pool)
        .await
        .expect("this release's schema");

    assert!(!open_since_is_set(&pool, completed).await);
    assert!(open_since_is_set(&pool, waiting).await);
    assert!(open_since_is_set(&pool, timed_out).await);

    // The open ones finish through this release's statements and trigger.
    let sms = verifications::ReceivedSms {
        id: VerificationId(waiting),
        account_id: AccountId(account),
        code: "123456".to_owned(),
        text: "Your code is 123456".to_owned(),
    };
    let done = verifications::complete_many(&pool, &[sms.clone(), sms])
        .await
        .expect("complete");
    assert!(done[0].is_some(), "the waiting verification completes");
    assert!(
        done[1].is_none(),
        "a duplicate in the batch changes nothing"
    );
    let refund = ledger::refund(&pool, VerificationId(timed_out))
        .await
        .expect("refund");
    assert_eq!(refund.map(|r| r.amount_cents), Some(PRICE));
    let again = ledger::refund(&pool, VerificationId(timed_out))
        .await
        .expect("second refund");
    assert!(again.is_none(), "refunded at most once");

    assert_eq!(
        events_of(&pool, waiting).await,
        ["verification.number_assigned", "verification.completed"],
        "one event per change, old trigger then new"
    );
    assert_eq!(
        events_of(&pool, timed_out).await,
        [
            "verification.number_assigned",
            "verification.timed_out",
            "verification.refunded"
        ]
    );
    let (open, balance): (i32, i64) =
        sqlx::query_as("SELECT open_verifications, balance_cents FROM accounts WHERE id = $1")
            .bind(account)
            .fetch_one(&pool)
            .await
            .expect("account");
    assert_eq!(open, 0);
    assert_eq!(balance, 1000 - 2 * PRICE);
    let usage: (i32, i32, i32, i64, i64) = sqlx::query_as(
        "SELECT verifications, completed, refunded, spend_cents, refunded_cents
         FROM usage_by_day WHERE account_id = $1",
    )
    .bind(account)
    .fetch_one(&pool)
    .await
    .expect("usage");
    assert_eq!(usage, (3, 2, 1, 3 * PRICE, PRICE));

    let report = invariants::check(&pool, Duration::from_secs(3600))
        .await
        .expect("check");
    assert!(report.is_clean(), "{:?}", report.violations);
    pool.close().await;
    store::drop_database(&url).await.expect("drop");
}

#[tokio::test]
async fn webhook_attempts_from_before_their_key_changed_are_listed_with_the_new_ones() {
    let (pool, url) = database_at_migration(24).await;
    let account = Uuid::new_v4();
    let endpoint = Uuid::new_v4();
    let delivery = Uuid::new_v4();
    sqlx::query(
        "WITH account AS (
             INSERT INTO accounts (id, tenant_id, email)
             VALUES ($1, '00000000-0000-0000-0000-000000000001', 'hooks@example.com')
         ), endpoint AS (
             INSERT INTO webhook_endpoints (id, account_id, url, secret)
             VALUES ($2, $1, 'https://hooks.example.com/in', 'whsec_old')
         ), message AS (
             INSERT INTO webhook_messages (id, account_id, event_type, payload, trace_id)
             VALUES ('msg_old', $1, 'verification.completed', '{}', 'trace')
         )
         INSERT INTO webhook_deliveries (id, message_id, endpoint_id) VALUES ($3, 'msg_old', $2)",
    )
    .bind(account)
    .bind(endpoint)
    .bind(delivery)
    .execute(&pool)
    .await
    .expect("an event with its delivery");
    // Two failed attempts under the old key.
    for attempt in 1..=2 {
        sqlx::query(
            "INSERT INTO webhook_attempts (delivery_id, attempt, succeeded, status_code, latency_ms)
             VALUES ($1, $2, false, 503, 40)",
        )
        .bind(delivery)
        .bind(attempt)
        .execute(&pool)
        .await
        .expect("an old attempt");
    }

    store::migrator()
        .run(&pool)
        .await
        .expect("this release's schema");

    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT indexdef FROM pg_indexes WHERE tablename = 'webhook_attempts' ORDER BY indexname",
    )
    .fetch_all(&pool)
    .await
    .expect("indexes");
    // The failed attempts' partial index (migration 0028) takes no entry from a success.
    let entered_by_every_attempt: Vec<&String> = indexes
        .iter()
        .filter(|definition| !definition.contains(" WHERE "))
        .collect();
    assert_eq!(
        entered_by_every_attempt.len(),
        2,
        "the key and the time index, one b-tree fewer per attempt: {indexes:?}"
    );
    assert!(
        entered_by_every_attempt[0].contains("(delivery_id, id)"),
        "attempts are keyed by their delivery: {indexes:?}"
    );

    let third = webhook_deliveries::DeliveredAttempt {
        delivery_id: delivery,
        endpoint_id: endpoint,
        outcome: webhook_deliveries::AttemptOutcome {
            attempt: 3,
            succeeded: true,
            status_code: Some(200),
            latency: Duration::from_millis(12),
            response_excerpt: None,
            error: None,
        },
    };
    webhook_deliveries::record_successes(&pool, &[third])
        .await
        .expect("the third attempt succeeds");
    let listed: Vec<(i32, bool)> = webhook_messages::attempts_of(&pool, "msg_old")
        .await
        .expect("attempts")
        .into_iter()
        .map(|attempt| (attempt.attempt, attempt.succeeded))
        .collect();
    assert_eq!(listed, [(1, false), (2, false), (3, true)]);

    pool.close().await;
    store::drop_database(&url).await.expect("drop");
}
