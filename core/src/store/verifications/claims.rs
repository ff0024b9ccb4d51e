//! The ordering claim: which delivery of an ordering message may buy a number for a
//! verification, for how long, and how it lets go.

use sqlx::PgPool;
use std::time::Duration;
use uuid::Uuid;

use super::{StoreError, Verification, column, first_of_each, sql};
use crate::domain::{Status, Transition, VerificationId};

/// The outcome of trying to claim a verification for ordering.
#[derive(Debug)]
pub enum OrderingClaim {
    /// This attempt holds the row; only the holder of `claim` may record the result.
    Claimed {
        verification: Box<Verification>,
        claim: Uuid,
    },
    /// Another delivery holds a live claim (a duplicate message, or a worker that may have
    /// died mid-purchase): look again once the claim has had time to finish or expire.
    Busy { retry_after: Duration },
    /// Nothing to order: the verification is past ordering, or gone.
    NotNeeded,
}

/// One verification to claim for ordering attempt `attempt`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderingClaimRequest {
    pub id: VerificationId,
    pub attempt: u32,
}

/// Claims the verifications for ordering, in one statement for the whole batch; the answers
/// are in the order of `requests`. A newer attempt (a retry) takes over from an older one;
/// the same attempt (a duplicate, or a redelivery after a crash) only once the previous
/// claim is older than `lease`. A verification asked for twice in one batch is claimed once;
/// the second request finds it held, as if it came just after the first.
pub async fn claim_for_ordering(
    pool: &PgPool,
    requests: &[OrderingClaimRequest],
    lease: Duration,
) -> Result<Vec<OrderingClaim>, StoreError> {
    let transition = Transition::StartOrdering;
    let unique = first_of_each(requests, |request| request.id);
    let ids = column(&unique, |request| request.id.0);
    let attempts = column(&unique, |request| {
        i32::try_from(request.attempt).unwrap_or(i32::MAX)
    });
    let claims = column(&unique, |_| Uuid::new_v4());
    let claimed = sqlx::query_as::<_, Verification>(sql(
        "UPDATE verifications SET status = $5, order_attempts = w.wanted_attempt,
                                  ordering_claim = w.wanted_claim,
                                  ordering_claimed_at = now(), updated_at = now()
         FROM unnest($1::uuid[], $2::int[], $3::uuid[]) AS w(wanted_id, wanted_attempt, wanted_claim)
         WHERE id = w.wanted_id AND status = ANY($4)
           AND (order_attempts < w.wanted_attempt
                OR ordering_claimed_at IS NULL
                OR ordering_claimed_at < now() - make_interval(secs => $6))
         RETURNING {COLUMNS}",
    ))
    .bind(&ids)
    .bind(&attempts)
    .bind(&claims)
    .bind(transition.from_names())
    .bind(transition.to().as_str())
    .bind(lease.as_secs_f64())
    .fetch_all(pool)
    .await?;
    let claim_of: std::collections::HashMap<VerificationId, Uuid> = ids
        .iter()
        .zip(&claims)
        .map(|(&id, &claim)| (VerificationId(id), claim))
        .collect();
    let mut claimed: std::collections::HashMap<VerificationId, Verification> = claimed
        .into_iter()
        .map(|verification| (verification.id, verification))
        .collect();
    let mut answers = Vec::with_capacity(requests.len());
    for request in requests {
        // `remove`: a second request for the same verification finds it held by the first.
        let answer = match claimed.remove(&request.id).zip(claim_of.get(&request.id)) {
            Some((verification, &claim)) => OrderingClaim::Claimed {
                verification: Box::new(verification),
                claim,
            },
            None => why_not_claimed_for_ordering(pool, request.id, lease).await?,
        };
        answers.push(answer);
    }
    Ok(answers)
}

/// Why a verification was not claimed for ordering (the rare path).
async fn why_not_claimed_for_ordering(
    pool: &PgPool,
    id: VerificationId,
    lease: Duration,
) -> Result<OrderingClaim, StoreError> {
    let held: Option<(String, Option<f64>)> = sqlx::query_as(
        "SELECT status, extract(epoch FROM ordering_claimed_at + make_interval(secs => $2) - now())::float8
         FROM verifications WHERE id = $1",
    )
    .bind(id)
    .bind(lease.as_secs_f64())
    .fetch_optional(pool)
    .await?;
    Ok(match held {
        Some((status, remaining)) if status == Status::Ordering.as_str() => OrderingClaim::Busy {
            retry_after: Duration::from_secs_f64(remaining.unwrap_or(0.0).max(0.0))
                + Duration::from_secs(1),
        },
        _ => OrderingClaim::NotNeeded,
    })
}

/// Lets go of an ordering claim without spending its attempt: the same attempt, delivered
/// again, claims the verification at once instead of waiting out the lease. Used when every
/// provider was skipped (breaker open, bulkhead full), which taught nothing.
pub async fn release_ordering_claim(
    pool: &PgPool,
    id: VerificationId,
    claim: Uuid,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE verifications SET ordering_claimed_at = NULL
         WHERE id = $1 AND status = 'ordering' AND ordering_claim = $2",
    )
    .bind(id)
    .bind(claim)
    .execute(pool)
    .await?;
    Ok(())
}
