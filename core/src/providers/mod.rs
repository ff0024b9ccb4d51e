//! SMS providers: who sells us numbers.
//!
//! [`Provider`] is what the workers see; [`five_sim`] and [`text_verified`] speak the real
//! providers' APIs (and the simulator speaks 5SIM's). [`Providers`] holds them in failover
//! order, as `PROVIDERS` lists them.

pub mod breaker;
pub mod five_sim;
pub mod guarded;
pub mod instrumented;
pub mod text_verified;

use async_trait::async_trait;
use std::{sync::Arc, time::Duration};

use crate::config::{Config, ProviderProtocol, ProviderSettings};

/// A number a provider sold us.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PurchasedNumber {
    pub order_id: String,
    pub phone_number: String,
}

/// Where a provider order stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OrderState {
    /// Still waiting for the SMS.
    Waiting,
    /// The SMS arrived.
    Received { code: String, text: String },
    /// The provider cancelled the order.
    Cancelled,
    /// The provider's own timer ran out.
    TimedOut,
    /// The number was banned by the service it was meant for.
    Banned,
    /// Finished (after an SMS), on our request or the provider's.
    Finished,
}

/// What went wrong with a provider. `is_retryable` splits them: a retry may help with an
/// unreachable provider, never with a refused request.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProviderError {
    #[error("no numbers in stock")]
    OutOfStock,
    /// Network error, timeout, 5xx or rate limit.
    #[error("provider unavailable: {0}")]
    Unavailable(String),
    /// Bad key, no balance at the provider, unknown product or country.
    #[error("provider refused the request: {0}")]
    Rejected(String),
    #[error("the provider does not know this order")]
    OrderNotFound,
    /// Cancelling is refused because the SMS has already arrived.
    #[error("the order already has an SMS")]
    OrderHasSms,
    /// The answer did not have the documented shape.
    #[error("unexpected response from the provider: {0}")]
    BadResponse(String),
    /// The provider refused for now: too many requests. Not a failure of the provider (its
    /// breaker does not count it); it is asked nothing more until `retry_after` has passed.
    #[error("rate limited by the provider{}", .retry_after.map(|after| format!(" (retry after {} s)", after.as_secs())).unwrap_or_default())]
    RateLimited { retry_after: Option<Duration> },
    /// Not asked: its circuit breaker is open (it failed repeatedly and is not yet probed).
    #[error("{0} skipped: its circuit breaker is open")]
    CircuitOpen(String),
    /// Not asked: as many calls as it may have are already waiting on it.
    #[error("{0} skipped: too many calls in flight")]
    Busy(String),
    #[error("no time left for the call before its deadline")]
    OutOfTime,
}

impl ProviderError {
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ProviderError::Unavailable(_)
                | ProviderError::BadResponse(_)
                | ProviderError::RateLimited { .. }
                | ProviderError::CircuitOpen(_)
                | ProviderError::Busy(_)
                | ProviderError::OutOfTime
        )
    }
}

/// Runs one provider call, cut short at `deadline`: a call must not outlast what it is made
/// for (the verification's SMS deadline, the ordering claim's lease). A call is not even
/// started once the deadline has passed. The provider's breaker learns nothing from a call
/// cut short this way.
pub async fn before<T>(
    deadline: tokio::time::Instant,
    call: impl std::future::Future<Output = Result<T, ProviderError>>,
) -> Result<T, ProviderError> {
    if tokio::time::Instant::now() >= deadline {
        return Err(ProviderError::OutOfTime);
    }
    tokio::time::timeout_at(deadline, call)
        .await
        .unwrap_or(Err(ProviderError::OutOfTime))
}

/// One upstream provider.
#[async_trait]
pub trait Provider: Send + Sync {
    /// The name in `PROVIDERS` and in the catalogue.
    fn name(&self) -> &str;

    /// Buys a number for `product` in `country`, both in the provider's own naming.
    async fn buy(&self, product: &str, country: &str) -> Result<PurchasedNumber, ProviderError>;

    async fn check(&self, order_id: &str) -> Result<OrderState, ProviderError>;

    /// Gives the number back; the provider refunds us.
    async fn cancel(&self, order_id: &str) -> Result<(), ProviderError>;

    /// Tells the provider we are done with the number after its SMS arrived.
    async fn finish(&self, order_id: &str) -> Result<(), ProviderError>;
}

