//! Money: charged exactly once, never below zero, whatever the concurrency.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::TestEnv;
use namaskah::pipeline::Roles;
use namaskah_core::{
    domain::{VerificationId, new_trace_id},
    store::verifications::{
        self, AssignedNumber, ChargedOrder, NewVerification, OrderingClaim, OrderingClaimRequest,
        ReceivedSms, Refusal,
    },
};

/// How many charges the ledger holds for `account`.
async fn charges_of(env: &TestEnv, account: &crate::support::Account) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM ledger_entries WHERE account_id = $1 AND kind = 'charge'",
    )
    .bind(account.id)
    .fetch_one(&env.pool)
    .await
    .expect("count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_submissions_against_a_balance_for_thirty_accept_exactly_thirty() {
    let env = TestEnv::api_only().await;
    let (_, services) = env
        .request(
            reqwest::Method::GET,
            "/v1/services?service=telegram&country=us",
            None,
            None,
        )
        .await;
    let price = services["data"][0]["price_cents"].as_i64().expect("price");
    let account = env.account(price * 30).await;

    let requests = (0..50).map(|_| {
        env.http
            .post(format!("{}/v1/verifications", env.api))
            .bearer_auth(&account.key)
            .json(&json!({"service": "telegram", "country": "us"}))
            .send()
    });
    let responses = futures_util::future::join_all(requests).await;
    let mut accepted = 0;
    let mut refused = 0;
    for response in responses {
        match response.expect("send").status() {
            StatusCode::CREATED => accepted += 1,
            StatusCode::PAYMENT_REQUIRED => refused += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((accepted, refused), (30, 20));
    assert_eq!(env.balance(&account).await, 0);
    let charges = charges_of(&env, &account).await;
    assert_eq!(charges, 30);
    env.assert_invariants().await;
}

/// With an Idempotency-Key each order charges in a transaction of its own (the stored answer
/// commits with it); many at once on one account contend for its row, and a deadlock that
/// PostgreSQL breaks by aborting one of them must be retried, not answered with a 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_orders_with_idempotency_keys_on_one_account_all_succeed() {
    // The whole pipeline: completions and refunds touch the account too.
    let env = TestEnv::builder().start().await;
    let account = env.account(1_000_000).await;
    for round in 0..8 {
        let requests = (0..40).map(|n| {
            env.http
                .post(format!("{}/v1/verifications", env.api))
                .bearer_auth(&account.key)
                .header("Idempotency-Key", format!("order-{round}-{n}"))
                .json(&json!({"service": "telegram", "country": "us"}))
                .send()
        });
        for response in futures_util::future::join_all(requests).await {
            let response = response.expect("send");
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            assert_eq!(status, StatusCode::CREATED, "{body}");
        }
    }
    let charges = charges_of(&env, &account).await;
    assert_eq!(charges, 320);
    env.assert_invariants().await;
}

/// Orders charged by one batch (as the API's batcher makes them) end as they would one after
/// the other: each account's orders in turn, each refused for its own reason, each accepted
/// one charged, counted and queued once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_orders_charges_each_account_in_turn_and_refuses_each_order_for_its_reason() {
    // No relay: the ordering messages stay in the outbox to be counted.
    let env = TestEnv::builder().roles(Roles::default()).start().await;
    let rich = env.account(1_000).await;
    let poor = env.account(250).await;
    let order = |account: &crate::support::Account, price_cents: i64, max_open: i32| ChargedOrder {
        new: NewVerification {
            id: VerificationId::new(),
            account_id: account.id,
            service: "telegram".to_owned(),
            country: "us".to_owned(),
            price_cents,
            trace_id: new_trace_id(),
        },
        max_open,
    };
    let batch = [
        order(&poor, 100, 10),
        order(&rich, 100, 2),
        order(&poor, 100, 10),
        order(&rich, 100, 2),
        order(&poor, 100, 10), // 50 left: not enough
        order(&rich, 100, 2),  // two open already
        order(&poor, 50, 10),  // exactly the 50 left
    ];
    let answers = verifications::insert_charged_many(&env.pool, &batch)
        .await
        .expect("charged");

    let outcome: Vec<Result<(), Refusal>> = answers
        .into_iter()
        .zip(&batch)
        .map(|(answer, order)| answer.map(|verification| assert_eq!(verification.id, order.new.id)))
        .collect();
    assert_eq!(
        outcome,
        vec![
            Ok(()),
            Ok(()),
            Ok(()),
            Ok(()),
            Err(Refusal::Balance { balance_cents: 50 }),
            Err(Refusal::OpenLimit),
            Ok(()),
        ]
    );
    assert_eq!(env.balance(&poor).await, 0);
    assert_eq!(env.balance(&rich).await, 800);
    let (charges, messages, counted): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM ledger_entries WHERE kind = 'charge'),
                (SELECT count(*) FROM outbox WHERE queue = 'ordering'),
                (SELECT sum(verifications)::bigint FROM usage_by_day)",
    )
    .fetch_one(&env.pool)
    .await
    .expect("counts");
    assert_eq!((charges, messages, counted), (5, 5, 5));
    env.assert_invariants().await;
}

