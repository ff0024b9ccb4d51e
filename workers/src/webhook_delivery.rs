//! The webhook delivery worker: one attempt per message, per endpoint — or, for the group
//! of first attempts the outbox relay publishes as one message, one attempt per delivery of
//! the group, side by side; what does not finish goes on as a message of its own.
//!
//! 1. At most `WEBHOOK_ENDPOINT_CONCURRENCY` attempts run against one endpoint at a time; a
//!    message for an endpoint that stays busy steps aside for a second instead of holding a
//!    worker slot, so a slow endpoint does not hold up the others.
//! 2. Claim the attempt and load the delivery with its message and endpoint, in one
//!    statement shared with the other messages in hand (`batch::Batcher`). Delivered or given up
//!    already, or a duplicate message → done. A disabled or deleted endpoint → given up
//!    (`recover` re-sends later).
//! 3. POST the payload, signed (Standard Webhooks headers), with a timeout and no redirects;
//!    the SSRF guard refuses private addresses when the connection is made.
//! 4. 2xx → delivered (recorded in a shared statement too). Anything else, a timeout or a
//!    connection error → record the failure and come back after the next delay of the
//!    schedule, or give up after the last. An endpoint whose attempts have all failed for
//!    `WEBHOOK_DISABLE_AFTER` is disabled and its owner's other endpoints get an
//!    `endpoint.disabled` event.
//!
//! The attempt log is written through a pool with `synchronous_commit = off`: losing the last
//! few entries in a database crash at worst repeats a delivery, which at-least-once delivery
//! (and the stable `webhook-id`) already allows. The same pool plans no sequential scans, so
//! that a young table's generic plans cannot scan every delivery (`store::bookkeeping_pool`).

use async_trait::async_trait;
use chrono::Utc;
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use namaskah_core::{
    config::RetryPolicy,
    queue::{
        Attempt, Envelope, GroupedDelivery, Handled, Job, JobError, JobHandler, backoff_delay,
        member_follow_ups,
    },
    store::{
        self,
        webhook_deliveries::{
            self, AfterFailure, AttemptClaim, AttemptOutcome, ClaimRequest, DeliveredAttempt,
            DeliveryJob,
        },
        webhook_messages::attempt_lease,
    },
    webhooks::{
        signing::signature_header,
        ssrf::{GuardedResolver, UrlPolicy, check_url},
    },
};

use crate::{WorkerDeps, batch::Batcher};

/// How much of a response body is kept in the attempt log.
const EXCERPT_BYTES: usize = 1024;
/// How long a message waits for a busy endpoint before it steps aside, and for how long.
const BUSY_ENDPOINT_WAIT: Duration = Duration::from_millis(200);
const BUSY_ENDPOINT_PAUSE: Duration = Duration::from_secs(1);

pub struct WebhookWorker {
    deps: WorkerDeps,
    /// Writes the attempt log without waiting for the disk.
    bookkeeping: sqlx::PgPool,
    http: reqwest::Client,
    policy: UrlPolicy,
    endpoint_slots: Mutex<HashMap<Uuid, Arc<Semaphore>>>,
    claims: Batcher<ClaimRequest, AttemptClaim>,
    successes: Batcher<DeliveredAttempt, ()>,
}

impl WebhookWorker {
    pub fn new(deps: WorkerDeps) -> Result<Self, crate::WorkerSetupError> {
        let settings = &deps.config.webhooks;
        let policy = UrlPolicy {
            allow_http: settings.allow_http,
            allow_private_networks: settings.allow_private_networks,
        };
        namaskah_core::telemetry::install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            // No cap on idle connections per host: the pool is keyed by host, and many
            // endpoints can share one (a customer's several endpoints, a webhook relay
            // service), so a cap of one endpoint's concurrency closed a connection after
            // almost every attempt and opened a new one for the next. The idle connections
            // can never outnumber the attempts that ran at once, and close after 90 s.
            .user_agent(concat!("Namaskah-Webhooks/", env!("CARGO_PKG_VERSION")));
        if !policy.allow_private_networks {
            builder = builder.dns_resolver(GuardedResolver);
        }
        let connections = u32::from(deps.config.worker_prefetch).clamp(2, 32);
        let bookkeeping = store::bookkeeping_pool(&deps.config.database_url, connections)?;
        let batch = crate::batch::limit(&deps.config);
        let lease = attempt_lease(settings.timeout);
        let claims = Batcher::spawn("webhook_claims", batch, {
            let pool = bookkeeping.clone();
            move |requests: Vec<ClaimRequest>| {
                let pool = pool.clone();
                async move { webhook_deliveries::claim_attempts(&pool, &requests, lease).await }
            }
        });
        let successes = Batcher::spawn("webhook_successes", batch, {
            let pool = bookkeeping.clone();
            move |delivered: Vec<DeliveredAttempt>| {
                let pool = pool.clone();
                async move {
                    let answers = vec![(); delivered.len()];
                    webhook_deliveries::record_successes(&pool, &delivered).await?;
                    Ok(answers)
                }
            }
        });
        Ok(Self {
            bookkeeping,
            claims,
            successes,
            http: builder.build()?,
            policy,
            endpoint_slots: Mutex::new(HashMap::new()),
            deps,
        })
    }

