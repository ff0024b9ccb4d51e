//! Per-API-key rate limits by the account's tier: GCRA, in Redis when `REDIS_URL` is set
//! (so every API replica enforces one shared limit), in this process's memory otherwise.
//!
//! If Redis stops answering, requests are limited in memory until it is back: a replica
//! then enforces the limit on its own share of the traffic, which is better than refusing
//! every request or letting every request through.

use governor::{
    Quota, RateLimiter as Governor, clock::Clock, middleware::StateInformationMiddleware,
    state::keyed::DefaultKeyedStateStore,
};
use std::{
    collections::HashMap,
    num::NonZeroU32,
    sync::{Arc, Mutex},
    time::Duration,
};
use uuid::Uuid;

use namaskah_core::{config::tls::RedisTls, store::tiers::TierPlan};

/// What the limiter decided for one request; also the `RateLimit-*` headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The burst: requests a fresh key may make at once.
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the key is back to its full burst.
    pub reset_secs: u64,
    /// When refused: seconds until one more request would be let through.
    pub retry_after_secs: u64,
}

type KeyedLimiter = Governor<
    Uuid,
    DefaultKeyedStateStore<Uuid>,
    governor::clock::DefaultClock,
    StateInformationMiddleware,
>;

pub struct RateLimiter {
    redis: Option<redis::aio::ConnectionManager>,
    /// One limiter per (rate, burst): tiers differ, and a tier's plan may change.
    local: Mutex<HashMap<(u32, u32), Arc<KeyedLimiter>>>,
}

/// GCRA over one Redis key holding the theoretical arrival time (ms). Redis's own clock is
/// used so replicas with skewed clocks still agree.
/// Returns {allowed, remaining, reset_ms, retry_after_ms}.
const GCRA: &str = r"
local now_parts = redis.call('TIME')
local now = now_parts[1] * 1000 + math.floor(now_parts[2] / 1000)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tolerance = interval * burst
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - tolerance
if allow_at > now then
  return {0, 0, tat - now, allow_at - now}
end
redis.call('SET', KEYS[1], new_tat, 'PX', new_tat - now + 1000)
return {1, math.floor((tolerance - (new_tat - now)) / interval), new_tat - now, 0}
";

/// A client for `url`, trusting `tls`'s CA rather than the system's roots when it names one.
pub fn redis_client(url: &str, tls: &RedisTls) -> Result<redis::Client, redis::RedisError> {
    if *tls == RedisTls::default() {
        return redis::Client::open(url);
    }
    redis::Client::build_with_tls(
        url,
        redis::TlsCertificates {
            client_tls: tls.client.clone().map(|(client_cert, client_key)| {
                redis::ClientTlsConfig {
                    client_cert,
                    client_key,
                }
            }),
            root_cert: tls.ca.clone(),
        },
    )
}

/// One `PING` to Redis at `url`, within `timeout`.
pub async fn ping(url: &str, tls: &RedisTls, timeout: Duration) -> Result<(), redis::RedisError> {
    let client = redis_client(url, tls)?;
    let answer = tokio::time::timeout(timeout, async {
        let mut connection = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
    })
    .await;
    match answer {
        Ok(result) => result.map(|_| ()),
        Err(_) => Err(redis::RedisError::from((
            redis::ErrorKind::Io,
            "no answer in time",
        ))),
    }
}

/// Whether `error` is the server's certificate failing verification: the same verdict as
/// for PostgreSQL and RabbitMQ, on the I/O error under it (redis does not type it further).
pub fn is_certificate_refusal(error: &redis::RedisError) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = cause {
        if let Some(io) = current.downcast_ref::<std::io::Error>()
            && namaskah_core::config::tls::is_certificate_refusal(io)
        {
            return true;
        }
        cause = current.source();
    }
    error.to_string().contains("invalid peer certificate")
}

