//! Verifications: search by id, account, phone number or status; one verification's story.

use serde_json::{Value, json};
use uuid::Uuid;
use warp::{http::StatusCode, reply::Response};

use namaskah_core::{
    domain::{Status, VerificationId},
    store::{admins::Session, ledger, verifications::Verification},
    views::VerificationView,
};

use super::when;
use crate::{
    DashboardState,
    request::{Request, text},
    timeline::{self, Mark, Moment},
};

const COLUMNS: &str = "id, account_id, service, country, price_cents, status, order_attempts, ordering_claim,
    ordering_claimed_at, provider, provider_order_id, phone_number, code, sms_text, failure_reason, deadline,
    cancel_requested_at, trace_id, created_at, updated_at, number_assigned_at, completed_at, refunded_at";

pub async fn search(state: &DashboardState, request: &Request, session: &Session) -> Response {
    let q = request.query("q").unwrap_or_default().trim().to_owned();
    let status = request.query("status").and_then(|s| Status::parse(s).ok());
    let as_uuid = Uuid::parse_str(&q).ok();
    let phone = (!q.is_empty() && as_uuid.is_none()).then(|| q.clone());
    if phone
        .as_deref()
        .is_some_and(|phone| !looks_like_a_phone_number(phone))
    {
        return text(
            StatusCode::BAD_REQUEST,
            "Search by a verification's or an account's id (a UUID) or by a phone number \
             (up to 32 digits, spaces, dashes, brackets and a leading +).",
        );
    }
    let sql = format!(
        "SELECT {COLUMNS} FROM verifications
         WHERE ($1::uuid IS NULL OR id = $1 OR account_id = $1)
           AND ($2::text IS NULL OR id IN (SELECT verification_id FROM verification_numbers
                                           WHERE phone_number = $2))
           AND ($3::text IS NULL OR status = $3)
         ORDER BY created_at DESC LIMIT 100"
    );
    let found = sqlx::query_as::<_, Verification>(sqlx::AssertSqlSafe(sql))
        .bind(as_uuid)
        .bind(phone)
        .bind(status.map(Status::as_str))
        .fetch_all(&state.pool)
        .await;
    let rows = match found {
        Ok(rows) => rows,
        Err(error) => {
            tracing::error!(%error, "verification search failed");
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                "The database is unavailable.",
            );
        }
    };
    let rows: Vec<Value> = rows.iter().map(row).collect();
    let statuses: Vec<Value> = Status::ALL
        .iter()
        .map(|s| json!({ "name": s.as_str(), "selected": Some(*s) == status }))
        .collect();
    super::page(
        state,
        session,
        "verifications",
        "Verifications",
        json!({ "rows": rows, "q": q, "statuses": statuses }),
    )
}

fn row(v: &Verification) -> Value {
    json!({
        "id": v.id.to_string(),
        "account_id": v.account_id.to_string(),
        "service": v.service,
        "country": v.country,
        "status": v.status.as_str(),
        "phone_number": v.phone_number,
        "provider": v.provider,
        "updated_at": when(&v.updated_at),
    })
}

/// One webhook attempt for this verification.
#[derive(serde::Serialize, sqlx::FromRow)]
struct AttemptRow {
    url: String,
    attempt: i32,
    #[serde(serialize_with = "namaskah_core::views::timestamp")]
    at: chrono::DateTime<chrono::Utc>,
    ok: bool,
    status_code: Option<i32>,
    error: Option<String>,
}

/// What a phone number typed into the search may hold; anything else (a NUL byte, say,
/// which PostgreSQL refuses in text) cannot match and is refused up front.
fn looks_like_a_phone_number(text: &str) -> bool {
    text.len() <= 32
        && text.chars().enumerate().all(|(at, c)| {
            c.is_ascii_digit() || matches!(c, ' ' | '-' | '(' | ')') || (c == '+' && at == 0)
        })
}