/// PostgreSQL breaks a deadlock by aborting one side; that error is recognised as a
/// transient conflict, which the order paths run again instead of answering 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadlock_is_recognised_as_a_conflict_worth_running_again() {
    let env = TestEnv::builder().roles(Roles::default()).start().await;
    let (first, second) = (env.account(100).await, env.account(100).await);
    let lock_in_turn = |one: uuid::Uuid, other: uuid::Uuid| {
        let pool = env.pool.clone();
        async move {
            let mut tx = pool.begin().await?;
            sqlx::query("UPDATE accounts SET balance_cents = balance_cents WHERE id = $1")
                .bind(one)
                .execute(&mut *tx)
                .await?;
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            sqlx::query("UPDATE accounts SET balance_cents = balance_cents WHERE id = $1")
                .bind(other)
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        }
    };
    let (a, b) = tokio::join!(
        lock_in_turn(first.id.0, second.id.0),
        lock_in_turn(second.id.0, first.id.0)
    );
    let aborted: Vec<namaskah_core::store::StoreError> = [a, b]
        .into_iter()
        .filter_map(Result::err)
        .map(Into::into)
        .collect();
    assert_eq!(aborted.len(), 1, "PostgreSQL aborts one side: {aborted:?}");
    assert!(aborted[0].is_transient_conflict(), "{:?}", aborted[0]);
    assert!(!aborted[0].is_connection_problem());
}

/// Key shares on one account, taken and held for 2 ms over and over, as the foreign-key
/// checks of the rows that reference it take them (an idempotent order's claim, a payment's
/// or a referral's ledger entry), until [`KeyShares::stop`].
struct KeyShares {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    taker: tokio::task::JoinHandle<u32>,
}

impl KeyShares {
    /// Returns once the first share is held, so that the shares race with all of the test's
    /// work, even on a machine so busy that a new task starts late.
    async fn start(env: &TestEnv, account: &crate::support::Account) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (pool, stopped, account) = (env.pool.clone(), std::sync::Arc::clone(&stop), account.id);
        let (first_held, holding) = tokio::sync::oneshot::channel();
        let taker = tokio::spawn(async move {
            let mut first_held = Some(first_held);
            let mut shares = 0;
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                let mut tx = pool.begin().await.expect("begin");
                sqlx::query("SELECT 1 FROM accounts WHERE id = $1 FOR KEY SHARE")
                    .bind(account)
                    .execute(&mut *tx)
                    .await
                    .expect("key share");
                if let Some(first_held) = first_held.take() {
                    let _ = first_held.send(());
                }
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                tx.commit().await.expect("commit");
                shares += 1;
            }
            shares
        });
        holding.await.expect("the first key share");
        Self { stop, taker }
    }

    /// Stops taking them, and checks that enough were taken to have raced with the test.
    async fn stop(self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let shares = self.taker.await.expect("key shares");
        assert!(shares > 10, "the key shares ran beside the test: {shares}");
    }
}

/// An order for `account` of one cent, charged at once.
fn order_of_a_cent(account: &crate::support::Account) -> ChargedOrder {
    ChargedOrder {
        new: NewVerification {
            id: VerificationId::new(),
            account_id: account.id,
            service: "telegram".to_owned(),
            country: "us".to_owned(),
            price_cents: 1,
            trace_id: new_trace_id(),
        },
        max_open: 1_000_000,
    }
}

