//! The audit log is tamper-evident: whoever edits, deletes or slips in an entry — even with
//! the rights to switch its append-only trigger off — breaks its hash chain, and
//! `namaskah check` names the first entry where it breaks.

use serde_json::json;
use sqlx::PgPool;

use crate::support::TestEnv;
use namaskah_core::store::{self, audit, invariants};
use namaskah_scheduler::{JobName, jobs};

async fn append(pool: &PgPool, n: usize) {
    audit::append(
        pool,
        "admin",
        "test.action",
        Some(&format!("target {n}")),
        // Characters of more than one byte, and keys PostgreSQL reorders in jsonb.
        &json!({ "n": n, "note": "ünïcödé ✓", "a": [1, 2.5, null] }),
        "127.0.0.1",
    )
    .await
    .expect("append");
}

async fn entries(pool: &PgPool) -> Vec<i64> {
    sqlx::query_scalar("SELECT id FROM audit_log ORDER BY id")
        .fetch_all(pool)
        .await
        .expect("ids")
}

/// Runs `sql` with the append-only trigger (and the chaining one) switched off, as someone
/// with the table's rights could.
async fn around_the_triggers(pool: &PgPool, sql: &str) {
    let mut tx = pool.begin().await.expect("begin");
    for statement in [
        "ALTER TABLE audit_log DISABLE TRIGGER USER",
        sql,
        "ALTER TABLE audit_log ENABLE TRIGGER USER",
    ] {
        sqlx::query(sqlx::AssertSqlSafe(statement.to_owned()))
            .execute(&mut *tx)
            .await
            .expect(statement);
    }
    tx.commit().await.expect("commit");
}

async fn first_break(pool: &PgPool) -> String {
    let report = invariants::check(pool, std::time::Duration::from_secs(0))
        .await
        .expect("check");
    let violation = report
        .violations
        .iter()
        .find(|v| v.invariant == "audit_chain_intact")
        .expect("the chain is reported broken");
    violation.examples[0].clone()
}

async fn log_of(count: usize) -> TestEnv {
    let env = TestEnv::builder().api_only().start().await;
    for n in 0..count {
        append(&env.pool, n).await;
    }
    env
}

#[tokio::test]
async fn entries_appended_one_by_one_and_at_once_form_one_unbroken_chain() {
    let env = log_of(3).await;
    let at_once: Vec<_> = (3..23)
        .map(|n| {
            let pool = env.pool.clone();
            tokio::spawn(async move { append(&pool, n).await })
        })
        .collect();
    for append in at_once {
        append.await.expect("task");
    }
    let state = audit::verify_chain(&env.pool).await.expect("verify");
    assert_eq!(state.entries, 23);
    assert_eq!(state.first_break, None);
    let last = *entries(&env.pool).await.last().expect("entries");
    assert_eq!(state.head.as_ref().map(|(id, _)| *id), Some(last));
    let report = invariants::check(&env.pool, std::time::Duration::from_secs(0))
        .await
        .expect("check");
    assert!(report.is_clean(), "{:?}", report.violations);
}

#[tokio::test]
async fn an_entry_edited_around_the_trigger_is_named() {
    let env = log_of(5).await;
    let ids = entries(&env.pool).await;
    around_the_triggers(
        &env.pool,
        &format!(
            "UPDATE audit_log SET details = '{{\"n\": 99}}' WHERE id = {}",
            ids[2]
        ),
    )
    .await;
    let found = first_break(&env.pool).await;
    assert!(
        found.starts_with(&format!("entry {}: its content does not match", ids[2])),
        "{found}"
    );
}