pub async fn detail(state: &DashboardState, session: &Session, id: &str) -> Response {
    let Some(id) = VerificationId::parse(id) else {
        return text(StatusCode::NOT_FOUND, "No such verification.");
    };
    let pool = &state.pool;
    let sql = format!("SELECT {COLUMNS} FROM verifications WHERE id = $1");
    let verification = match sqlx::query_as::<_, Verification>(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(pool)
        .await
    {
        Ok(Some(v)) => v,
        Ok(None) => return text(StatusCode::NOT_FOUND, "No such verification."),
        Err(error) => {
            tracing::error!(%error, "cannot load a verification");
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                "The database is unavailable.",
            );
        }
    };
    // Every status change recorded its event (migration 0004), which makes the timeline.
    let transitions: Vec<(String, chrono::DateTime<chrono::Utc>, String)> = sqlx::query_as(
        "SELECT event_type, created_at, id FROM webhook_messages
         WHERE payload #>> '{data,id}' = $1 ORDER BY created_at, id",
    )
    .bind(id.to_string())
    .fetch_all(pool)
    .await
    .unwrap_or_default();
    let ledger_rows = ledger::entries_for_verification(pool, id)
        .await
        .unwrap_or_default();
    let attempts = sqlx::query_as::<_, AttemptRow>(
        "SELECT e.url, a.attempt, a.attempted_at AS at, a.succeeded AS ok, a.status_code, a.error
         FROM webhook_attempts a
         JOIN webhook_deliveries d ON d.id = a.delivery_id
         JOIN webhook_endpoints e ON e.id = d.endpoint_id
         JOIN webhook_messages m ON m.id = d.message_id
         WHERE m.payload #>> '{data,id}' = $1 ORDER BY a.attempted_at",
    )
    .bind(id.to_string())
    .fetch_all(pool)
    .await
    .unwrap_or_default();
    let errors: Vec<(String, String, i64, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
        "SELECT kind, message, occurrences, last_seen FROM error_groups WHERE verification_id = $1 ORDER BY last_seen DESC",
    )
    .bind(id.0)
    .fetch_all(pool)
    .await
    .unwrap_or_default();

    let tenant: Option<(String, String)> = sqlx::query_as(
        "SELECT t.slug, t.name FROM accounts a JOIN tenants t ON t.id = a.tenant_id
         WHERE a.id = $1",
    )
    .bind(verification.account_id)
    .fetch_optional(pool)
    .await
    .unwrap_or_default();

    let mut timeline =
        vec![json!({ "at": when(&verification.created_at), "what": "accepted and charged" })];
    timeline.extend(
        transitions.iter().map(
            |(event, at, message)| json!({ "at": when(at), "what": event, "message": message }),
        ),
    );
    let provider_calls = provider_story(&verification);
    let moments: Vec<Moment> = std::iter::once(Moment {
        at: verification.created_at,
        what: "accepted and charged".to_owned(),
        mark: Mark::Step,
    })
    .chain(transitions.iter().map(|(event, at, _)| Moment {
        at: *at,
        what: event.clone(),
        mark: Mark::Step,
    }))
    .chain(attempts.iter().map(|attempt| Moment {
        at: attempt.at,
        what: format!(
            "{} #{}: {}",
            attempt.url,
            attempt.attempt,
            attempt.status_code.map_or_else(
                || attempt.error.clone().unwrap_or_default(),
                |code| code.to_string()
            )
        ),
        mark: Mark::Attempt {
            delivered: attempt.ok,
        },
    }))
    .collect();
    let context = json!({
        "timeline_svg": timeline::to_svg("story", &moments),
        "v": VerificationView::from(&verification),
        "row": row(&verification),
        "provider": verification.provider,
        "provider_order_id": verification.provider_order_id,
        "order_attempts": verification.order_attempts,
        "trace_id": verification.trace_id,
        "tenant": tenant.map(|(slug, name)| json!({ "slug": slug, "name": name })),
        "timeline": timeline,
        "provider_calls": provider_calls,
        "ledger": ledger_rows.iter().map(|(kind, cents)| json!({ "kind": kind, "cents": cents })).collect::<Vec<_>>(),
        "attempts": attempts,
        "errors": errors.iter().map(|(kind, message, count, last)| json!({
            "kind": kind, "message": message, "count": count, "last_seen": when(last),
        })).collect::<Vec<_>>(),
    });
    super::page(state, session, "verification", "Verification", context)
}

/// What we asked the provider, as far as the row tells.
fn provider_story(v: &Verification) -> Vec<Value> {
    let mut calls = Vec::new();
    if let (Some(provider), Some(at)) = (&v.provider, &v.number_assigned_at) {
        calls.push(json!({ "at": when(at), "what": format!("buy at {provider}: order {}", v.provider_order_id.as_deref().unwrap_or("?")) }));
        let polled_until = v.completed_at.or(v.refunded_at).unwrap_or(v.updated_at);
        calls.push(json!({ "at": when(at), "what": format!("check for the SMS until {}", when(&polled_until)) }));
    }
    if let Some(at) = &v.cancel_requested_at {
        calls.push(json!({ "at": when(at), "what": "cancel requested by the customer" }));
    }
    if let Some(at) = &v.completed_at {
        calls.push(json!({ "at": when(at), "what": "SMS received; order finished" }));
    }
    calls
}

#[cfg(test)]
mod tests {
    use super::looks_like_a_phone_number;

    #[test]
    fn a_search_holds_a_phone_number_or_nothing_postgres_would_refuse() {
        for number in ["+15550001111", "0044 20 7946-0000", "(555) 000-1111"] {
            assert!(looks_like_a_phone_number(number), "{number}");
        }
        for other in [
            "telegram",
            "1\u{0}2",
            "15+55",
            &"1".repeat(33),
            "' OR 1=1 --",
        ] {
            assert!(!looks_like_a_phone_number(other), "{other:?}");
        }
    }
}