/// Orders of an account must not deadlock on the key shares of its foreign keys: the order
/// statement once locked its account with NO KEY UPDATE, which lets a key share in, and then
/// waited behind the queue to lock its own row again for the debit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_of_one_account_do_not_deadlock_with_the_key_shares_of_its_ledger_entries() {
    const ORDERERS: usize = 4;
    const ORDERS_EACH: usize = 100;
    let env = TestEnv::builder().roles(Roles::default()).start().await;
    let account = env.account(1_000_000).await;

    let key_shares = KeyShares::start(&env, &account).await;
    let orderers = (0..ORDERERS).map(|_| {
        let (pool, order) = (env.pool.clone(), || order_of_a_cent(&account));
        let orders: Vec<ChargedOrder> = (0..ORDERS_EACH).map(|_| order()).collect();
        tokio::spawn(async move {
            let mut conn = pool.acquire().await.expect("connection");
            let mut deadlocks = 0;
            for order in orders {
                match verifications::insert_charged(&mut conn, &order).await {
                    Ok(answer) => {
                        answer.expect("charged");
                    }
                    Err(error) if error.is_transient_conflict() => deadlocks += 1,
                    Err(error) => panic!("{error}"),
                }
            }
            deadlocks
        })
    });
    let mut deadlocks = 0;
    for orderer in futures_util::future::join_all(orderers).await {
        deadlocks += orderer.expect("orderer");
    }
    key_shares.stop().await;

    assert_eq!(deadlocks, 0, "orders aborted to break a deadlock");
    let charges = charges_of(&env, &account).await;
    assert_eq!(charges, (ORDERERS * ORDERS_EACH) as i64);
    env.assert_invariants().await;
}

/// The same for completions: the status trigger locked the accounts whose open counters it
/// moves with NO KEY UPDATE and then updated them (migration 0029).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_of_one_account_do_not_deadlock_with_the_key_shares_of_its_foreign_keys() {
    const COMPLETERS: usize = 4;
    const COMPLETIONS_EACH: usize = 100;
    let env = TestEnv::builder().roles(Roles::default()).start().await;
    let account = env.account(1_000_000).await;
    let waiting = waiting_for_sms(&env, &account, COMPLETERS * COMPLETIONS_EACH).await;

    let key_shares = KeyShares::start(&env, &account).await;
    let completers = waiting.chunks(COMPLETIONS_EACH).map(|ids| {
        let (pool, ids) = (env.pool.clone(), ids.to_vec());
        let account_id = account.id;
        tokio::spawn(async move {
            let mut deadlocks = 0;
            for id in ids {
                let sms = ReceivedSms {
                    id,
                    account_id,
                    code: "123456".to_owned(),
                    text: "Your code is 123456".to_owned(),
                };
                match verifications::complete_many(&pool, &[sms]).await {
                    Ok(answers) => assert!(answers[0].is_some(), "{id} was waiting"),
                    Err(error) if error.is_transient_conflict() => deadlocks += 1,
                    Err(error) => panic!("{error}"),
                }
            }
            deadlocks
        })
    });
    let mut deadlocks = 0;
    for completer in futures_util::future::join_all(completers).await {
        deadlocks += completer.expect("completer");
    }
    key_shares.stop().await;

    assert_eq!(deadlocks, 0, "completions aborted to break a deadlock");
    let (completed, open): (i64, i32) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM verifications WHERE account_id = $1 AND status = 'completed'),
                (SELECT open_verifications FROM accounts WHERE id = $1)",
    )
    .bind(account.id)
    .fetch_one(&env.pool)
    .await
    .expect("counts");
    assert_eq!(
        (completed, open),
        ((COMPLETERS * COMPLETIONS_EACH) as i64, 0)
    );
    env.assert_invariants().await;
}

/// `count` charged verifications of `account`, each with a number and waiting for its SMS.
async fn waiting_for_sms(
    env: &TestEnv,
    account: &crate::support::Account,
    count: usize,
) -> Vec<VerificationId> {
    let orders: Vec<ChargedOrder> = (0..count).map(|_| order_of_a_cent(account)).collect();
    for answer in verifications::insert_charged_many(&env.pool, &orders)
        .await
        .expect("orders")
    {
        answer.expect("charged");
    }
    let requests: Vec<OrderingClaimRequest> = orders
        .iter()
        .map(|order| OrderingClaimRequest {
            id: order.new.id,
            attempt: 1,
        })
        .collect();
    let claims =
        verifications::claim_for_ordering(&env.pool, &requests, std::time::Duration::from_secs(60))
            .await
            .expect("claims");
    let numbers: Vec<AssignedNumber> = claims
        .into_iter()
        .enumerate()
        .map(|(index, claim)| match claim {
            OrderingClaim::Claimed {
                verification,
                claim,
            } => AssignedNumber {
                id: verification.id,
                claim,
                provider: "sim".to_owned(),
                provider_order_id: index.to_string(),
                phone_number: format!("+1555{index:07}"),
                sms_timeout_secs: 600,
                trace_id: new_trace_id(),
            },
            other => panic!("not claimed: {other:?}"),
        })
        .collect();
    let assigned = verifications::assign_numbers(&env.pool, &numbers, 60_000)
        .await
        .expect("numbers");
    assert!(
        assigned.iter().all(Option::is_some),
        "every number recorded"
    );
    numbers.into_iter().map(|number| number.id).collect()
}