    /// A slot for one more concurrent attempt against the endpoint, if one frees up soon.
    async fn endpoint_slot(&self, endpoint: Uuid) -> Option<OwnedSemaphorePermit> {
        let semaphore = {
            let mut slots = self.endpoint_slots.lock().ok()?;
            let concurrency = self.deps.config.webhooks.endpoint_concurrency;
            Arc::clone(
                slots
                    .entry(endpoint)
                    .or_insert_with(|| Arc::new(Semaphore::new(concurrency))),
            )
        };
        tokio::time::timeout(BUSY_ENDPOINT_WAIT, semaphore.acquire_owned())
            .await
            .ok()?
            .ok()
    }

    /// Step 4: one signed POST.
    async fn attempt(&self, job: &DeliveryJob, attempt: u32) -> AttemptOutcome {
        let started = Instant::now();
        let failed =
            |error: String, status_code: Option<u16>, excerpt: Option<String>| AttemptOutcome {
                attempt,
                succeeded: false,
                status_code,
                latency: started.elapsed(),
                response_excerpt: excerpt,
                error: Some(error),
            };
        let url = match check_url(&job.endpoint.url, self.policy) {
            Ok(url) => url,
            Err(refused) => return failed(format!("refused: {refused}"), None, None),
        };
        let body = serde_json::to_vec(&job.payload).unwrap_or_default();
        let now = Utc::now();
        let secrets = job.endpoint.signing_secrets(now);
        let secret_refs: Vec<_> = secrets.iter().collect();
        let timestamp = now.timestamp();
        let signature = signature_header(&secret_refs, &job.message_id, timestamp, &body);
        let sent = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &job.message_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .header("namaskah-trace-id", &job.trace_id)
            .body(body)
            .send()
            .await;
        match sent {
            Ok(mut response) => {
                let status = response.status();
                let excerpt = read_excerpt(&mut response).await;
                if status.is_success() {
                    AttemptOutcome {
                        attempt,
                        succeeded: true,
                        status_code: Some(status.as_u16()),
                        latency: started.elapsed(),
                        response_excerpt: excerpt,
                        error: None,
                    }
                } else {
                    failed(format!("HTTP {status}"), Some(status.as_u16()), excerpt)
                }
            }
            Err(error) => failed(describe(&error), None, None),
        }
    }

    /// The delay before the next attempt after attempt `n` failed; `None` after the last.
    fn next_delay(&self, attempt: u32) -> Option<Duration> {
        let delays = &self.deps.config.webhooks.retry_delays;
        let delay = *delays.get(usize::try_from(attempt).ok()?.checked_sub(1)?)?;
        // The schedule's delay, spread by the configured jitter.
        let jittered = RetryPolicy {
            max_attempts: 1,
            base_delay: delay,
            max_delay: delay,
            jitter: self.deps.config.retry.webhooks.jitter,
        };
        Some(backoff_delay(&jittered, 1))
    }
}

/// The first bytes of a response, without reading a large body to its end.
async fn read_excerpt(response: &mut reqwest::Response) -> Option<String> {
    let mut excerpt = Vec::new();
    while excerpt.len() < EXCERPT_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => excerpt.extend_from_slice(&chunk),
            _ => break,
        }
    }
    excerpt.truncate(EXCERPT_BYTES);
    (!excerpt.is_empty()).then(|| String::from_utf8_lossy(&excerpt).into_owned())
}

/// A transport error with its causes (the SSRF guard's refusal is one), without the URL.
fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        causes.push(cause.to_string());
        source = cause.source();
    }
    if causes.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {}", causes.join(": "))
    }
}

#[async_trait]
impl JobHandler for WebhookWorker {
    async fn handle(&self, envelope: &Envelope, attempt: Attempt) -> Result<Handled, JobError> {
        match &envelope.job {
            Job::DeliverWebhook {
                delivery_id,
                endpoint_id,
            } => {
                self.deliver(envelope, *delivery_id, *endpoint_id, attempt)
                    .await
            }
            Job::DeliverWebhooks { deliveries } => Ok(self.deliver_group(deliveries).await),
            other => Err(JobError::Permanent(format!(
                "the webhooks queue does not take {other:?}"
            ))),
        }
    }
}

