//! RabbitMQ: names and topology, messages, the outbox relay and the consumer plumbing.
//!
//! The database is the truth and a message only a nudge: it carries a verification id, an
//! attempt number and a trace id, never state. Every handler therefore re-reads the row and
//! moves it with a conditional update, which makes duplicate deliveries harmless.

mod connection;
mod consumer;
mod delay;
mod group;
mod grouping;
mod hold;
mod message;
mod relay;
mod retry;
mod topology;

pub use connection::{
    BROKER_REPLY_TIMEOUT, BrokerError, BrokerProbe, close_within_timeout, connect,
    on_a_channel_of_its_own, open_confirming, sample_depths, within_reply_timeout,
};
pub use consumer::{
    Attempt, ConsumerOptions, FollowUp, Handled, JobError, JobHandler, run_consumer,
};
pub use delay::DelayTier;
pub use group::member_follow_ups;
pub use message::{
    Envelope, GroupedDelivery, GroupedVerification, Job, MAX_GROUPED_DELIVERIES,
    MAX_GROUPED_ORDERS, MAX_GROUPED_POLLS, MalformedMessage, TRACE_ID_HEADER,
};
pub use relay::{OutboxRelay, OutboxSignal, RelayError};
pub use retry::backoff_delay;
pub use topology::{QueueDepth, QueueName, Topology};
