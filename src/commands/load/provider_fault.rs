//! The provider fault of a load run: a second simulator (`5sim`, after the first in the
//! failover order) sells the same catalogue, and the first one hangs for a while — it
//! answers nothing within any timeout — then, if the plan says so, recovers. What the
//! pipeline must do: open the first provider's breaker and sell from the second at nearly
//! full speed, then close the breaker again once a probe finds the first answering.

use anyhow::Result;
use chrono::{DateTime, Utc};
use std::{
    fmt,
    net::SocketAddr,
    str::FromStr,
    sync::Arc,
    time::{Duration, Instant},
};

use namaskah_core::{
    Shutdown,
    config::{ProviderProtocol, ProviderSettings, Secret},
};
use namaskah_load_tests::simulator::{self, Behaviour, Simulator};

use super::report::{Check, Sales};

/// The second provider's name: one the role processes' configuration knows (`PROVIDERS`).
pub const SECOND_PROVIDER: &str = "5sim";
/// The provider that hangs: the first in the failover order.
const FIRST_PROVIDER: &str = "simulator";

/// Far past any provider timeout: to its callers the provider hangs.
const HANG_LATENCY: Duration = Duration::from_secs(120);

/// When the first provider hangs, counted from the first submission.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hang {
    pub from: Duration,
    /// `None`: it never recovers during the run.
    pub until: Option<Duration>,
}

impl FromStr for Hang {
    type Err = String;

    /// `FROM:UNTIL` or `FROM:`, in seconds.
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let expected = || format!("FROM:UNTIL or FROM: in seconds, like 5:20 or 0:, got {value:?}");
        let (from, until) = value.split_once(':').ok_or_else(expected)?;
        let seconds = |text: &str| {
            text.trim()
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s >= 0.0 && *s <= 86_400.0)
                .map(Duration::from_secs_f64)
        };
        let from = seconds(from).ok_or_else(expected)?;
        let until = match until.trim() {
            "" => None,
            text => Some(
                seconds(text)
                    .filter(|until| *until > from)
                    .ok_or_else(expected)?,
            ),
        };
        Ok(Self { from, until })
    }
}

impl fmt::Display for Hang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.until {
            Some(until) => write!(
                f,
                "the first provider hangs from {:.1} s to {:.1} s",
                self.from.as_secs_f64(),
                until.as_secs_f64()
            ),
            None => write!(
                f,
                "the first provider hangs from {:.1} s on",
                self.from.as_secs_f64()
            ),
        }
    }
}

/// The second simulator, serving until `shutdown`.
pub struct SecondProvider {
    pub address: SocketAddr,
}

impl SecondProvider {
    pub async fn start(api_key: &str, behaviour: Behaviour, shutdown: Shutdown) -> Result<Self> {
        let simulator = Simulator::new(api_key, behaviour);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        tokio::spawn(simulator::serve(simulator, listener, shutdown));
        Ok(Self { address })
    }

    pub fn settings(&self, api_key: &str) -> ProviderSettings {
        ProviderSettings {
            name: SECOND_PROVIDER.to_owned(),
            protocol: ProviderProtocol::FiveSim,
            base_url: format!("http://{}/v1", self.address),
            api_key: Secret::new(api_key),
            username: None,
        }
    }

    /// What a role process needs to reach it.
    pub fn env(&self, api_key: &str) -> Vec<(&'static str, String)> {
        vec![
            ("FIVESIM_BASE_URL", format!("http://{}/v1", self.address)),
            ("FIVESIM_API_KEY", api_key.to_owned()),
        ]
    }

    /// The second provider sells what the first does, at the same prices.
    pub async fn copy_catalogue(pool: &sqlx::PgPool) -> Result<()> {
        sqlx::query(
            "INSERT INTO services (service, country, provider, provider_product, provider_country,
                                   price_cents, sms_timeout_secs, enabled)
             SELECT service, country, $1, provider_product, provider_country,
                    price_cents, sms_timeout_secs, enabled
             FROM services WHERE provider = $2
             ON CONFLICT (service, country, provider) DO UPDATE
                 SET provider_product = EXCLUDED.provider_product,
                     provider_country = EXCLUDED.provider_country,
                     price_cents = EXCLUDED.price_cents,
                     sms_timeout_secs = EXCLUDED.sms_timeout_secs,
                     enabled = EXCLUDED.enabled",
        )
        .bind(SECOND_PROVIDER)
        .bind(FIRST_PROVIDER)
        .execute(pool)
        .await?;
        Ok(())
    }
}