/// The HTTP client for the providers could not be built (no TLS roots, say).
/// How long one call to a provider may take (`PROVIDER_CONNECT_TIMEOUT`, `PROVIDER_TIMEOUT`,
/// `PROVIDER_TIMEOUTS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallTimeouts {
    /// To open the connection: a provider that cannot be reached is known quickly.
    pub connect: Duration,
    /// For the whole call, connection included.
    pub response: Duration,
}

impl CallTimeouts {
    /// How long a call to `provider` may take to connect and to be answered
    /// (`PROVIDER_TIMEOUTS`, else `PROVIDER_TIMEOUT`; connecting never longer than that).
    pub fn of(config: &Config, provider: &str) -> Self {
        let response = config
            .provider_timeouts
            .iter()
            .find(|(name, _)| name == provider)
            .map_or(config.provider_timeout, |(_, timeout)| *timeout);
        Self {
            connect: config.provider_connect_timeout.min(response),
            response,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot build the providers' HTTP client: {0}")]
pub struct ClientSetupError(#[from] reqwest::Error);

/// The configured providers, in failover order.
/// What to buy from one provider.
pub struct Purchase<'a> {
    pub provider: &'a str,
    pub product: &'a str,
    pub country: &'a str,
}

#[derive(Clone)]
pub struct Providers {
    /// In failover order.
    guarded: Vec<Arc<guarded::Guarded>>,
    /// The same providers, as the workers call them.
    ordered: Vec<Arc<dyn Provider>>,
}

impl Providers {
    fn new(guarded: Vec<Arc<guarded::Guarded>>) -> Self {
        let ordered = guarded
            .iter()
            .map(|provider| Arc::clone(provider) as Arc<dyn Provider>)
            .collect();
        Self { guarded, ordered }
    }

    /// Buys from whichever of `wanted` first has a turn (a free slot within its rate),
    /// waiting up to each one's slot wait: what ordering does once every provider it could
    /// go to was busy, so that it waits on the one that frees first and never on a hung
    /// one alone. The answer names the purchase (its index in `wanted`) that was made.
    pub async fn buy_from_first_free(
        &self,
        wanted: &[Purchase<'_>],
    ) -> Result<(usize, PurchasedNumber), ProviderError> {
        let turns: Vec<_> = wanted
            .iter()
            .enumerate()
            .filter_map(|(index, purchase)| {
                let provider = self
                    .guarded
                    .iter()
                    .find(|p| p.name() == purchase.provider)?;
                Some(Box::pin(async move {
                    let turn = provider.turn(true).await?;
                    Ok::<_, ProviderError>((index, provider, turn))
                }))
            })
            .collect();
        if turns.is_empty() {
            return Err(ProviderError::Rejected(
                "none of these providers is configured".to_owned(),
            ));
        }
        // The turns not taken are dropped unused, which gives their permits and slots back.
        let ((index, provider, turn), _not_taken) = futures_util::future::select_ok(turns).await?;
        let purchase = &wanted[index];
        let number = provider
            .buy_in_turn(turn, purchase.product, purchase.country)
            .await?;
        Ok((index, number))
    }

    /// The configured providers, each counting its calls into `stats` behind its circuit
    /// breaker and bulkhead (shared by every worker of this process).
    pub fn from_config(
        config: &Config,
        stats: &instrumented::CallStats,
    ) -> Result<Self, ClientSetupError> {
        let ordered = config
            .providers
            .iter()
            .map(|settings| {
                let timeouts = CallTimeouts::of(config, &settings.name);
                let provider = build(settings, timeouts)?;
                let counted = Arc::new(instrumented::Instrumented::new(provider, stats.clone()));
                let rate = config
                    .provider_rate_limits
                    .iter()
                    .find(|(name, _)| *name == settings.name)
                    .map(|(_, rate)| *rate);
                Ok(Arc::new(guarded::Guarded::new(
                    counted,
                    guarded::GuardSettings {
                        slot_wait: timeouts.response,
                        ..config.provider_guard
                    },
                    rate,
                )))
            })
            .collect::<Result<Vec<_>, ClientSetupError>>()?;
        Ok(Self::new(ordered))
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Provider>> {
        self.ordered.iter().find(|p| p.name() == name)
    }

    pub fn names(&self) -> Vec<String> {
        self.ordered.iter().map(|p| p.name().to_owned()).collect()
    }
}

fn build(
    settings: &ProviderSettings,
    timeouts: CallTimeouts,
) -> Result<Arc<dyn Provider>, reqwest::Error> {
    Ok(match settings.protocol {
        ProviderProtocol::FiveSim => Arc::new(five_sim::FiveSim::new(settings, timeouts)?),
        ProviderProtocol::TextVerified => {
            Arc::new(text_verified::TextVerified::new(settings, timeouts)?)
        }
    })
}

/// The HTTP client every provider uses: bounded time, no redirects (an API that redirects
/// is misconfigured, and following would resend our key elsewhere).
pub(crate) fn http_client(timeouts: CallTimeouts) -> Result<reqwest::Client, reqwest::Error> {
    crate::telemetry::install_crypto_provider();
    reqwest::Client::builder()
        .timeout(timeouts.response)
        .connect_timeout(timeouts.connect)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("namaskah/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Maps a transport failure to the retryable error.
pub(crate) fn transport_error(error: reqwest::Error) -> ProviderError {
    // Without the URL: it may carry a key in its query string.
    ProviderError::Unavailable(error.without_url().to_string())
}

/// A `429`'s `Retry-After` in seconds (the HTTP-date form is not used by providers we know).
pub(crate) fn rate_limited(headers: &reqwest::header::HeaderMap) -> ProviderError {
    let retry_after = headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    ProviderError::RateLimited { retry_after }
}

/// The first `max` characters of a response body, for error messages.
pub(crate) fn excerpt(body: &str, max: usize) -> String {
    let trimmed = body.trim();
    let mut text: String = trimmed.chars().take(max).collect();
    if trimmed.chars().count() > max {
        text.push('…');
    }
    text
}

/// Pulls a verification code out of an SMS text: the first run of 4 to 8 digits, allowing
/// one space or dash inside (`123-456`). `None` when there is none.
pub fn extract_code(text: &str) -> Option<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_digit() {
            let mut digits = String::new();
            let mut j = i;
            while j < chars.len() {
                if chars[j].is_ascii_digit() {
                    digits.push(chars[j]);
                    j += 1;
                } else if (chars[j] == '-' || chars[j] == ' ')
                    && j + 1 < chars.len()
                    && chars[j + 1].is_ascii_digit()
                    && !digits.is_empty()
                    && digits.len() < 8
                {
                    j += 1;
                } else {
                    break;
                }
            }
            if (4..=8).contains(&digits.len()) {
                return Some(digits);
            }
            i = j.max(i + 1);
        } else {
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_found_in_sms_texts() {
        assert_eq!(
            extract_code("Your Telegram code is 12345"),
            Some("12345".into())
        );
        assert_eq!(
            extract_code("G-482913 is your Google verification code."),
            Some("482913".into())
        );
        assert_eq!(extract_code("WhatsApp code 123-456"), Some("123456".into()));
        assert_eq!(extract_code("no code here, only 12"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_is_cut_short_at_its_deadline_and_not_started_after_it() {
        let now = tokio::time::Instant::now();
        let slow = async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Ok::<_, ProviderError>(())
        };
        let cut = before(now + Duration::from_secs(2), slow).await;
        assert_eq!(cut, Err(ProviderError::OutOfTime));
        assert_eq!(tokio::time::Instant::now() - now, Duration::from_secs(2));

        let started = std::sync::atomic::AtomicBool::new(false);
        let late = before(tokio::time::Instant::now(), async {
            started.store(true, std::sync::atomic::Ordering::Relaxed);
            Ok::<_, ProviderError>(())
        })
        .await;
        assert_eq!(late, Err(ProviderError::OutOfTime));
        assert!(!started.load(std::sync::atomic::Ordering::Relaxed));

        let quick = before(
            tokio::time::Instant::now() + Duration::from_secs(2),
            async { Ok::<_, ProviderError>(7) },
        )
        .await;
        assert_eq!(quick, Ok(7));
    }

    #[test]
    fn only_transient_errors_are_retryable() {
        assert!(ProviderError::Unavailable("x".into()).is_retryable());
        assert!(!ProviderError::OutOfStock.is_retryable());
        assert!(!ProviderError::Rejected("bad key".into()).is_retryable());
    }
}
