//! Exchange and queue names, and their idempotent declaration.
//!
//! ```text
//!                    ┌──────────────> {p}ordering  (quorum) ──x-delivery-limit──> {p}ordering.dead
//! {p}namaskah ──rk──>├──────────────> {p}polling   (quorum)                        {p}polling.dead
//!  (direct)          ├──────────────> {p}refund    (quorum)                        {p}refund.dead
//!     ^              └──────────────> {p}webhooks  (quorum)                        {p}webhooks.dead
//!     │
//!     └── dead-letter after TTL ── {p}namaskah.delay.q.2s (quorum, x-message-ttl) <── fanout exchange
//! ```
//!
//! Routing keys are the logical queue names (`ordering`, …), so a message coming back from a
//! delay tier lands in its own queue. `{p}` is `QUEUE_PREFIX`.
//!
//! The delay tiers are quorum queues that dead-letter **at least once**: an expired message
//! leaves its tier only once the work queue has confirmed it. Dead-lettering out of a classic
//! queue is at-most-once, and chaos runs showed what that costs: a nudge whose delay ran out
//! right after `rabbitmqctl start_app`, before the work queue was back, was dropped, and the
//! verification waited for the sweeper. The tiers before this were classic queues named
//! `{p}namaskah.delay.<tier>`; an upgraded installation leaves them to drain (their messages
//! still dead-letter into the work queues) and deletes them once empty.

use lapin::{
    Channel, ExchangeKind,
    options::{
        ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
        QueueDeleteOptions,
    },
    types::{AMQPValue, FieldTable, LongString},
};
use std::fmt;

use super::DelayTier;

/// Our four work queues.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QueueName {
    Ordering,
    Polling,
    Refund,
    Webhooks,
}

impl QueueName {
    pub const ALL: [QueueName; 4] = [
        QueueName::Ordering,
        QueueName::Polling,
        QueueName::Refund,
        QueueName::Webhooks,
    ];

    /// The logical name: the routing key, and the queue name without prefix.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueName::Ordering => "ordering",
            QueueName::Polling => "polling",
            QueueName::Refund => "refund",
            QueueName::Webhooks => "webhooks",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        QueueName::ALL.into_iter().find(|q| q.as_str() == text)
    }
}

impl fmt::Display for QueueName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The names of one installation's exchanges and queues.
#[derive(Clone, Debug)]
pub struct Topology {
    prefix: String,
    delivery_limit: u32,
}

impl Topology {
    pub fn new(prefix: impl Into<String>, delivery_limit: u32) -> Self {
        Self {
            prefix: prefix.into(),
            delivery_limit,
        }
    }

    pub fn from_config(config: &crate::Config) -> Self {
        Self::new(config.queue_prefix.clone(), config.queue_delivery_limit)
    }

    pub fn exchange(&self) -> String {
        format!("{}namaskah", self.prefix)
    }

    pub fn queue(&self, queue: QueueName) -> String {
        format!("{}{}", self.prefix, queue.as_str())
    }

    /// Where messages that cannot be processed are parked for an operator.
    pub fn parking_queue(&self, queue: QueueName) -> String {
        format!("{}{}.dead", self.prefix, queue.as_str())
    }

    /// The delay tier's exchange and queue share this name.
    pub fn delay_name(&self, tier: DelayTier) -> String {
        format!("{}namaskah.delay.q.{}", self.prefix, tier.label())
    }