/// Hangs `first` as `hang` says, counting from now (the first submission), and restores
/// its behaviour when the hang ends: what was done, each at the time it began.
pub async fn hang(first: Arc<Simulator>, hang: Hang) -> Vec<(Instant, String)> {
    let started = Instant::now();
    tokio::time::sleep(hang.from).await;
    let healthy = first.behaviour();
    first.set_behaviour(Behaviour {
        latency_ms: u64::try_from(HANG_LATENCY.as_millis()).unwrap_or(u64::MAX),
        ..healthy.clone()
    });
    let hung_at = Instant::now();
    let Some(until) = hang.until else {
        return vec![(
            hung_at,
            format!(
                "provider {FIRST_PROVIDER} hangs (answers after {} s) for the rest of the run",
                HANG_LATENCY.as_secs()
            ),
        )];
    };
    tokio::time::sleep(until.saturating_sub(started.elapsed())).await;
    first.set_behaviour(healthy);
    vec![(
        hung_at,
        format!(
            "provider {FIRST_PROVIDER} hung (answers after {} s) for {:.1} s, then answered again",
            HANG_LATENCY.as_secs(),
            hung_at.elapsed().as_secs_f64()
        ),
    )]
}

/// The numbers each provider sold in each part of the run, and the check that the first
/// provider took orders again once it recovered (its breaker closed).
pub async fn sales(
    pool: &sqlx::PgPool,
    first_submission: DateTime<Utc>,
    hang: Option<Hang>,
) -> Result<(Vec<Sales>, Option<Check>)> {
    let at = |offset: Duration| -> Result<DateTime<Utc>> {
        Ok(first_submission + chrono::Duration::from_std(offset)?)
    };
    let from = hang.map(|hang| at(hang.from)).transpose()?;
    let until = hang.and_then(|hang| hang.until).map(at).transpose()?;
    let sales: Vec<(String, i64, i64, i64)> = sqlx::query_as(
        "SELECT provider,
                count(*) FILTER (WHERE $1::timestamptz IS NULL OR number_assigned_at < $1),
                count(*) FILTER (WHERE number_assigned_at >= $1
                                   AND ($2::timestamptz IS NULL OR number_assigned_at < $2)),
                count(*) FILTER (WHERE number_assigned_at >= $2)
         FROM verifications WHERE number_assigned_at IS NOT NULL
         GROUP BY provider ORDER BY provider",
    )
    .bind(from)
    .bind(until)
    .fetch_all(pool)
    .await?;
    let sales: Vec<Sales> = sales
        .into_iter()
        .map(|(provider, before, during, after)| Sales {
            provider,
            before: before.unsigned_abs(),
            during: during.unsigned_abs(),
            after: after.unsigned_abs(),
        })
        .collect();
    let check = until.map(|_| {
        let sold_after = sales
            .iter()
            .find(|sales| sales.provider == FIRST_PROVIDER)
            .map_or(0, |sales| sales.after);
        let broken = if sold_after > 0 {
            Vec::new()
        } else {
            vec![format!(
                "{FIRST_PROVIDER} sold no number after it recovered: {sales:?}"
            )]
        };
        Check::new("hung_provider_sells_again_after_recovery", broken)
    });
    Ok((sales, check))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hangs_are_read_in_seconds_with_an_open_end() {
        assert_eq!(
            "5:20".parse::<Hang>(),
            Ok(Hang {
                from: Duration::from_secs(5),
                until: Some(Duration::from_secs(20)),
            })
        );
        assert_eq!(
            "0:".parse::<Hang>(),
            Ok(Hang {
                from: Duration::ZERO,
                until: None,
            })
        );
        for bad in ["", "5", "20:5", "5:5", "-1:", "x:3", "1:inf"] {
            assert!(bad.parse::<Hang>().is_err(), "{bad}");
        }
    }
}
