//! Usage analytics per account, service and day (`usage_by_day`, migration 0020): the days
//! that can no longer change as the scheduler rolled them up, the others counted from their
//! verifications when read, so every figure is exact at the moment it is read.

use chrono::NaiveDate;
use sqlx::{AssertSqlSafe, PgPool};
use std::collections::BTreeMap;

use super::StoreError;
use crate::domain::AccountId;

/// One service on one day, or the sum of a range.
#[derive(Clone, Debug, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Usage {
    /// The day (UTC) the verifications were ordered; absent in totals.
    pub day: Option<NaiveDate>,
    pub service: String,
    pub verifications: i64,
    pub completed: i64,
    /// `completed ÷ verifications`, 0 to 1.
    pub success_rate: f64,
    /// Median time from order to SMS, as the upper bound of its histogram bucket
    /// (5, 10, 15 … 1800 s); `null` without completions or when it is over 30 minutes.
    pub median_seconds_to_sms: Option<i32>,
    pub spend_cents: i64,
    pub refunded: i64,
    pub refunded_cents: i64,
}

#[derive(sqlx::FromRow)]
struct Row {
    day: NaiveDate,
    service: String,
    verifications: i32,
    completed: i32,
    refunded: i32,
    spend_cents: i64,
    refunded_cents: i64,
    sms_seconds_histogram: Vec<i32>,
}

/// A sum of rows, with its histogram.
#[derive(Default)]
struct Sum {
    verifications: i64,
    completed: i64,
    refunded: i64,
    spend_cents: i64,
    refunded_cents: i64,
    histogram: Vec<i64>,
}

impl Sum {
    fn add(&mut self, row: &Row) {
        self.verifications += i64::from(row.verifications);
        self.completed += i64::from(row.completed);
        self.refunded += i64::from(row.refunded);
        self.spend_cents += row.spend_cents;
        self.refunded_cents += row.refunded_cents;
        if self.histogram.len() < row.sms_seconds_histogram.len() {
            self.histogram.resize(row.sms_seconds_histogram.len(), 0);
        }
        for (total, count) in self.histogram.iter_mut().zip(&row.sms_seconds_histogram) {
            *total += i64::from(*count);
        }
    }

    fn usage(&self, day: Option<NaiveDate>, service: &str, bounds: &[i32]) -> Usage {
        Usage {
            day,
            service: service.to_owned(),
            verifications: self.verifications,
            completed: self.completed,
            success_rate: if self.verifications == 0 {
                0.0
            } else {
                self.completed as f64 / self.verifications as f64
            },
            median_seconds_to_sms: median(&self.histogram, bounds),
            spend_cents: self.spend_cents,
            refunded: self.refunded,
            refunded_cents: self.refunded_cents,
        }
    }
}

/// The upper bound of the bucket holding the middle completion; `None` for the open-ended
/// last bucket or an empty histogram.
fn median(histogram: &[i64], bounds: &[i32]) -> Option<i32> {
    let total: i64 = histogram.iter().sum();
    if total == 0 {
        return None;
    }
    let mut running = 0;
    for (index, count) in histogram.iter().enumerate() {
        running += count;
        if running * 2 >= total {
            return bounds
                .get(index)
                .copied()
                .filter(|_| index + 1 < bounds.len());
        }
    }
    None
}

/// Per-day rows and per-service totals of a date range.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(as = UsageReport)]
pub struct Report {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub days: Vec<Usage>,
    pub totals: Vec<Usage>,
}

/// `account`: one account's usage; `None`: every account's (the operators' view).
pub async fn report(
    pool: &PgPool,
    account: Option<AccountId>,
    from: NaiveDate,
    to: NaiveDate,
    service: Option<&str>,
) -> Result<Report, StoreError> {
    let bounds: Vec<i32> = sqlx::query_scalar("SELECT usage_bucket_bounds()")
        .fetch_one(pool)
        .await?;
    // One account's rows by `account_id = $4` rather than `($4 IS NULL OR account_id = $4)`:
    // a generic plan could not use that to find the account's verifications through its index.
    const SELECT: &str = "SELECT day, service, verifications, completed, refunded, spend_cents,
                refunded_cents, sms_seconds_histogram
         FROM usage_by_day
         WHERE day BETWEEN $1 AND $2 AND ($3::text IS NULL OR service = $3)";
    let sql = match account {
        Some(_) => format!("{SELECT} AND account_id = $4 ORDER BY day DESC, service"),
        None => format!("{SELECT} ORDER BY day DESC, service"),
    };
    let mut query = sqlx::query_as::<_, Row>(AssertSqlSafe(sql))
        .bind(from)
        .bind(to)
        .bind(service);
    if let Some(account) = account {
        query = query.bind(account);
    }
    let rows = query.fetch_all(pool).await?;
    let mut by_day: BTreeMap<(std::cmp::Reverse<NaiveDate>, String), Sum> = BTreeMap::new();
    let mut by_service: BTreeMap<String, Sum> = BTreeMap::new();
    for row in &rows {
        by_day
            .entry((std::cmp::Reverse(row.day), row.service.clone()))
            .or_default()
            .add(row);
        by_service.entry(row.service.clone()).or_default().add(row);
    }
    Ok(Report {
        from,
        to,
        days: by_day
            .iter()
            .map(|((day, service), sum)| sum.usage(Some(day.0), service, &bounds))
            .collect(),
        totals: by_service
            .iter()
            .map(|(service, sum)| sum.usage(None, service, &bounds))
            .collect(),
    })
}

/// Rolls up every day that can be closed (migration 0020, `roll_up_usage`); the number of
/// days closed. Safe to run at any time and from any number of schedulers.
pub async fn roll_up(pool: &PgPool) -> Result<u64, StoreError> {
    let closed: i32 = sqlx::query_scalar("SELECT roll_up_usage()")
        .fetch_one(pool)
        .await?;
    Ok(u64::try_from(closed).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn the_median_is_the_bound_of_the_middle_bucket() {
        let bounds = [5, 10, 15, i32::MAX];
        assert_eq!(median(&[0, 0, 0, 0], &bounds), None);
        assert_eq!(median(&[1, 0, 0, 0], &bounds), Some(5));
        assert_eq!(median(&[1, 1, 1, 0], &bounds), Some(10));
        assert_eq!(median(&[1, 0, 0, 3], &bounds), None, "over the last bound");
    }
}