impl WebhookWorker {
    /// The first attempts of a group, side by side (their claims and successes share
    /// statements through the batchers). A delivery that does not finish here goes on as a
    /// message of its own, as the consumer would have sent it on alone
    /// (`queue::member_follow_ups`).
    async fn deliver_group(&self, deliveries: &[GroupedDelivery]) -> Handled {
        let retry = &self.deps.config.retry.webhooks;
        let first_attempt = Attempt {
            number: 1,
            max: retry.max_attempts,
        };
        let attempts = deliveries.iter().map(|delivery| async move {
            let alone = delivery.alone();
            let handled = self
                .deliver(
                    &alone,
                    delivery.delivery_id,
                    delivery.endpoint_id,
                    first_attempt,
                )
                .await;
            member_follow_ups(alone, first_attempt, retry, handled)
        });
        let follow_ups = futures_util::future::join_all(attempts)
            .await
            .into_iter()
            .flatten()
            .collect();
        Handled::FollowUps(follow_ups)
    }

    /// One attempt of one delivery, steps 1–4.
    async fn deliver(
        &self,
        envelope: &Envelope,
        delivery_id: Uuid,
        endpoint_id: Uuid,
        attempt: Attempt,
    ) -> Result<Handled, JobError> {
        // 1. A slot at the endpoint.
        let Some(_slot) = self.endpoint_slot(endpoint_id).await else {
            return Ok(Handled::Again {
                after: BUSY_ENDPOINT_PAUSE,
                next: envelope.clone(),
            });
        };

        // 2. Claim and load.
        let claim = ClaimRequest {
            delivery_id,
            attempt: attempt.number,
        };
        let job = match self.claims.call(claim).await? {
            AttemptClaim::Claimed(job) => job,
            AttemptClaim::Busy { retry_after } => {
                return Ok(Handled::Again {
                    after: retry_after,
                    next: envelope.clone(),
                });
            }
            AttemptClaim::NotNeeded => return Ok(Handled::Done),
            AttemptClaim::EndpointGone => {
                webhook_deliveries::give_up(&self.bookkeeping, delivery_id).await?;
                return Ok(Handled::Done);
            }
            AttemptClaim::Missing => {
                return Err(JobError::Permanent("no such delivery".to_owned()));
            }
        };

        // 3. Send.
        let outcome = self.attempt(&job, attempt.number).await;

        let outcome_label = if outcome.succeeded {
            "delivered"
        } else {
            "failed"
        };
        metrics::counter!("namaskah_webhook_attempts_total", "outcome" => outcome_label)
            .increment(1);
        metrics::histogram!("namaskah_webhook_attempt_duration_seconds")
            .record(outcome.latency.as_secs_f64());
        if outcome.succeeded {
            let since_commit = (Utc::now() - job.message_created_at)
                .to_std()
                .unwrap_or_default();
            metrics::histogram!("namaskah_webhook_delivery_seconds")
                .record(since_commit.as_secs_f64());
        }

        // 4. Record, and decide what comes next.
        if outcome.succeeded {
            let latency = outcome.latency;
            self.successes
                .call(DeliveredAttempt {
                    delivery_id: job.delivery_id,
                    endpoint_id: job.endpoint.id,
                    outcome,
                })
                .await?;
            tracing::debug!(endpoint = %job.endpoint.id, ?latency, "webhook delivered");
            return Ok(Handled::Done);
        }
        let next_delay = self.next_delay(attempt.number);
        let after_failure = next_delay.map_or(AfterFailure::GiveUp, AfterFailure::RetryIn);
        let recorded = webhook_deliveries::record_attempt(
            &self.bookkeeping,
            &job,
            &outcome,
            after_failure,
            self.deps.config.webhooks.disable_after,
        )
        .await?;
        if recorded.endpoint_disabled {
            self.deps.outbox.notify();
            tracing::warn!(endpoint = %job.endpoint.id, "endpoint disabled after failing too long");
        }
        tracing::info!(
            endpoint = %job.endpoint.id,
            error = outcome.error.as_deref().unwrap_or_default(),
            retry_in = ?next_delay,
            "webhook attempt failed"
        );
        Ok(match next_delay {
            Some(after) if !recorded.endpoint_disabled => Handled::Again {
                after,
                next: envelope.next_attempt(),
            },
            _ => Handled::Done,
        })
    }
}