/// Makes the insert of `order`'s verification fail, the first `times` times, with
/// SQLSTATE `code`, as PostgreSQL fails the statement it picks to break a deadlock (40P01).
/// A sequence counts the attempts, since it is not rolled back with them.
async fn fail_the_insert_of(env: &TestEnv, order: &ChargedOrder, times: i64, code: &str) {
    for statement in [
        "CREATE SEQUENCE attempts_of_the_failing_insert",
        "CREATE TABLE failing_insert (id uuid, times bigint, code text)",
        "CREATE FUNCTION fail_the_insert() RETURNS trigger LANGUAGE plpgsql AS $$
         DECLARE
             failing failing_insert;
         BEGIN
             SELECT * INTO failing FROM failing_insert WHERE id = NEW.id;
             IF FOUND AND nextval('attempts_of_the_failing_insert') <= failing.times THEN
                 RAISE EXCEPTION 'failed by the test' USING ERRCODE = failing.code;
             END IF;
             RETURN NEW;
         END $$",
        "CREATE TRIGGER fail_the_insert BEFORE INSERT ON verifications
         FOR EACH ROW EXECUTE FUNCTION fail_the_insert()",
    ] {
        sqlx::query(statement)
            .execute(&env.pool)
            .await
            .expect(statement);
    }
    sqlx::query("INSERT INTO failing_insert (id, times, code) VALUES ($1, $2, $3)")
        .bind(order.new.id)
        .bind(times)
        .bind(code)
        .execute(&env.pool)
        .await
        .expect("the failing order");
}

async fn attempts_of_the_failing_insert(env: &TestEnv) -> i64 {
    sqlx::query_scalar("SELECT last_value FROM attempts_of_the_failing_insert")
        .fetch_one(&env.pool)
        .await
        .expect("attempts")
}

/// Two orders of one account go into two rounds of one batch. When PostgreSQL aborts the
/// second round to break a deadlock, the batch runs again, whole. Until 2026-12-06 each
/// round committed on its own and the API ran the whole batch again: the first round's
/// verification then failed on its primary key, and both orders were answered 500, the
/// charged one too.
#[tokio::test]
async fn a_batch_of_orders_aborted_by_a_deadlock_in_a_later_round_runs_again_whole() {
    let env = TestEnv::api_only().await;
    let account = env.account(1_000).await;
    let orders = [order_of_a_cent(&account), order_of_a_cent(&account)];
    fail_the_insert_of(&env, &orders[1], 1, "40P01").await;

    let answers = verifications::insert_charged_many(&env.pool, &orders)
        .await
        .expect("the batch, run again");
    for (answer, order) in answers.iter().zip(&orders) {
        let charged = answer.as_ref().expect("charged");
        assert_eq!(charged.id, order.new.id);
    }
    assert_eq!(attempts_of_the_failing_insert(&env).await, 2);
    assert_eq!(charges_of(&env, &account).await, 2);
    assert_eq!(env.balance(&account).await, 998);
    env.assert_invariants().await;
}

/// A later round that fails for good takes the earlier rounds with it: every caller of the
/// batch hears of the failure, so none of their orders may have been charged.
#[tokio::test]
async fn a_batch_of_orders_whose_later_round_fails_charges_none_of_them() {
    let env = TestEnv::api_only().await;
    let account = env.account(1_000).await;
    let orders = [order_of_a_cent(&account), order_of_a_cent(&account)];
    // A check violation: no conflict, so not run again.
    fail_the_insert_of(&env, &orders[1], 1_000, "23514").await;

    let failed = verifications::insert_charged_many(&env.pool, &orders).await;
    assert!(failed.is_err(), "{failed:?}");
    assert_eq!(attempts_of_the_failing_insert(&env).await, 1);
    assert_eq!(charges_of(&env, &account).await, 0);
    assert_eq!(env.balance(&account).await, 1_000);
    let verifications: i64 =
        sqlx::query_scalar("SELECT count(*) FROM verifications WHERE account_id = $1")
            .bind(account.id)
            .fetch_one(&env.pool)
            .await
            .expect("count");
    assert_eq!(verifications, 0);
    env.assert_invariants().await;
}