    /// Declares everything; safe to run at every start of every role.
    pub async fn declare(&self, channel: &Channel) -> Result<(), lapin::Error> {
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        channel
            .exchange_declare(
                self.exchange().into(),
                ExchangeKind::Direct,
                durable,
                FieldTable::default(),
            )
            .await?;

        for queue in QueueName::ALL {
            let mut parking = FieldTable::default();
            parking.insert("x-queue-type".into(), long_string("quorum"));
            channel
                .queue_declare(
                    self.parking_queue(queue).into(),
                    QueueDeclareOptions::durable(),
                    parking,
                )
                .await?;

            let mut work = FieldTable::default();
            work.insert("x-queue-type".into(), long_string("quorum"));
            // The safety net under the retry policy: a message that keeps killing its
            // worker before it can be acknowledged ends in the parking queue.
            work.insert(
                "x-delivery-limit".into(),
                AMQPValue::LongInt(i32::try_from(self.delivery_limit).unwrap_or(i32::MAX)),
            );
            work.insert("x-dead-letter-exchange".into(), long_string(""));
            work.insert(
                "x-dead-letter-routing-key".into(),
                long_string(&self.parking_queue(queue)),
            );
            channel
                .queue_declare(
                    self.queue(queue).into(),
                    QueueDeclareOptions::durable(),
                    work,
                )
                .await?;
            channel
                .queue_bind(
                    self.queue(queue).into(),
                    self.exchange().into(),
                    queue.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }

        for tier in DelayTier::all() {
            let name = self.delay_name(tier);
            channel
                .exchange_declare(
                    name.clone().into(),
                    ExchangeKind::Fanout,
                    durable,
                    FieldTable::default(),
                )
                .await?;
            let mut args = FieldTable::default();
            args.insert("x-queue-type".into(), long_string("quorum"));
            // At-least-once dead-lettering needs the queue to refuse publishes when full
            // rather than drop its oldest messages; without a length limit it never is.
            args.insert(
                "x-dead-letter-strategy".into(),
                long_string("at-least-once"),
            );
            args.insert("x-overflow".into(), long_string("reject-publish"));
            args.insert(
                "x-message-ttl".into(),
                AMQPValue::LongLongInt(i64::try_from(tier.millis).unwrap_or(i64::MAX)),
            );
            args.insert(
                "x-dead-letter-exchange".into(),
                long_string(&self.exchange()),
            );
            channel
                .queue_declare(name.clone().into(), QueueDeclareOptions::durable(), args)
                .await?;
            channel
                .queue_bind(
                    name.clone().into(),
                    name.into(),
                    "".into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        Ok(())
    }

    /// Ready messages, consumers and parked messages of every work queue, through passive
    /// declares (which need no management plugin and create nothing).
    pub async fn depths(&self, channel: &Channel) -> Result<Vec<QueueDepth>, lapin::Error> {
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        let mut depths = Vec::new();
        for queue in QueueName::ALL {
            let work = channel
                .queue_declare(self.queue(queue).into(), passive, FieldTable::default())
                .await?;
            let parked = channel
                .queue_declare(
                    self.parking_queue(queue).into(),
                    passive,
                    FieldTable::default(),
                )
                .await?;
            depths.push(QueueDepth {
                queue,
                ready: work.message_count(),
                consumers: work.consumer_count(),
                parked: parked.message_count(),
            });
        }
        Ok(depths)
    }

    /// Deletes everything `declare` made. Tests use it to clean up their prefix.
    pub async fn delete(&self, channel: &Channel) -> Result<(), lapin::Error> {
        for queue in QueueName::ALL {
            for name in [self.queue(queue), self.parking_queue(queue)] {
                channel
                    .queue_delete(name.into(), QueueDeleteOptions::default())
                    .await?;
            }
        }
        for tier in DelayTier::all() {
            let name = self.delay_name(tier);
            channel
                .queue_delete(name.clone().into(), QueueDeleteOptions::default())
                .await?;
            channel
                .exchange_delete(name.into(), ExchangeDeleteOptions::default())
                .await?;
        }
        channel
            .exchange_delete(self.exchange().into(), ExchangeDeleteOptions::default())
            .await
    }
}

/// How full one work queue is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueDepth {
    pub queue: QueueName,
    pub ready: u32,
    pub consumers: u32,
    /// Messages in its `.dead` queue.
    pub parked: u32,
}

pub(crate) fn long_string(text: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(text))
}
