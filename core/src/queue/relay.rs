//! The outbox relay: publishes committed outbox rows and deletes them once confirmed.
//!
//! Rows are taken out in batches under `FOR UPDATE SKIP LOCKED` (deleted, uncommitted),
//! published with publisher confirms outstanding all at once (one confirm at a time would cap
//! us near 2,000 msg/s), and the deletion is committed once every confirm is in. If anything
//! fails the transaction rolls back and the rows are published again later: a message may
//! arrive twice, never not at all, and every consumer is idempotent.
//!
//! The starts of webhook deliveries in one batch go out together, as one message
//! (`grouping`).
//!
//! Writers in the same process wake the relay through [`OutboxSignal`] right after their
//! commit; rows written by other processes are found by polling.

use lapin::{
    BasicProperties, Channel, Confirmation, Connection, options::BasicPublishOptions,
    types::FieldTable,
};
use sqlx::PgPool;
use std::{sync::Arc, time::Duration};
use tokio::sync::Notify;

use super::{
    BrokerError, DelayTier, QueueName, TRACE_ID_HEADER, Topology, grouping::outgoing_messages,
    open_confirming, topology::long_string, within_reply_timeout,
};
use crate::{
    Shutdown,
    store::{
        StoreError,
        outbox::{self, OutboxRow},
    },
};

/// Wakes the relay when a transaction has committed outbox rows.
#[derive(Clone, Debug, Default)]
pub struct OutboxSignal(Arc<Notify>);

impl OutboxSignal {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn notify(&self) {
        self.0.notify_one();
    }

    async fn notified(&self) {
        self.0.notified().await;
    }
}

/// Why a batch could not be relayed.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

pub struct OutboxRelay {
    pool: PgPool,
    amqp_url: String,
    topology: Topology,
    batch_size: i64,
    poll_interval: Duration,
    signal: OutboxSignal,
}

/// A channel in confirm mode, with the connection that owns it.
struct ConfirmingChannel {
    _connection: Connection,
    channel: Channel,
}

impl OutboxRelay {
    pub fn new(
        pool: PgPool,
        amqp_url: impl Into<String>,
        topology: Topology,
        batch_size: i64,
        poll_interval: Duration,
        signal: OutboxSignal,
    ) -> Self {
        Self {
            pool,
            amqp_url: amqp_url.into(),
            topology,
            batch_size,
            poll_interval,
            signal,
        }
    }