#[tokio::test]
async fn a_deleted_entry_breaks_the_chain_at_the_one_after_it() {
    let env = log_of(5).await;
    let ids = entries(&env.pool).await;
    around_the_triggers(
        &env.pool,
        &format!("DELETE FROM audit_log WHERE id = {}", ids[2]),
    )
    .await;
    let found = first_break(&env.pool).await;
    assert!(
        found.starts_with(&format!(
            "entry {}: does not follow entry {}",
            ids[3], ids[1]
        )),
        "{found}"
    );
    // Through the trigger, nothing can be deleted or emptied at all.
    for statement in [
        format!("DELETE FROM audit_log WHERE id = {}", ids[0]),
        format!("UPDATE audit_log SET actor = 'x' WHERE id = {}", ids[0]),
        "TRUNCATE audit_log".to_owned(),
    ] {
        assert!(
            sqlx::query(sqlx::AssertSqlSafe(statement.clone()))
                .execute(&env.pool)
                .await
                .is_err(),
            "{statement} was allowed"
        );
    }
}

#[tokio::test]
async fn an_entry_slipped_in_around_the_chaining_trigger_is_named() {
    let env = log_of(3).await;
    around_the_triggers(
        &env.pool,
        "INSERT INTO audit_log (id, actor, action, details, previous_hash, entry_hash)
         SELECT id + 1, 'intruder', 'admin.create', '{}', entry_hash, sha256('forged')
         FROM audit_log ORDER BY id DESC LIMIT 1",
    )
    .await;
    let forged: i64 = sqlx::query_scalar("SELECT id FROM audit_log WHERE actor = 'intruder'")
        .fetch_one(&env.pool)
        .await
        .expect("forged entry");
    let found = first_break(&env.pool).await;
    assert!(
        found.starts_with(&format!("entry {forged}: its content does not match")),
        "{found}"
    );
}

#[tokio::test]
async fn a_chain_rewritten_end_to_end_disagrees_with_its_anchor() {
    let env = log_of(4).await;
    let context = env.job_context();
    assert_eq!(
        jobs::run(JobName::AuditAnchor, &context).await,
        Ok(1),
        "the head is anchored"
    );
    assert_eq!(
        jobs::run(JobName::AuditAnchor, &context).await,
        Ok(0),
        "and only once"
    );
    let ids = entries(&env.pool).await;
    // Edit an entry, then recompute every hash after it with the migration's own function:
    // the chain holds together again, but no longer ends where it was anchored.
    around_the_triggers(
        &env.pool,
        &format!(
            "DO $$
             DECLARE entry record; previous bytea;
             BEGIN
                 UPDATE audit_log SET actor = 'someone else' WHERE id = {};
                 FOR entry IN SELECT * FROM audit_log ORDER BY id LOOP
                     previous := coalesce(previous, entry.previous_hash);
                     UPDATE audit_log SET previous_hash = previous,
                            entry_hash = audit_log_hash(previous, entry.id, entry.at,
                                entry.actor, entry.action, entry.target, entry.details, entry.ip)
                      WHERE id = entry.id
                     RETURNING entry_hash INTO previous;
                 END LOOP;
             END $$",
            ids[1]
        ),
    )
    .await;
    let found = first_break(&env.pool).await;
    assert!(
        found.starts_with(&format!(
            "entry {}: its hash differs from the one anchored",
            ids[3]
        )),
        "{found}"
    );
}

#[tokio::test]
async fn entries_written_before_the_chain_join_it_in_order() {
    let (pool, url) = crate::migrations::database_at_migration(20).await;
    for n in 0..3 {
        sqlx::query(
            "INSERT INTO audit_log (actor, action, target, details, ip)
             VALUES ('admin', 'old.action', $1, $2, NULL)",
        )
        .bind(format!("old {n}"))
        .bind(json!({ "n": n }))
        .execute(&pool)
        .await
        .expect("old entry");
    }
    store::migrator().run(&pool).await.expect("this release");
    append(&pool, 3).await;
    let state = audit::verify_chain(&pool).await.expect("verify");
    assert_eq!((state.entries, state.first_break), (4, None));
    pool.close().await;
    store::drop_database(&url).await.expect("drop");
}
