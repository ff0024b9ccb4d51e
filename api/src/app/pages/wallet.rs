//! The wallet: balance, ledger, top-ups; a top-up opens the payment provider's checkout
//! (the API's own `POST /v1/payments`), and the money arrives with its signed webhook.

use serde_json::{Value, json};
use uuid::Uuid;
use warp::{http::StatusCode, reply::Response};

use namaskah_core::{
    payments::PaymentProvider,
    store::{accounts, customers::Session, ledger, payments},
};

use super::account::unavailable;
use crate::{
    app::{
        WebApp,
        calls::{self, Outcome},
        visit::{Visit, redirect, refusal_status},
    },
    v1,
};

/// `12`, `12.5` or `12.50` (the wallet's currency) → cents; anything else is `None`.
pub fn parse_amount(text: &str) -> Option<i64> {
    let text = text.trim();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty()
        || whole.len() > 9
        || !digits(whole)
        || fraction.len() > 2
        || !digits(fraction)
    {
        return None;
    }
    let cents = format!("{fraction:0<2}").parse::<i64>().ok()?;
    whole
        .parse::<i64>()
        .ok()?
        .checked_mul(100)?
        .checked_add(cents)
}

pub async fn page(
    app: &WebApp,
    visit: &Visit,
    session: &Session,
    refused: Option<(StatusCode, String)>,
) -> Response {
    let pool = &app.api.pool;
    let found = async {
        Ok::<_, namaskah_core::store::StoreError>((
            accounts::find(pool, session.account_id).await?,
            ledger::entries_for_account(pool, session.account_id, 50).await?,
            payments::list_for_account(pool, session.account_id, 20).await?,
        ))
    }
    .await;
    let (account, entries, top_ups) = match found {
        Ok(found) => found,
        Err(error) => return unavailable(app, visit, &error),
    };
    let providers: Vec<&str> = [PaymentProvider::Paystack, PaymentProvider::Stripe]
        .into_iter()
        .filter(|provider| app.api.payment_gateways.get(*provider).is_some())
        .map(PaymentProvider::as_str)
        .collect();
    let entries: Vec<Value> = entries
        .iter()
        .map(|entry| {
            json!({
                "kind": entry.kind,
                "amount_cents": entry.amount_cents,
                "reference": entry.reference,
                "verification_id": entry.verification_id.map(|id| id.to_string()),
                "at": entry.created_at.format("%Y-%m-%d %H:%M").to_string(),
            })
        })
        .collect();
    let top_ups: Vec<Value> = top_ups
        .iter()
        .map(|payment| {
            json!({
                "provider": payment.provider.as_str(),
                "amount_cents": payment.amount_cents,
                "status": payment.status,
                "at": payment.created_at.format("%Y-%m-%d %H:%M").to_string(),
            })
        })
        .collect();
    let (status, error) = refusal_status(refused);
    app.page(
        visit,
        status,
        "wallet",
        "Wallet",
        json!({
            "error": error,
            "balance_cents": account.map_or(0, |a| a.balance_cents),
            "currency": app.api.payment_settings.currency,
            "providers": providers,
            "entries": entries,
            "top_ups": top_ups,
            "paid": visit.query("paid").is_some(),
            "idempotency_key": Uuid::now_v7().to_string(),
        }),
    )
}

/// `POST /wallet/top-up` `provider`, `amount`, `idempotency_key`: on to the checkout.
pub async fn top_up(app: &WebApp, visit: &Visit, session: &Session) -> Response {
    let form = visit.form();
    let Some(amount_cents) = form.get("amount").and_then(|a| parse_amount(a)) else {
        let message = "Enter an amount such as 10 or 12.50.".to_owned();
        return page(
            app,
            visit,
            session,
            Some((StatusCode::UNPROCESSABLE_ENTITY, message)),
        )
        .await;
    };
    let request = json!({
        "provider": form.get("provider").map(|p| p.trim()).unwrap_or_default(),
        "amount_cents": amount_cents,
        "currency": app.api.payment_settings.currency,
    });
    let state = &app.api;
    let key = calls::idempotency_key(&form);
    let return_to = format!("{}/wallet?paid=1", super::reset::base_url(app, visit));
    let outcome = calls::act(state, session, |state, caller| {
        v1::payments::create_as(state, caller, key, calls::body(&request), Some(return_to))
    })
    .await;
    match outcome {
        Outcome::Done(payment) => match payment["checkout_url"].as_str() {
            Some(checkout) if payment["status"] == "pending" => redirect(checkout),
            _ => {
                let failure = payment["failure"]
                    .as_str()
                    .unwrap_or("the provider refused it");
                let message =
                    format!("The checkout could not be opened: {failure}. Nothing was charged.");
                page(
                    app,
                    visit,
                    session,
                    Some((StatusCode::BAD_GATEWAY, message)),
                )
                .await
            }
        },
        Outcome::Refused { status, message } => {
            page(app, visit, session, Some((status, message))).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_amount;

    #[test]
    fn amounts_read_as_cents_and_nonsense_does_not() {
        assert_eq!(parse_amount("10"), Some(1000));
        assert_eq!(parse_amount(" 12.5 "), Some(1250));
        assert_eq!(parse_amount("0.07"), Some(7));
        for bad in ["", ".5", "1.234", "-3", "1e3", "ten", "12,50", "9999999999"] {
            assert_eq!(parse_amount(bad), None, "{bad}");
        }
    }
}