impl RateLimiter {
    /// `redis_url`: share limits through Redis (over TLS for `rediss://`, with `tls`'s CA
    /// and client certificate); `None`: limit in memory.
    pub fn new(redis_url: Option<&str>, tls: &RedisTls) -> Result<Self, redis::RedisError> {
        let redis = match redis_url {
            Some(url) => {
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(Duration::from_millis(500)))
                    .set_response_timeout(Some(Duration::from_millis(250)))
                    .set_number_of_retries(1);
                Some(redis::aio::ConnectionManager::new_lazy_with_config(
                    redis_client(url, tls)?,
                    config,
                )?)
            }
            None => None,
        };
        Ok(Self {
            redis,
            local: Mutex::new(HashMap::new()),
        })
    }

    /// Counts one request of `key` against its tier's plan.
    pub async fn check(&self, key: Uuid, plan: &TierPlan) -> Decision {
        let rate = positive(plan.requests_per_second);
        let burst = positive(plan.burst);
        if let Some(redis) = &self.redis {
            match shared_check(redis.clone(), key, rate, burst).await {
                Ok(decision) => return decision,
                Err(error) => {
                    metrics::counter!("namaskah_rate_limit_fallbacks_total").increment(1);
                    tracing::warn!(%error, "Redis does not answer; rate limiting in memory");
                }
            }
        }
        self.local_check(key, rate, burst)
    }

    fn local_check(&self, key: Uuid, rate: NonZeroU32, burst: NonZeroU32) -> Decision {
        let limiter = {
            let Ok(mut limiters) = self.local.lock() else {
                // A poisoned lock means a panic elsewhere mid-insert; let the request through
                // rather than fail every request from now on.
                return Decision::unlimited(burst.get());
            };
            Arc::clone(
                limiters
                    .entry((rate.get(), burst.get()))
                    .or_insert_with(|| {
                        Arc::new(
                            Governor::keyed(Quota::per_second(rate).allow_burst(burst))
                                .with_middleware(),
                        )
                    }),
            )
        };
        let per_request = 1.0 / f64::from(rate.get());
        match limiter.check_key(&key) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                Decision {
                    allowed: true,
                    limit: burst.get(),
                    remaining,
                    reset_secs: (f64::from(burst.get() - remaining.min(burst.get())) * per_request)
                        .ceil() as u64,
                    retry_after_secs: 0,
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(limiter.clock().now());
                Decision {
                    allowed: false,
                    limit: burst.get(),
                    remaining: 0,
                    reset_secs: (f64::from(burst.get()) * per_request).ceil() as u64,
                    retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
                }
            }
        }
    }

    /// Forgets keys that are back to their full burst, so memory follows active keys only.
    pub fn forget_idle_keys(&self) {
        if let Ok(limiters) = self.local.lock() {
            for limiter in limiters.values() {
                limiter.retain_recent();
            }
        }
    }
}

impl Decision {
    fn unlimited(limit: u32) -> Self {
        Decision {
            allowed: true,
            limit,
            remaining: limit,
            reset_secs: 0,
            retry_after_secs: 0,
        }
    }
}

async fn shared_check(
    mut redis: redis::aio::ConnectionManager,
    key: Uuid,
    rate: NonZeroU32,
    burst: NonZeroU32,
) -> Result<Decision, redis::RedisError> {
    let interval_ms = (1000.0 / f64::from(rate.get())).max(1.0).round() as u64;
    let (allowed, remaining, reset_ms, retry_ms): (i64, i64, i64, i64) = redis::Script::new(GCRA)
        .key(format!("namaskah:ratelimit:{key}"))
        .arg(interval_ms)
        .arg(burst.get())
        .invoke_async(&mut redis)
        .await?;
    let seconds = |ms: i64| u64::try_from(ms).unwrap_or(0).div_ceil(1000);
    Ok(Decision {
        allowed: allowed == 1,
        limit: burst.get(),
        remaining: u32::try_from(remaining).unwrap_or(0),
        reset_secs: seconds(reset_ms),
        retry_after_secs: seconds(retry_ms).max(u64::from(allowed == 0)),
    })
}

fn positive(value: i32) -> NonZeroU32 {
    NonZeroU32::new(u32::try_from(value).unwrap_or(1)).unwrap_or(NonZeroU32::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use namaskah_core::domain::Tier;

    fn plan(rate: i32, burst: i32) -> TierPlan {
        TierPlan {
            tier: Tier::Free,
            requests_per_second: rate,
            burst,
            price_multiplier_pct: 100,
            max_open_verifications: 1,
            max_batch_items: 1,
        }
    }

    #[tokio::test]
    async fn a_key_gets_its_burst_then_is_refused_with_a_retry_time() {
        let limiter = RateLimiter::new(None, &RedisTls::default()).expect("memory limiter");
        let key = Uuid::now_v7();
        let plan = plan(1, 3);
        let decisions: Vec<Decision> = [(); 4]
            .iter()
            .map(|_| limiter.local_check(key, positive(1), positive(3)))
            .collect();
        assert_eq!(
            decisions.iter().map(|d| d.remaining).collect::<Vec<_>>(),
            [2, 1, 0, 0]
        );
        assert!(decisions[..3].iter().all(|d| d.allowed));
        let refused = decisions[3];
        assert!(!refused.allowed);
        assert_eq!((refused.limit, refused.retry_after_secs), (3, 1));
        // Another key has its own budget.
        assert!(limiter.check(Uuid::now_v7(), &plan).await.allowed);
    }
}
