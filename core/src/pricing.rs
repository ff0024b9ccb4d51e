//! What a customer pays.
//!
//! The catalogue has one row per provider. The customer's price for a service in a country
//! is the price of the first provider in the failover order (`PROVIDERS`) that sells it:
//! that is the provider the ordering worker tries first. If a later provider fills the
//! order, the customer still pays the quoted price; the margin is ours to win or lose.
//! Without a country, the cheapest country is chosen (ties by country code).
//!
//! A white-label tenant may set its own prices ([`PriceBook`]); where it has, its price
//! replaces the catalogue's for its accounts. A tenant price never makes an unsold service
//! sellable. The tier's percentage applies afterwards, to either.

use std::collections::BTreeMap;

use crate::store::{services::Offer, tenants::PriceBook};

/// The price of one service in one country.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quote {
    pub service: String,
    pub country: String,
    pub price_cents: i64,
    pub sms_timeout_secs: i32,
}

/// One quote per (service, country), from the preferred provider of each, at the tenant's
/// price where `book` has one.
pub fn price_list(offers: &[Offer], provider_order: &[String], book: &PriceBook) -> Vec<Quote> {
    preferred(offers, provider_order)
        .into_iter()
        .map(|offer| quote_of(offer, book))
        .collect()
}

/// The quote for a request; `None` when no enabled provider sells the service there.
/// Only the service's (and country's) offers are looked at: this runs on every order.
pub fn quote(
    offers: &[Offer],
    provider_order: &[String],
    book: &PriceBook,
    service: &str,
    country: Option<&str>,
) -> Option<Quote> {
    let wanted = offers
        .iter()
        .filter(|o| o.service == service && country.is_none_or(|c| o.country == c));
    preferred(wanted, provider_order)
        .into_iter()
        .map(|offer| quote_of(offer, book))
        .min_by(|a, b| {
            a.price_cents
                .cmp(&b.price_cents)
                .then_with(|| a.country.cmp(&b.country))
        })
}

/// Of each (service, country), the offer of the provider that comes first in
/// `provider_order`, ordered by service and country.
fn preferred<'a>(
    offers: impl IntoIterator<Item = &'a Offer>,
    provider_order: &[String],
) -> Vec<&'a Offer> {
    let rank = |provider: &str| {
        provider_order
            .iter()
            .position(|p| p == provider)
            .unwrap_or(usize::MAX)
    };
    let mut preferred: BTreeMap<(&str, &str), &Offer> = BTreeMap::new();
    for offer in offers {
        let key = (offer.service.as_str(), offer.country.as_str());
        match preferred.get(&key) {
            Some(current) if rank(&current.provider) <= rank(&offer.provider) => {}
            _ => {
                preferred.insert(key, offer);
            }
        }
    }
    preferred.into_values().collect()
}

fn quote_of(offer: &Offer, book: &PriceBook) -> Quote {
    // Most tenants have no prices of their own: no key to build then.
    let own = if book.is_empty() {
        None
    } else {
        book.get(&(offer.service.clone(), offer.country.clone()))
            .copied()
    };
    Quote {
        service: offer.service.clone(),
        country: offer.country.clone(),
        price_cents: own.unwrap_or(offer.price_cents),
        sms_timeout_secs: offer.sms_timeout_secs,
    }
}

/// The offers for one verification in the order the ordering worker should try them.
pub fn failover_order<'a>(offers: &'a [Offer], provider_order: &[String]) -> Vec<&'a Offer> {
    provider_order
        .iter()
        .filter_map(|provider| offers.iter().find(|o| &o.provider == provider))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(country: &str, provider: &str, price: i64) -> Offer {
        Offer {
            service: "telegram".into(),
            country: country.into(),
            provider: provider.into(),
            provider_product: "telegram".into(),
            provider_country: country.into(),
            price_cents: price,
            sms_timeout_secs: 300,
        }
    }

    fn order() -> Vec<String> {
        vec!["a".into(), "b".into()]
    }

    #[test]
    fn the_first_provider_in_failover_order_sets_the_price() {
        let offers = [offer("us", "b", 50), offer("us", "a", 90)];
        let quote =
            quote(&offers, &order(), &PriceBook::new(), "telegram", Some("us")).expect("quoted");
        assert_eq!(quote.price_cents, 90);
        let tries: Vec<&str> = failover_order(&offers, &order())
            .iter()
            .map(|o| o.provider.as_str())
            .collect();
        assert_eq!(tries, vec!["a", "b"]);
    }

    #[test]
    fn without_a_country_the_cheapest_is_chosen() {
        let offers = [
            offer("us", "a", 90),
            offer("in", "a", 30),
            offer("id", "a", 30),
        ];
        let quote = quote(&offers, &order(), &PriceBook::new(), "telegram", None).expect("quoted");
        assert_eq!(quote.country, "id");
    }

    #[test]
    fn an_unsold_service_has_no_quote() {
        let offers = [offer("us", "a", 90)];
        let book = PriceBook::from([(("telegram".to_owned(), "gb".to_owned()), 10)]);
        assert!(quote(&offers, &order(), &book, "whatsapp", None).is_none());
        assert!(quote(&offers, &order(), &book, "telegram", Some("gb")).is_none());
    }

    #[test]
    fn a_tenant_price_replaces_the_catalogue_price_and_can_change_the_cheapest_country() {
        let offers = [offer("us", "a", 90), offer("in", "a", 30)];
        let book = PriceBook::from([(("telegram".to_owned(), "us".to_owned()), 20)]);
        let quote = quote(&offers, &order(), &book, "telegram", None).expect("quoted");
        assert_eq!((quote.country.as_str(), quote.price_cents), ("us", 20));
    }
}
