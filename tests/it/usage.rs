//! Usage analytics: the daily figures agree with the verifications they count, before and
//! after their days are rolled up, and an account sees only its own.

use reqwest::StatusCode;
use serde_json::json;
use std::time::Duration;

use crate::support::{TestEnv, never_sms};

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test]
async fn usage_counts_orders_completions_refunds_and_the_time_to_sms() {
    let env = TestEnv::builder().behaviour(never_sms()).start().await;
    let account = env.account(10_000).await;
    let other = env.account(10_000).await;

    let completed = env.create_verification(&account, "telegram", "us").await;
    env.wait_for_status(&account, &completed, "waiting_sms", WAIT)
        .await;
    env.sim
        .deliver_sms(env.provider_order_id(&completed).await, "code 5555");
    env.wait_for_status(&account, &completed, "completed", WAIT)
        .await;
    let cancelled = env.create_verification(&account, "telegram", "us").await;
    env.wait_for_status(&account, &cancelled, "waiting_sms", WAIT)
        .await;
    env.post(
        &format!("/v1/verifications/{cancelled}/cancel"),
        &account.key,
        json!({}),
    )
    .await;
    let refunded = env
        .wait_for_status(&account, &cancelled, "refunded", WAIT)
        .await;
    env.create_verification(&other, "whatsapp", "us").await;

    let (status, report) = env.get("/v1/usage", &account.key).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    let price = refunded["price_cents"].as_i64().expect("price");
    let total = &report["totals"][0];
    assert_eq!(
        report["totals"].as_array().map(Vec::len),
        Some(1),
        "{report}"
    );
    assert_eq!(total["service"], "telegram");
    assert_eq!(total["verifications"], 2);
    assert_eq!(total["completed"], 1);
    assert_eq!(total["success_rate"], 0.5);
    assert_eq!(total["refunded"], 1);
    assert_eq!(total["refunded_cents"], price);
    assert_eq!(total["spend_cents"], 2 * price);
    assert_eq!(
        total["median_seconds_to_sms"], 5,
        "completed within seconds"
    );
    let today = chrono::Utc::now().date_naive().to_string();
    assert_eq!(report["days"][0]["day"], today.as_str());

    // The aggregates equal a count over the verifications themselves.
    let (count, spend): (i64, i64) = sqlx::query_as(
        "SELECT count(*), sum(price_cents)::bigint FROM verifications WHERE account_id = $1",
    )
    .bind(account.id)
    .fetch_one(&env.pool)
    .await
    .expect("count");
    assert_eq!(
        (json!(count), json!(spend)),
        (total["verifications"].clone(), total["spend_cents"].clone())
    );

    let (_, filtered) = env.get("/v1/usage?service=whatsapp", &account.key).await;
    assert_eq!(
        filtered["totals"],
        json!([]),
        "another account's usage is not shown"
    );
    for bad in [
        "/v1/usage?from=yesterday",
        "/v1/usage?from=2026-02-01&to=2026-01-01",
        "/v1/usage?from=2020-01-01&to=2026-01-01",
        "/v1/usage?colour=red",
    ] {
        let (status, body) = env.get(bad, &account.key).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
}

#[tokio::test]
async fn a_time_to_sms_falls_in_the_bucket_below_its_bound_and_never_past_the_last() {
    let env = TestEnv::builder().start().await;
    let (buckets, bounds): (Vec<i32>, Vec<i32>) = sqlx::query_as(
        "SELECT array_agg(usage_bucket(s) ORDER BY s), usage_bucket_bounds()
         FROM unnest(ARRAY[0, 4.99, 5, 9.5, 1799, 1800, 1e12]::float8[]) AS s",
    )
    .fetch_one(&env.pool)
    .await
    .expect("buckets");
    let last = i32::try_from(bounds.len()).expect("a few bounds");
    assert_eq!(buckets, vec![1, 1, 2, 2, 17, last, last]);
}

/// A verification written straight into the database, created `days_ago` days before now,
/// in `status` (completed after `seconds_to_sms`).
async fn past_verification(
    env: &TestEnv,
    account: &crate::support::Account,
    days_ago: i32,
    status: &str,
    seconds_to_sms: f64,
) {
    sqlx::query(
        "INSERT INTO verifications (id, account_id, service, country, price_cents, trace_id,
                                    provider, provider_order_id, deadline,
                                    status, created_at, completed_at, open_since)
         SELECT gen_random_uuid(), $1, 'telegram', 'us', 90, 'usage-test',
                'simulator', '1', at + interval '20 minutes', $3, at,
                CASE WHEN $3 = 'completed' THEN at + make_interval(secs => $4) END,
                CASE WHEN verification_is_open($3) THEN at END
         FROM (SELECT now() - make_interval(days => $2) AS at) t",
    )
    .bind(account.id)
    .bind(days_ago)
    .bind(status)
    .bind(seconds_to_sms)
    .execute(&env.pool)
    .await
    .expect("verification");
}

