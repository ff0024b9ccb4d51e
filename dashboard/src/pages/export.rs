//! CSV exports for operators (CRM, finance): accounts, and usage of the last 90 days. Each
//! download is written to the audit log, since it carries customers' e-mail addresses.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::json;
use sqlx::types::Uuid;
use warp::{
    http::{HeaderValue, StatusCode, header},
    reply::Response,
};

use namaskah_core::store::admins::Session;

use super::audit;
use crate::{DashboardState, request::Request, request::text};

/// One CSV field: quoted when it holds a separator, a quote or a line break; a leading
/// `=`, `+`, `-` or `@` is prefixed with `'` so that a spreadsheet does not run it.
fn field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

fn csv(header_row: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    let mut out = header_row.join(",");
    out.push_str("\r\n");
    for row in rows {
        let fields: Vec<String> = row.iter().map(|f| field(f)).collect();
        out.push_str(&fields.join(","));
        out.push_str("\r\n");
    }
    out
}

fn download(name: &str, body: String) -> Response {
    let mut response = Response::new(body.into());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

/// One download: its name in the audit log and on disk, and its columns.
struct Export {
    action: &'static str,
    file_name: &'static str,
    columns: &'static [&'static str],
}

const ACCOUNTS: Export = Export {
    action: "export_accounts",
    file_name: "namaskah-accounts.csv",
    columns: &[
        "account_id",
        "email",
        "tier",
        "balance_cents",
        "referral_code",
        "referred_by",
        "created_at",
        "erased_at",
    ],
};

const USAGE: Export = Export {
    action: "export_usage",
    file_name: "namaskah-usage.csv",
    columns: &[
        "day",
        "account_id",
        "service",
        "verifications",
        "completed",
        "refunded",
        "spend_cents",
        "refunded_cents",
    ],
};

/// Writes the download to the audit log (how many rows, by whom, from where) and answers
/// the CSV; a database that did not answer is a 503.
async fn audited_download(
    state: &DashboardState,
    request: &Request,
    session: &Session,
    export: &Export,
    rows: Result<Vec<Vec<String>>, sqlx::Error>,
) -> Response {
    let Ok(rows) = rows else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "The database is unavailable.",
        );
    };
    audit(
        state,
        &session.username,
        export.action,
        None,
        json!({ "rows": rows.len() }),
        &request.ip(),
    )
    .await;
    download(export.file_name, csv(export.columns, rows.into_iter()))
}

type AccountRow = (
    Uuid,
    String,
    String,
    i64,
    String,
    Option<Uuid>,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
);

pub async fn accounts(state: &DashboardState, request: &Request, session: &Session) -> Response {
    let rows = sqlx::query_as::<_, AccountRow>(
        "SELECT id, email, tier, balance_cents, referral_code, referred_by, created_at, erased_at
         FROM accounts ORDER BY created_at, id",
    )
    .fetch_all(&state.pool)
    .await
    .map(|rows| {
        rows.into_iter()
            .map(
                |(id, email, tier, balance, code, referrer, created, erased)| {
                    vec![
                        id.to_string(),
                        email,
                        tier,
                        balance.to_string(),
                        code,
                        referrer.map(|r| r.to_string()).unwrap_or_default(),
                        created.to_rfc3339(),
                        erased.map(|e| e.to_rfc3339()).unwrap_or_default(),
                    ]
                },
            )
            .collect()
    });
    audited_download(state, request, session, &ACCOUNTS, rows).await
}

type UsageRow = (NaiveDate, Uuid, String, i32, i32, i32, i64, i64);

pub async fn usage(state: &DashboardState, request: &Request, session: &Session) -> Response {
    let rows = sqlx::query_as::<_, UsageRow>(
        "SELECT day, account_id, service, verifications, completed, refunded, spend_cents,
                refunded_cents
         FROM usage_by_day WHERE day >= (now() AT TIME ZONE 'UTC')::date - 89
         ORDER BY day, account_id, service",
    )
    .fetch_all(&state.pool)
    .await
    .map(|rows| {
        rows.into_iter()
            .map(
                |(day, account, service, count, completed, refunded, spend, refunds)| {
                    vec![
                        day.to_string(),
                        account.to_string(),
                        service,
                        count.to_string(),
                        completed.to_string(),
                        refunded.to_string(),
                        spend.to_string(),
                        refunds.to_string(),
                    ]
                },
            )
            .collect()
    });
    audited_download(state, request, session, &USAGE, rows).await
}

#[cfg(test)]
mod tests {
    use super::field;

    #[test]
    fn fields_are_quoted_and_formulas_defused() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(field("-5"), "'-5");
    }
}
