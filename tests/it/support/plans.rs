//! What PostgreSQL plans for a statement once it has gone generic, as a pool's connections
//! would after five runs of it.

use sqlx::PgPool;

/// The generic plan of `statement` (with `$1` an array of uuids) on one of `pool`'s
/// connections, run with an empty array.
pub async fn generic_plan(pool: &PgPool, statement: &str) -> String {
    let mut conn = pool.acquire().await.expect("connection");
    let prepare = format!("PREPARE planned (uuid[]) AS {statement}");
    for step in ["SET plan_cache_mode = force_generic_plan", prepare.as_str()] {
        sqlx::query(sqlx::AssertSqlSafe(step))
            .execute(&mut *conn)
            .await
            .expect(step);
    }
    let plan: Vec<String> = sqlx::query_scalar("EXPLAIN EXECUTE planned ('{}')")
        .fetch_all(&mut *conn)
        .await
        .expect("plan");
    // The pool keeps the connection: leave it as an ordinary one.
    for step in ["DEALLOCATE planned", "RESET plan_cache_mode"] {
        sqlx::query(step).execute(&mut *conn).await.expect(step);
    }
    plan.join("\n")
}
