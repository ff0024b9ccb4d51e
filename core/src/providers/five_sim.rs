//! 5SIM (https://5sim.net/docs), API v1.
//!
//! `GET {base}/user/buy/activation/{country}/{operator}/{product}`, `GET {base}/user/check/{id}`,
//! `GET {base}/user/cancel/{id}`, `GET {base}/user/finish/{id}`, with
//! `Authorization: Bearer <key>`. Orders come back as JSON; errors come back as short plain
//! texts ("no free phones", "not enough user balance", "order not found", …), sometimes with
//! status 200, so the body is classified before it is parsed.

use async_trait::async_trait;
use serde::Deserialize;

use super::{
    CallTimeouts, OrderState, Provider, ProviderError, PurchasedNumber, excerpt, extract_code,
    http_client, transport_error,
};
use crate::config::{ProviderSettings, Secret};

pub struct FiveSim {
    name: String,
    base_url: String,
    api_key: Secret,
    http: reqwest::Client,
}

/// An order as 5SIM returns it (the fields we use).
#[derive(Debug, Deserialize)]
struct Order {
    id: i64,
    phone: String,
    status: String,
    #[serde(default)]
    sms: Option<Vec<Sms>>,
}

#[derive(Debug, Deserialize)]
struct Sms {
    #[serde(default)]
    text: String,
    #[serde(default)]
    code: String,
}

impl FiveSim {
    pub fn new(
        settings: &ProviderSettings,
        timeouts: CallTimeouts,
    ) -> Result<Self, reqwest::Error> {
        Ok(Self {
            name: settings.name.clone(),
            base_url: settings.base_url.trim_end_matches('/').to_owned(),
            api_key: settings.api_key.clone(),
            http: http_client(timeouts)?,
        })
    }

    async fn get(&self, path: &str) -> Result<String, ProviderError> {
        let response = self
            .http
            .get(format!("{}{path}", self.base_url))
            .bearer_auth(self.api_key.expose())
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status();
        if status.as_u16() == 429 {
            return Err(super::rate_limited(response.headers()));
        }
        let body = response.text().await.map_err(transport_error)?;
        if let Some(error) = classify_text_error(&body) {
            return Err(error);
        }
        match status.as_u16() {
            200..=299 => Ok(body),
            401 | 403 => Err(ProviderError::Rejected(
                "the API key was refused".to_owned(),
            )),
            404 => Err(ProviderError::OrderNotFound),
            500..=599 => Err(ProviderError::Unavailable(format!("HTTP {status}"))),
            _ => Err(ProviderError::Rejected(format!(
                "HTTP {status}: {}",
                excerpt(&body, 200)
            ))),
        }
    }

    async fn get_order(&self, path: &str) -> Result<Order, ProviderError> {
        let body = self.get(path).await?;
        serde_json::from_str(&body)
            .map_err(|e| ProviderError::BadResponse(format!("{e}: {}", excerpt(&body, 200))))
    }
}

/// 5SIM's documented plain-text errors.
fn classify_text_error(body: &str) -> Option<ProviderError> {
    let text = body.trim().to_ascii_lowercase();
    if text.starts_with('{') || text.is_empty() {
        return None;
    }
    Some(match text.as_str() {
        "no free phones" => ProviderError::OutOfStock,
        "order not found" | "order expired" | "record not found" => ProviderError::OrderNotFound,
        "order has sms" => ProviderError::OrderHasSms,
        "server offline" | "you need to wait time" => ProviderError::Unavailable(text),
        _ if text.contains("rate limit") || text.contains("api limit") => {
            ProviderError::Unavailable(text)
        }
        // "not enough user balance", "not enough rating", "bad country", "bad operator",
        // "no product", "select country", …: this provider cannot serve the request.
        _ => ProviderError::Rejected(excerpt(body, 200)),
    })
}

fn order_state(order: &Order) -> OrderState {
    match order.status.as_str() {
        "RECEIVED" | "FINISHED" => match order.sms.as_deref().and_then(<[Sms]>::last) {
            Some(sms) => {
                let code = if sms.code.is_empty() {
                    extract_code(&sms.text).unwrap_or_default()
                } else {
                    sms.code.clone()
                };
                OrderState::Received {
                    code,
                    text: sms.text.clone(),
                }
            }
            // RECEIVED means "number received" as well: the SMS is still to come.
            None if order.status == "RECEIVED" => OrderState::Waiting,
            None => OrderState::Finished,
        },
        "CANCELED" => OrderState::Cancelled,
        "TIMEOUT" => OrderState::TimedOut,
        "BANNED" => OrderState::Banned,
        _ => OrderState::Waiting,
    }
}

#[async_trait]
impl Provider for FiveSim {
    fn name(&self) -> &str {
        &self.name
    }

    async fn buy(&self, product: &str, country: &str) -> Result<PurchasedNumber, ProviderError> {
        let order = self
            .get_order(&format!("/user/buy/activation/{country}/any/{product}"))
            .await?;
        Ok(PurchasedNumber {
            order_id: order.id.to_string(),
            phone_number: order.phone,
        })
    }

    async fn check(&self, order_id: &str) -> Result<OrderState, ProviderError> {
        let order = self.get_order(&format!("/user/check/{order_id}")).await?;
        Ok(order_state(&order))
    }

    async fn cancel(&self, order_id: &str) -> Result<(), ProviderError> {
        self.get_order(&format!("/user/cancel/{order_id}"))
            .await
            .map(|_| ())
    }

    async fn finish(&self, order_id: &str) -> Result<(), ProviderError> {
        self.get_order(&format!("/user/finish/{order_id}"))
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(status: &str, sms: Option<Vec<(&str, &str)>>) -> Order {
        Order {
            id: 1,
            phone: "+15550000000".into(),
            status: status.into(),
            sms: sms.map(|list| {
                list.into_iter()
                    .map(|(text, code)| Sms {
                        text: text.into(),
                        code: code.into(),
                    })
                    .collect()
            }),
        }
    }

    #[test]
    fn documented_text_errors_are_classified() {
        assert_eq!(
            classify_text_error("no free phones"),
            Some(ProviderError::OutOfStock)
        );
        assert_eq!(
            classify_text_error("order not found"),
            Some(ProviderError::OrderNotFound)
        );
        assert!(matches!(
            classify_text_error("not enough user balance"),
            Some(ProviderError::Rejected(_))
        ));
        assert!(matches!(
            classify_text_error("server offline"),
            Some(ProviderError::Unavailable(_))
        ));
        assert_eq!(classify_text_error("{\"id\":1}"), None);
    }

    #[test]
    fn order_statuses_map_to_states() {
        assert_eq!(order_state(&order("PENDING", None)), OrderState::Waiting);
        assert_eq!(
            order_state(&order("RECEIVED", Some(vec![]))),
            OrderState::Waiting
        );
        assert_eq!(
            order_state(&order("RECEIVED", Some(vec![("Your code 5512", "5512")]))),
            OrderState::Received {
                code: "5512".into(),
                text: "Your code 5512".into()
            }
        );
        assert_eq!(
            order_state(&order("RECEIVED", Some(vec![("Your code 88231", "")]))),
            OrderState::Received {
                code: "88231".into(),
                text: "Your code 88231".into()
            }
        );
        assert_eq!(order_state(&order("CANCELED", None)), OrderState::Cancelled);
        assert_eq!(order_state(&order("TIMEOUT", None)), OrderState::TimedOut);
        assert_eq!(order_state(&order("BANNED", None)), OrderState::Banned);
    }
}