    /// Runs until shutdown, reconnecting to RabbitMQ and PostgreSQL as needed.
    pub async fn run(self, shutdown: Shutdown) {
        let mut publisher: Option<ConfirmingChannel> = None;
        let mut failures: u32 = 0;
        while !shutdown.is_triggered() {
            let result = self.relay_batch(&mut publisher).await;
            let wait = match result {
                Ok(published) => {
                    if failures > 0 {
                        tracing::info!("outbox relay recovered");
                    }
                    failures = 0;
                    if published as i64 >= self.batch_size {
                        // More may be waiting; go again at once.
                        continue;
                    }
                    self.poll_interval
                }
                Err(error) => {
                    failures += 1;
                    publisher = None;
                    if failures == 1 || failures.is_multiple_of(30) {
                        tracing::warn!(%error, failures, "outbox relay cannot publish; will retry");
                    }
                    Duration::from_millis(200 * u64::from(failures.min(10)))
                }
            };
            tokio::select! {
                _ = shutdown.wait() => {}
                _ = self.signal.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
        // A last pass so rows committed during shutdown go out now rather than at next start.
        let _ = self.relay_batch(&mut publisher).await;
    }

    /// Publishes every unsent row now, then returns how many (the sweeper uses it when the
    /// regular relays are not keeping up or not running).
    pub async fn drain(&self) -> Result<usize, RelayError> {
        let mut publisher = None;
        let mut total = 0;
        loop {
            let published = self.relay_batch(&mut publisher).await?;
            total += published;
            if published == 0 {
                return Ok(total);
            }
        }
    }

    /// Publishes one batch; returns how many rows were published.
    async fn relay_batch(
        &self,
        publisher: &mut Option<ConfirmingChannel>,
    ) -> Result<usize, RelayError> {
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        // The commit that deletes published rows need not wait for the disk: if a crash
        // loses it, the rows come back and are published again, which consumers already
        // accept (a crash between the broker's confirm and this commit does the same). Half
        // of the pipeline's WAL flushes were these deletes, and every order's commit waited
        // in line behind them.
        sqlx::query("SET LOCAL synchronous_commit = off")
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        let rows = outbox::take_unsent(&mut tx, self.batch_size).await?;
        if rows.is_empty() {
            tx.rollback().await.map_err(StoreError::from)?;
            return Ok(0);
        }
        if publisher.is_none() {
            *publisher = Some(self.open_channel().await?);
        }
        let Some(channel) = publisher.as_ref().map(|p| &p.channel) else {
            return Ok(0);
        };
        within_reply_timeout(publish_all(channel, &self.topology, &rows)).await?;
        tx.commit().await.map_err(StoreError::from)?;
        metrics::counter!("namaskah_outbox_published_total").increment(rows.len() as u64);
        Ok(rows.len())
    }

    async fn open_channel(&self) -> Result<ConfirmingChannel, BrokerError> {
        let (connection, channel) =
            open_confirming(&self.amqp_url, "outbox-relay", &self.topology).await?;
        Ok(ConfirmingChannel {
            _connection: connection,
            channel,
        })
    }
}

/// Publishes every row (webhook delivery starts grouped, see `grouping`), then waits for all
/// their confirms.
async fn publish_all(
    channel: &Channel,
    topology: &Topology,
    rows: &[OutboxRow],
) -> Result<(), BrokerError> {
    let messages = outgoing_messages(rows);
    let mut confirms = Vec::with_capacity(messages.len());
    for message in &messages {
        let Some(queue) = QueueName::parse(&message.queue) else {
            // Only our own code writes outbox rows, so this is a bug: log it loudly and move on
            // rather than block every message behind it.
            tracing::error!(row = message.first_row, queue = %message.queue, "outbox row names an unknown queue; dropping it");
            continue;
        };
        let body = serde_json::to_vec(&message.payload).unwrap_or_default();
        let delay = u64::try_from(message.delay_ms).unwrap_or(0);
        let mut headers = FieldTable::default();
        if let Some(trace_id) = message.payload.get("trace_id").and_then(|id| id.as_str()) {
            headers.insert(TRACE_ID_HEADER.into(), long_string(trace_id));
        }
        let confirm = publish(
            channel,
            topology,
            queue,
            &body,
            Duration::from_millis(delay),
            headers,
        )
        .await?;
        confirms.push(confirm);
    }
    for confirm in confirms {
        expect_ack(confirm.await.map_err(BrokerError::Channel)?)?;
    }
    Ok(())
}

/// Publishes a persistent, mandatory message to its queue, through a delay tier when a delay
/// is asked for. Returns the pending confirm.
pub(crate) async fn publish(
    channel: &Channel,
    topology: &Topology,
    queue: QueueName,
    body: &[u8],
    delay: Duration,
    headers: FieldTable,
) -> Result<lapin::PublisherConfirm, BrokerError> {
    let exchange = match DelayTier::for_delay(delay) {
        Some(tier) => topology.delay_name(tier),
        None => topology.exchange(),
    };
    let properties = BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
        .with_headers(headers);
    // The dashboard's publish rates without the management API come from this counter.
    metrics::counter!("namaskah_messages_published_total", "queue" => queue.as_str()).increment(1);
    channel
        .basic_publish(
            exchange.into(),
            queue.as_str().into(),
            // Mandatory: a message no queue would take comes back instead of vanishing.
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            body,
            properties,
        )
        .await
        .map_err(BrokerError::Channel)
}

/// Turns a confirm into success only when the broker took and routed the message.
pub(crate) fn expect_ack(confirmation: Confirmation) -> Result<(), BrokerError> {
    match confirmation {
        Confirmation::Ack(None) => Ok(()),
        Confirmation::Ack(Some(returned)) => Err(BrokerError::NotConfirmed(format!(
            "unroutable ({}); is the topology declared?",
            returned.reply_text
        ))),
        Confirmation::Nack(_) => Err(BrokerError::NotConfirmed("nacked by the broker".to_owned())),
        Confirmation::NotRequested => Err(BrokerError::NotConfirmed(
            "the channel is not in confirm mode".to_owned(),
        )),
    }
}
