//! Renting a number: the services with the customer's prices, one click to order, the
//! number and the live code, a countdown to the deadline, cancel, and the refund.

use serde_json::{Value, json};
use std::sync::Arc;
use uuid::Uuid;
use warp::{
    http::{HeaderValue, StatusCode, header},
    reply::Response,
};

use namaskah_core::{
    domain::{Status, VerificationId},
    pricing,
    store::{accounts, customers::Session, events, ledger, verifications},
    views::VerificationView,
};

use super::account::unavailable;
use crate::{
    ApiError, AppState,
    app::{
        WebApp,
        calls::{self, Outcome},
        visit::{Visit, redirect, refusal_status},
    },
    v1,
};

/// The tenant's colours as CSS custom properties (the pages' only per-tenant style; inline
/// styles are not allowed by the content security policy).
pub fn brand_css(visit: &Visit) -> Response {
    let brand = &visit.tenant.tenant.brand;
    let mut css = String::from(":root {");
    // The database only holds `#rrggbb` colours (a CHECK constraint), safe inside CSS.
    if let Some(primary) = &brand.primary_colour {
        css.push_str(&format!(" --brand: {primary};"));
    }
    if let Some(accent) = &brand.accent_colour {
        css.push_str(&format!(" --brand-accent: {accent};"));
    }
    css.push_str(" }\n");
    let mut response = Response::new(css.into());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// One offer as the pickers show it, at the customer's own price.
async fn offers(
    state: &Arc<AppState>,
    session: &Session,
    visit: &Visit,
) -> Result<Vec<Value>, ApiError> {
    let plan = state.caches.tier_plan(&state.pool, session.tier).await?;
    let offers = state
        .caches
        .offers(&state.pool, &state.provider_order)
        .await?;
    let mut quotes = pricing::price_list(&offers, &state.provider_order, &visit.tenant.prices);
    // By service, cheapest country first: the first row of each service is its "from" price,
    // the one the table shows until a service is chosen.
    quotes.sort_by(|a, b| {
        (&a.service, a.price_cents, &a.country).cmp(&(&b.service, b.price_cents, &b.country))
    });
    let mut previous: Option<String> = None;
    Ok(quotes
        .into_iter()
        .map(|quote| {
            let cheapest = previous.as_deref() != Some(quote.service.as_str());
            previous = Some(quote.service.clone());
            json!({
                "service": quote.service,
                "country": quote.country,
                "price_cents": plan.price_cents(quote.price_cents),
                "minutes": (quote.sms_timeout_secs + 59) / 60,
                "cheapest": cheapest,
            })
        })
        .collect())
}

/// The rent page; `refused` is an order that was not taken, shown above the form.
pub async fn page(
    app: &WebApp,
    visit: &Visit,
    session: &Session,
    refused: Option<(StatusCode, String)>,
) -> Response {
    let state = &app.api;
    let (account, offers, recent) = match tokio::try_join!(
        async { Ok::<_, ApiError>(accounts::find(&state.pool, session.account_id).await?) },
        offers(state, session, visit),
        async {
            Ok::<_, ApiError>(
                verifications::list_for_account(&state.pool, session.account_id, None, None, 10, 0)
                    .await?,
            )
        },
    ) {
        Ok(found) => found,
        Err(error) => return refused_page(app, visit, &error),
    };
    let mut services: Vec<&str> = offers
        .iter()
        .filter_map(|o| o["service"].as_str())
        .collect();
    services.dedup();
    let mut countries: Vec<&str> = offers
        .iter()
        .filter_map(|o| o["country"].as_str())
        .collect();
    countries.sort_unstable();
    countries.dedup();
    let open: Vec<VerificationView> = recent
        .iter()
        .filter(|v| !v.status.is_final())
        .map(VerificationView::from)
        .collect();
    let form = visit.form();
    let (status, error) = refusal_status(refused);
    app.page(
        visit,
        status,
        "rent",
        "Rent a number",
        json!({
            "error": error,
            "balance_cents": account.map_or(0, |a| a.balance_cents),
            "services": services,
            "countries": countries,
            "offers": offers,
            "chosen_service": form.get("service"),
            "chosen_country": form.get("country"),
            "open": open,
            "idempotency_key": Uuid::now_v7().to_string(),
        }),
    )
}

/// An error from the API's own code, on a page of its own.
fn refused_page(app: &WebApp, visit: &Visit, error: &ApiError) -> Response {
    if error.status().is_server_error() {
        tracing::warn!(%error, "web app page failed");
    }
    app.message(visit, error.status(), "Not available", &error.to_string())
}

/// `POST /rent` `service`, `country` (empty: the cheapest), `idempotency_key`.
pub async fn order(app: &WebApp, visit: &Visit, session: &Session) -> Response {
    let state = &app.api;
    let form = visit.form();
    let field = |name: &str| {
        form.get(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let Some(service) = field("service") else {
        let message = "Choose a service first.".to_owned();
        return page(
            app,
            visit,
            session,
            Some((StatusCode::UNPROCESSABLE_ENTITY, message)),
        )
        .await;
    };
    let request = json!({ "service": service, "country": field("country") });
    let key = calls::idempotency_key(&form);
    let outcome = calls::act(state, session, |state, caller| {
        v1::verifications::create_as(state, caller, key, calls::body(&request))
    })
    .await;
    match outcome {
        Outcome::Done(created) => match created["id"].as_str() {
            Some(id) => redirect(&format!("/verifications/{id}")),
            None => redirect("/"),
        },
        Outcome::Refused { status, message } => {
            page(app, visit, session, Some((status, message))).await
        }
    }
}

/// One verification: its number, code (live), countdown, timeline and money.
pub async fn verification(app: &WebApp, visit: &Visit, session: &Session, id: &str) -> Response {
    show(app, visit, session, id, None).await
}

async fn show(
    app: &WebApp,
    visit: &Visit,
    session: &Session,
    id: &str,
    refused: Option<(StatusCode, String)>,
) -> Response {
    let state = &app.api;
    let not_found = || {
        app.message(
            visit,
            StatusCode::NOT_FOUND,
            "Not found",
            "There is no such verification in your account.",
        )
    };
    let Some(id) = VerificationId::parse(id) else {
        return not_found();
    };
    let found = async {
        let Some(verification) =
            verifications::find_for_account(&state.pool, session.account_id, id).await?
        else {
            return Ok(None);
        };
        let timeline = events::of_verifications(&state.pool, session.account_id, &[id]).await?;
        let money = ledger::entries_for_verification(&state.pool, id).await?;
        Ok::<_, namaskah_core::store::StoreError>(Some((verification, timeline, money)))
    }
    .await;
    let (verification, timeline, money) = match found {
        Ok(Some(found)) => found,
        Ok(None) => return not_found(),
        Err(error) => return unavailable(app, visit, &error),
    };
    // A settled verification has no deadline left to count down to.
    let counting = !verification.status.is_final();
    let cancellable = matches!(
        verification.status,
        Status::Pending | Status::Ordering | Status::WaitingSms
    ) && verification.cancel_requested_at.is_none();
    let timeline: Vec<Value> = timeline
        .iter()
        .map(|event| {
            json!({
                "type": event.event_type,
                "at": event.created_at.format("%H:%M:%S UTC").to_string(),
            })
        })
        .collect();
    let money: Vec<Value> = money
        .iter()
        .map(|(kind, cents)| json!({ "kind": kind, "amount_cents": cents }))
        .collect();
    let (status, error) = refusal_status(refused);
    app.page(
        visit,
        status,
        "verification",
        "Your number",
        json!({
            "error": error,
            "v": VerificationView::from(&verification),
            "cancellable": cancellable,
            "counting": counting,
            "timeline": timeline,
            "money": money,
            "idempotency_key": Uuid::now_v7().to_string(),
        }),
    )
}

/// `POST /verifications/{id}/cancel` `idempotency_key`.
pub async fn cancel(app: &WebApp, visit: &Visit, session: &Session, id: &str) -> Response {
    let state = &app.api;
    let form = visit.form();
    let key = calls::idempotency_key(&form);
    let outcome = calls::act(state, session, |state, caller| {
        v1::verifications::cancel_as(state, id.to_owned(), caller, key, Ok(bytes::Bytes::new()))
    })
    .await;
    match outcome {
        Outcome::Done(_) => redirect(&format!("/verifications/{id}")),
        Outcome::Refused { status, message } => {
            show(app, visit, session, id, Some((status, message))).await
        }
    }
}