/// Each day's usage as `usage_by_day` reads it.
async fn usage_by_day(env: &TestEnv) -> Vec<serde_json::Value> {
    sqlx::query_scalar("SELECT to_jsonb(u) FROM usage_by_day u ORDER BY day, account_id, service")
        .fetch_all(&env.pool)
        .await
        .expect("usage")
}

/// The same counted the slow, obvious way, with `usage_bucket` for the histogram.
async fn counted_from_verifications(env: &TestEnv) -> Vec<serde_json::Value> {
    sqlx::query_scalar(
        "SELECT jsonb_build_object(
                    'account_id', account_id, 'service', service, 'day', day,
                    'verifications', count(*),
                    'completed', count(*) FILTER (WHERE status = 'completed'),
                    'refunded', count(*) FILTER (WHERE status = 'refunded'),
                    'spend_cents', sum(price_cents),
                    'refunded_cents', coalesce(sum(price_cents) FILTER (WHERE status = 'refunded'), 0),
                    'sms_seconds_histogram',
                    (SELECT array_agg((SELECT count(*) FROM verifications v2
                                       WHERE v2.account_id = g.account_id AND v2.service = g.service
                                         AND (v2.created_at AT TIME ZONE 'UTC')::date = g.day
                                         AND v2.status = 'completed'
                                         AND usage_bucket(extract(epoch FROM v2.completed_at - v2.created_at)) = b)
                                      ORDER BY b)
                     FROM generate_subscripts(usage_bucket_bounds(), 1) AS b))
         FROM (SELECT *, (created_at AT TIME ZONE 'UTC')::date AS day FROM verifications) g
         GROUP BY account_id, service, day
         ORDER BY day, account_id, service",
    )
    .fetch_all(&env.pool)
    .await
    .expect("count")
}

async fn closed_through(env: &TestEnv) -> chrono::NaiveDate {
    sqlx::query_scalar("SELECT closed_through FROM usage_rollup")
        .fetch_one(&env.pool)
        .await
        .expect("mark")
}

#[tokio::test]
async fn days_are_rolled_up_once_nothing_in_them_can_change_and_read_the_same_before_and_after() {
    use namaskah_scheduler::jobs::{self, JobName};

    let env = TestEnv::api_only().await;
    let account = env.account(10_000).await;
    let other = env.account(10_000).await;
    past_verification(&env, &account, 4, "completed", 3.0).await;
    past_verification(&env, &account, 4, "completed", 200.0).await;
    past_verification(&env, &account, 4, "refunded", 0.0).await;
    past_verification(&env, &other, 4, "completed", 5.0).await;
    past_verification(&env, &account, 3, "completed", 1e7).await;
    // Still open three days on: its day, and every day after it, cannot be closed yet.
    past_verification(&env, &account, 2, "waiting_sms", 0.0).await;
    past_verification(&env, &account, 1, "refunded", 0.0).await;
    past_verification(&env, &account, 0, "completed", 12.0).await;
    sqlx::query("UPDATE usage_rollup SET closed_through = current_date - 10")
        .execute(&env.pool)
        .await
        .expect("an old mark");
    let expected = counted_from_verifications(&env).await;
    assert_eq!(usage_by_day(&env).await, expected, "counted while open");

    let context = env.job_context();
    let closed = jobs::run(JobName::UsageRollup, &context)
        .await
        .expect("roll-up");
    let today = chrono::Utc::now().date_naive();
    let (four_days_ago, three_days_ago) =
        (today - chrono::Days::new(4), today - chrono::Days::new(3));
    assert_eq!(
        closed_through(&env).await,
        three_days_ago,
        "up to the open one's day"
    );
    assert!(closed >= 7, "ten days back to three: {closed}");
    let rolled_up: Vec<(chrono::NaiveDate, i32)> =
        sqlx::query_as("SELECT day, verifications FROM usage_daily ORDER BY day, verifications")
            .fetch_all(&env.pool)
            .await
            .expect("rows");
    assert_eq!(
        rolled_up,
        [(four_days_ago, 1), (four_days_ago, 3), (three_days_ago, 1)]
    );
    assert_eq!(
        usage_by_day(&env).await,
        expected,
        "the same once rolled up"
    );

    // Twice is once.
    let again = jobs::run(JobName::UsageRollup, &context)
        .await
        .expect("roll-up");
    assert_eq!(again, 0);
    assert_eq!(usage_by_day(&env).await, expected);

    // The open one settles: its day and the next can close; today never does.
    sqlx::query(
        "UPDATE verifications SET status = 'refunded', open_since = NULL
         WHERE status = 'waiting_sms'",
    )
    .execute(&env.pool)
    .await
    .expect("settled");
    let expected = counted_from_verifications(&env).await;
    jobs::run(JobName::UsageRollup, &context)
        .await
        .expect("roll-up");
    let closed = closed_through(&env).await;
    assert!(
        closed < today && closed >= today - chrono::Days::new(2),
        "{closed}"
    );
    assert_eq!(usage_by_day(&env).await, expected);

    let broken = env.violations_of("usage_closed_days_final").await;
    assert!(broken.is_empty(), "{broken:?}");
}

