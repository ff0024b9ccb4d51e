//! Every verification of the account, newest first, by status and service.

use serde_json::json;
use warp::{http::StatusCode, reply::Response};

use namaskah_core::{
    domain::{ServiceCode, Status},
    store::{customers::Session, verifications},
    views::VerificationView,
};

use super::account::unavailable;
use crate::app::{WebApp, visit::Visit};

const PAGE: i64 = 25;
/// Pages beyond this are not offered (the filters narrow a long history faster).
const MAX_PAGE: i64 = 400;

const STATUSES: [&str; 8] = [
    "pending",
    "ordering",
    "waiting_sms",
    "completed",
    "timed_out",
    "cancelled",
    "failed",
    "refunded",
];

pub async fn page(app: &WebApp, visit: &Visit, session: &Session) -> Response {
    let status = match visit.query("status").map(Status::parse).transpose() {
        Ok(status) => status,
        Err(_) => return refuse(app, visit, "Choose a status from the list."),
    };
    let service = match visit.query("service").map(ServiceCode::parse).transpose() {
        Ok(service) => service,
        Err(_) => {
            return refuse(
                app,
                visit,
                "A service is a code such as `telegram`: lowercase letters, digits, `-` or `_`.",
            );
        }
    };
    let page_number = match visit.query("page").map(str::parse::<i64>).transpose() {
        Ok(number) if number.is_none_or(|n| (1..=MAX_PAGE).contains(&n)) => number.unwrap_or(1),
        _ => return refuse(app, visit, "There is no such page of your history."),
    };
    let mut rows = match verifications::list_for_account(
        &app.api.pool,
        session.account_id,
        status,
        service.as_ref().map(ServiceCode::as_str),
        PAGE + 1,
        (page_number - 1) * PAGE,
    )
    .await
    {
        Ok(rows) => rows,
        Err(error) => return unavailable(app, visit, &error),
    };
    let more = rows.len() as i64 > PAGE;
    rows.truncate(PAGE as usize);
    let rows: Vec<VerificationView> = rows.iter().map(VerificationView::from).collect();
    let filter = |page: i64| {
        let mut query = vec![("page", page.to_string())];
        if let Some(status) = status {
            query.push(("status", status.as_str().to_owned()));
        }
        if let Some(service) = &service {
            query.push(("service", service.as_str().to_owned()));
        }
        serde_urlencoded::to_string(query).unwrap_or_default()
    };
    app.page(
        visit,
        StatusCode::OK,
        "history",
        "History",
        json!({
            "rows": rows,
            "statuses": STATUSES,
            "status": status.map(Status::as_str),
            "service": service.as_ref().map(ServiceCode::as_str),
            "previous": (page_number > 1).then(|| filter(page_number - 1)),
            "next": more.then(|| filter(page_number + 1)),
        }),
    )
}

fn refuse(app: &WebApp, visit: &Visit, message: &str) -> Response {
    app.page(
        visit,
        StatusCode::BAD_REQUEST,
        "history",
        "History",
        json!({ "error": message, "rows": [], "statuses": STATUSES }),
    )
}
