//! The promises the whole system makes, checked against the database.
//!
//! `namaskah check` runs this; the load tests and the scheduler use it too. A verification
//! without a number yet counts as overdue five minutes after its creation (ORDERING_HORIZON).

use serde::Serialize;
use sqlx::PgPool;
use std::time::Duration;

use super::StoreError;

/// One broken promise, with a few examples.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Violation {
    pub invariant: &'static str,
    pub count: i64,
    pub examples: Vec<String>,
}

/// The result of a check: empty `violations` means all is well.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub accounts: i64,
    pub verifications: i64,
    pub violations: Vec<Violation>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Runs every check. `grace` is how long past its deadline a verification may stay open.
pub async fn check(pool: &PgPool, grace: Duration) -> Result<Report, StoreError> {
    let accounts: i64 = sqlx::query_scalar("SELECT count(*) FROM accounts")
        .fetch_one(pool)
        .await?;
    let verifications: i64 = sqlx::query_scalar("SELECT count(*) FROM verifications")
        .fetch_one(pool)
        .await?;
    // Each check lists the rows that break it, as short human-readable lines.
    let checks: [(&'static str, &'static str); 10] = [
        (
            "balance_equals_ledger",
            "SELECT a.id::text || ': balance ' || a.balance_cents || ', ledger ' || coalesce(l.total, 0)
             FROM accounts a
             LEFT JOIN (SELECT account_id, sum(amount_cents) AS total FROM ledger_entries GROUP BY account_id) l
                    ON l.account_id = a.id
             WHERE a.balance_cents <> coalesce(l.total, 0)",
        ),
        (
            "exactly_one_charge",
            "SELECT v.id::text || ': ' || count(l.id) || ' charges'
             FROM verifications v
             LEFT JOIN ledger_entries l ON l.verification_id = v.id AND l.kind = 'charge'
             GROUP BY v.id HAVING count(l.id) <> 1",
        ),
        (
            "charge_matches_price",
            "SELECT v.id::text || ': price ' || v.price_cents || ', charged ' || -l.amount_cents
             FROM verifications v JOIN ledger_entries l ON l.verification_id = v.id AND l.kind = 'charge'
             WHERE -l.amount_cents <> v.price_cents",
        ),
        (
            "refund_only_when_refunded",
            "SELECT v.id::text || ': status ' || v.status || ', ' || count(l.id) || ' refunds'
             FROM verifications v
             LEFT JOIN ledger_entries l ON l.verification_id = v.id AND l.kind = 'refund'
             GROUP BY v.id, v.status
             HAVING count(l.id) > 1
                 OR (v.status = 'refunded') <> (count(l.id) = 1)",
        ),
        (
            // The open-verification cap reads this counter instead of counting.
            "open_count_matches",
            "SELECT a.id::text || ': counter ' || a.open_verifications || ', open ' || coalesce(o.open, 0)
             FROM accounts a
             LEFT JOIN (SELECT account_id, count(*) AS open FROM verifications
                        WHERE status NOT IN ('completed', 'refunded') GROUP BY account_id) o
                    ON o.account_id = a.id
             WHERE a.open_verifications <> coalesce(o.open, 0)",
        ),
        (
            // The sweeper finds open rows through the index on this column.
            "open_since_matches_status",
            "SELECT id::text || ': ' || status || ', open_since ' || coalesce(open_since::text, 'null')
             FROM verifications
             WHERE (open_since IS NULL) = verification_is_open(status)",
        ),
        (
            // A day's usage is rolled up once and never again (migration 0020): none of its
            // verifications may still be open, or its settlement would go uncounted.
            "usage_closed_days_final",
            "SELECT v.id::text || ': ' || v.status || ', created ' || v.created_at
                    || ', its day closed for usage through ' || r.closed_through
             FROM verifications v, usage_rollup r
             WHERE v.open_since IS NOT NULL
               AND v.created_at < (r.closed_through + 1)::timestamp AT TIME ZONE 'UTC'",
        ),
        (
            // The event tables keep no foreign keys (migration 0026): their rows are written
            // from their parents and no parent is ever deleted, and this says so.
            "webhook_rows_have_their_parents",
            "SELECT 'message ' || m.id || ': no account ' || m.account_id
             FROM webhook_messages m
             WHERE NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = m.account_id)
             UNION ALL
             SELECT 'delivery ' || d.id || ': no message ' || d.message_id
             FROM webhook_deliveries d
             WHERE NOT EXISTS (SELECT 1 FROM webhook_messages m WHERE m.id = d.message_id)
             UNION ALL
             SELECT 'delivery ' || d.id || ': no endpoint ' || d.endpoint_id
             FROM webhook_deliveries d
             WHERE NOT EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.id = d.endpoint_id)
             UNION ALL
             SELECT 'attempt ' || a.id || ': no delivery ' || a.delivery_id
             FROM webhook_attempts a
             WHERE NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.id = a.delivery_id)",
        ),
        (
            // The dashboard's search by number reads the list, not the rows (migration 0027).
            // The examples name verifications, never numbers: they reach the scheduler's log.
            "phone_numbers_listed",
            "SELECT v.id::text || ': its number is not listed'
             FROM verifications v
             WHERE v.phone_number IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM verification_numbers n
                               WHERE n.phone_number = v.phone_number AND n.verification_id = v.id)
             UNION ALL
             SELECT n.verification_id::text || ': listed under a number it does not hold'
             FROM verification_numbers n
             WHERE NOT EXISTS (SELECT 1 FROM verifications v
                               WHERE v.id = n.verification_id AND v.phone_number = n.phone_number)",
        ),
        (
            // Before a number is assigned there is no deadline; ordering (with its retries)
            // must then be over within ORDERING_HORIZON.
            "overdue_verifications_are_final",
            "SELECT id::text || ': ' || status || ' since ' || updated_at
             FROM verifications
             WHERE status NOT IN ('completed', 'refunded')
               AND coalesce(deadline, created_at + interval '5 minutes') < now() - make_interval(secs => $1)",
        ),
    ];
    let mut violations = Vec::new();
    for (invariant, query) in checks {
        let mut query = sqlx::query_scalar::<_, String>(query);
        if invariant == "overdue_verifications_are_final" {
            query = query.bind(grace.as_secs_f64());
        }
        let rows = query.fetch_all(pool).await?;
        if !rows.is_empty() {
            violations.push(Violation {
                invariant,
                count: i64::try_from(rows.len()).unwrap_or(i64::MAX),
                examples: rows.into_iter().take(5).collect(),
            });
        }
    }
    // Rows an administrator's action wrote, altered by someone with the database's rights.
    if let Some(first_break) = super::audit::verify_chain(pool).await?.first_break {
        violations.push(Violation {
            invariant: "audit_chain_intact",
            count: 1,
            examples: vec![first_break],
        });
    }
    Ok(Report {
        accounts,
        verifications,
        violations,
    })
}
