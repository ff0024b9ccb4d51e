//! Usage: the last 30 days, from the daily aggregates, charted per day above the exact
//! figures; for every account, or one account and/or one service (`?account=&service=`).

use chrono::{Duration, NaiveDate, Utc};
use serde_json::json;
use std::collections::BTreeMap;
use warp::{http::StatusCode, reply::Response};

use namaskah_core::{
    domain::{AccountId, ServiceCode},
    store::{admins::Session, usage},
};

use crate::{
    DashboardState,
    charts::{LineChart, Series, Unit},
    request::{Request, text},
};

/// How many services get their own line in the time-to-SMS chart (the busiest ones).
const SERVICES_CHARTED: usize = 4;

pub async fn page(state: &DashboardState, request: &Request, session: &Session) -> Response {
    let account = match request.query("account").map(|a| AccountId::parse(a.trim())) {
        None => None,
        Some(Some(account)) => Some(account),
        Some(None) => {
            return text(
                StatusCode::BAD_REQUEST,
                "`account` must be an account id (a UUID).",
            );
        }
    };
    let service = match request
        .query("service")
        .map(|s| ServiceCode::parse(s.trim()))
    {
        None => None,
        Some(Ok(service)) => Some(service),
        Some(Err(_)) => {
            return text(
                StatusCode::BAD_REQUEST,
                "`service` must be a service code: lowercase letters, digits, '_' or '-'.",
            );
        }
    };
    let to = Utc::now().date_naive();
    let from = to - Duration::days(29);
    let report = usage::report(
        &state.pool,
        account,
        from,
        to,
        service.as_ref().map(ServiceCode::as_str),
    )
    .await;
    let Ok(report) = report else {
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
    let charts: Vec<String> = daily_charts(&report, from, to)
        .iter()
        .map(LineChart::to_figure)
        .collect();
    super::page(
        state,
        session,
        "usage",
        "Usage",
        json!({
            "from": from.to_string(),
            "account": account.map(|a| a.0.to_string()),
            "service": service.as_ref().map(ServiceCode::as_str),
            "to": to.to_string(),
            "charts": charts,
            "totals": rows(&report.totals),
            "days": rows(&report.days),
        }),
    )
}

/// Every day's figures summed over the services.
#[derive(Default, Clone, Copy)]
struct Day {
    verifications: i64,
    completed: i64,
    spend_cents: i64,
    refunded_cents: i64,
}

/// Verifications, success, spend and refunds per day for the whole system, and the median
/// time to SMS of the busiest services (medians of different services cannot be summed).
fn daily_charts(report: &usage::Report, from: NaiveDate, to: NaiveDate) -> Vec<LineChart> {
    let days: Vec<NaiveDate> = from.iter_days().take_while(|day| *day <= to).collect();
    let mut totals: BTreeMap<NaiveDate, Day> = days.iter().map(|d| (*d, Day::default())).collect();
    for row in &report.days {
        if let Some(day) = row.day.and_then(|d| totals.get_mut(&d)) {
            day.verifications += row.verifications;
            day.completed += row.completed;
            day.spend_cents += row.spend_cents;
            day.refunded_cents += row.refunded_cents;
        }
    }
    let per_day = |value: fn(&Day) -> Option<f64>| -> Vec<Option<f64>> {
        totals.values().map(value).collect()
    };
    let x_labels: Vec<String> = days.iter().map(|d| d.format("%m-%d").to_string()).collect();
    let chart = |id: &str, title: &str, unit: Unit, series: Vec<Series>| LineChart {
        id: id.to_owned(),
        title: title.to_owned(),
        unit,
        x_labels: x_labels.clone(),
        series,
    };
    let all = |values| Series {
        name: "all services".to_owned(),
        values,
    };
    let mut busiest: Vec<&usage::Usage> = report.totals.iter().collect();
    busiest.sort_by_key(|u| std::cmp::Reverse(u.verifications));
    let medians = busiest
        .iter()
        .take(SERVICES_CHARTED)
        .map(|service| Series {
            name: service.service.clone(),
            values: days
                .iter()
                .map(|day| {
                    report
                        .days
                        .iter()
                        .find(|u| u.day == Some(*day) && u.service == service.service)
                        .and_then(|u| u.median_seconds_to_sms)
                        .map(f64::from)
                })
                .collect(),
        })
        .collect();
    vec![
        chart(
            "usage-verifications",
            "Verifications per day",
            Unit::Count,
            vec![all(per_day(|d| Some(d.verifications as f64)))],
        ),
        chart(
            "usage-success",
            "Success per day (completed ÷ verifications)",
            Unit::Share,
            vec![all(per_day(|d| {
                (d.verifications > 0).then(|| d.completed as f64 / d.verifications as f64)
            }))],
        ),
        chart(
            "usage-money",
            "Spend and refunds per day",
            Unit::Cents,
            vec![
                Series {
                    name: "spend".to_owned(),
                    values: per_day(|d| Some(d.spend_cents as f64)),
                },
                Series {
                    name: "refunds".to_owned(),
                    values: per_day(|d| Some(d.refunded_cents as f64)),
                },
            ],
        ),
        chart(
            "usage-time-to-sms",
            "Median time to SMS per day, busiest services",
            Unit::Seconds,
            medians,
        ),
    ]
}