#[tokio::test]
async fn a_verification_open_on_a_closed_day_breaks_an_invariant() {
    let env = TestEnv::api_only().await;
    let account = env.account(10_000).await;
    past_verification(&env, &account, 5, "waiting_sms", 0.0).await;
    sqlx::query("UPDATE usage_rollup SET closed_through = current_date - 2")
        .execute(&env.pool)
        .await
        .expect("a mark past it");
    let broken = env.violations_of("usage_closed_days_final").await;
    assert!(
        !broken.is_empty(),
        "the open verification on a closed day is named"
    );
}

/// The roll-up's inserts check their accounts' foreign keys, each check a key share on its
/// account, in the order the rows are inserted. The order and completion batches lock their
/// accounts FOR UPDATE in key order; a roll-up that inserts in key order too only ever waits
/// for an account below every one it holds, so it never closes a circle with them
/// (migration 0029). Here a batch holds the first account while the roll-up runs, and then
/// takes the others: none of them may be held by the roll-up.
#[tokio::test]
async fn the_roll_up_takes_its_accounts_key_shares_in_key_order() {
    const ACCOUNTS: usize = 8;
    let env = TestEnv::api_only().await;
    let mut accounts = Vec::new();
    for _ in 0..ACCOUNTS {
        let account = env.account(10_000).await;
        past_verification(&env, &account, 2, "completed", 3.0).await;
        accounts.push(account.id.0);
    }
    accounts.sort();
    sqlx::query("UPDATE usage_rollup SET closed_through = current_date - 5")
        .execute(&env.pool)
        .await
        .expect("an old mark");

    let mut batch = env.pool.begin().await.expect("begin");
    sqlx::query("SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE")
        .bind(accounts[0])
        .execute(&mut *batch)
        .await
        .expect("the first account");
    let roll_up = {
        let pool = env.pool.clone();
        tokio::spawn(async move {
            let mut conn = pool.acquire().await.expect("connection");
            // Hashing, not sorting, groups the days: without its ORDER BY the roll-up would
            // insert its rows in no particular order.
            sqlx::query("SET enable_sort = off")
                .execute(&mut *conn)
                .await
                .expect("no sorting");
            sqlx::query_scalar::<_, i32>("SELECT roll_up_usage()")
                .fetch_one(&mut *conn)
                .await
        })
    };
    wait_until_a_roll_up_waits_for_a_lock(&env).await;

    sqlx::query("SET LOCAL lock_timeout = '5s'")
        .execute(&mut *batch)
        .await
        .expect("a lock timeout");
    let taken: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT 1 FROM accounts WHERE id = ANY($1) ORDER BY id FOR UPDATE) l",
    )
    .bind(&accounts[1..])
    .fetch_one(&mut *batch)
    .await
    .expect("the other accounts, none held by the roll-up");
    assert_eq!(taken, (ACCOUNTS - 1) as i64);
    batch.commit().await.expect("commit");

    let closed = roll_up
        .await
        .expect("roll-up task")
        .expect("the roll-up, never aborted to break a deadlock");
    assert!(closed >= 1, "{closed}");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM usage_daily")
        .fetch_one(&env.pool)
        .await
        .expect("rows");
    assert_eq!(rows, ACCOUNTS as i64);
}

async fn wait_until_a_roll_up_waits_for_a_lock(env: &TestEnv) {
    for _ in 0..200 {
        let waiting: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity
                            WHERE datname = current_database() AND pid <> pg_backend_pid()
                              AND wait_event_type = 'Lock'
                              AND query LIKE '%roll_up_usage()%')",
        )
        .fetch_one(&env.pool)
        .await
        .expect("activity");
        if waiting {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the roll-up never waited for the first account");
}
