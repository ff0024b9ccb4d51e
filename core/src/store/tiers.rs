//! Account tiers: the request rate, price and limits each tier of account gets.

use sqlx::PgPool;

use super::StoreError;
use crate::domain::Tier;

/// What one tier may do.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct TierPlan {
    #[sqlx(try_from = "String")]
    pub tier: Tier,
    /// Sustained requests per second per API key.
    pub requests_per_second: i32,
    /// Requests a key may make at once on top of the sustained rate.
    pub burst: i32,
    /// Catalogue price × this ÷ 100.
    pub price_multiplier_pct: i32,
    /// Verifications not yet completed or refunded an account may have at once.
    pub max_open_verifications: i32,
    /// Items one bulk request may carry.
    pub max_batch_items: i32,
}

impl TierPlan {
    /// The price this tier pays for a catalogue price, rounded half up to a cent, never 0.
    pub fn price_cents(&self, catalogue_cents: i64) -> i64 {
        let pct = i64::from(self.price_multiplier_pct);
        ((catalogue_cents * pct + 50) / 100).max(1)
    }
}

pub async fn all(pool: &PgPool) -> Result<Vec<TierPlan>, StoreError> {
    Ok(sqlx::query_as::<_, TierPlan>(
        "SELECT tier, requests_per_second, burst, price_multiplier_pct, max_open_verifications,
                max_batch_items
         FROM tiers ORDER BY requests_per_second",
    )
    .fetch_all(pool)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_round_half_up_and_never_reach_zero() {
        let plan = |pct| TierPlan {
            tier: Tier::Pro,
            requests_per_second: 1,
            burst: 1,
            price_multiplier_pct: pct,
            max_open_verifications: 1,
            max_batch_items: 1,
        };
        assert_eq!(plan(100).price_cents(90), 90);
        assert_eq!(plan(95).price_cents(90), 86); // 85.5 rounds up
        assert_eq!(plan(90).price_cents(45), 41); // 40.5 rounds up
        assert_eq!(plan(1).price_cents(1), 1);
    }
}
