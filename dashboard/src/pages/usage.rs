//! Usage across all accounts, per service: the last 30 days, from the daily aggregates.

use chrono::{Duration, Utc};
use serde_json::json;
use warp::{http::StatusCode, reply::Response};

use namaskah_core::store::{admins::Session, usage};

use crate::{DashboardState, request::text};

pub async fn page(state: &DashboardState, session: &Session) -> Response {
    let to = Utc::now().date_naive();
    let from = to - Duration::days(29);
    let Ok(report) = usage::report(&state.pool, None, from, to, None).await else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "The database is unavailable.",
        );
    };
    let percent = |rate: f64| format!("{:.1} %", rate * 100.0);
    let rows = |rows: &[usage::Usage]| -> Vec<serde_json::Value> {
        rows.iter()
            .map(|u| {
                json!({
                    "day": u.day.map(|d| d.to_string()),
                    "service": u.service,
                    "verifications": u.verifications,
                    "success": percent(u.success_rate),
                    "median": u.median_seconds_to_sms.map_or("—".to_owned(), |s| format!("≤ {s} s")),
                    "spend": format!("{:.2}", u.spend_cents as f64 / 100.0),
                    "refunded": u.refunded,
                    "refunds": format!("{:.2}", u.refunded_cents as f64 / 100.0),
                })
            })
            .collect()
    };
    super::page(
        state,
        session,
        "usage",
        "Usage",
        json!({
            "from": from.to_string(),
            "to": to.to_string(),
            "totals": rows(&report.totals),
            "days": rows(&report.days),
        }),
    )
}
