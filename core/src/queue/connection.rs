//! Connecting to RabbitMQ.

use lapin::{Connection, ConnectionProperties, DefaultConnectionBuilder, uri::AMQPUri};
use std::{
    future::Future,
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};
use tokio::sync::Mutex;

/// What went wrong talking to the broker.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot connect to RabbitMQ: {0}")]
    Connect(#[source] lapin::Error),
    #[error("RabbitMQ did not answer within {0:?}")]
    Timeout(Duration),
    #[error("RabbitMQ channel error: {0}")]
    Channel(#[source] lapin::Error),
    #[error("RabbitMQ refused a message: {0}")]
    NotConfirmed(String),
    #[error("AMQP_URL's TLS settings: {0}")]
    TlsSettings(String),
    #[error("RabbitMQ's certificate does not verify against AMQP_URL's CA and host: {0}")]
    CertificateRefused(#[source] lapin::Error),
}

impl BrokerError {
    /// Whether no retry can help: the TLS settings or the broker's certificate are wrong.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            BrokerError::TlsSettings(_) | BrokerError::CertificateRefused(_)
        )
    }
}

/// Where the next connection of this process tries first: each connection starts one node
/// further, so a process's connections spread over a cluster's nodes, and a reconnect after
/// a node is lost starts elsewhere.
static NEXT_NODE: AtomicUsize = AtomicUsize::new(0);

/// Opens a connection, named after the role so operators can tell them apart in the
/// management UI; over TLS when a URL is `amqps://` (see [`crate::config::tls`]). With
/// several nodes in `url` ([`crate::config::amqp::nodes`]) it tries each in turn and connects to the first
/// that answers; the error is the last node's.
pub async fn connect(url: &str, role: &str) -> Result<Connection, BrokerError> {
    let nodes = crate::config::amqp::nodes(url);
    // Offset by the process id, so that replicas of a role do not all start on one node.
    let first = NEXT_NODE
        .fetch_add(1, Ordering::Relaxed)
        .wrapping_add(std::process::id() as usize);
    let mut last_error = BrokerError::TlsSettings("AMQP_URL names no node".to_owned());
    for offset in 0..nodes.len() {
        let node = nodes[(first + offset) % nodes.len()];
        match connect_to_node(node, role).await {
            Ok(connection) => return Ok(connection),
            // Every node of a cluster shares its settings and its certificate's CA.
            Err(error) if error.is_permanent() => return Err(error),
            Err(error) => last_error = error,
        }
    }
    Err(last_error)
}

/// The heartbeat asked for when `AMQP_URL` names none (`?heartbeat=N` there wins). A
/// connection that goes silent without being closed (a partition, a broker host gone) is
/// given up after two intervals; with the broker's default of 60 s that took two minutes,
/// during which a worker waiting for deliveries did nothing.
pub const DEFAULT_HEARTBEAT_SECS: u16 = 10;

async fn connect_to_node(url: &str, role: &str) -> Result<Connection, BrokerError> {
    const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    let properties =
        ConnectionProperties::default().with_connection_name(format!("namaskah-{role}").into());
    let tls = crate::config::tls::amqp_tls(url).map_err(BrokerError::TlsSettings)?;
    let builder = DefaultConnectionBuilder::new()
        .map_err(BrokerError::Connect)?
        .with_properties(properties)
        .with_tls_config(tls);
    let builder = match url.parse::<AMQPUri>() {
        Ok(mut uri) => {
            uri.query.heartbeat.get_or_insert(DEFAULT_HEARTBEAT_SECS);
            builder.with_uri(uri)
        }
        // lapin parses it again and says what is wrong.
        Err(_) => builder.with_uri_str(url.to_owned()),
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, builder.connect()).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(error)) if is_certificate_refusal(&error) => {
            Err(BrokerError::CertificateRefused(error))
        }
        Ok(Err(error)) => Err(BrokerError::Connect(error)),
        Err(_) => Err(BrokerError::Timeout(CONNECT_TIMEOUT)),
    }
}

/// Whether `error` is the broker's certificate failing verification.
fn is_certificate_refusal(error: &lapin::Error) -> bool {
    match error.kind() {
        lapin::ErrorKind::IOError(io) => crate::config::tls::is_certificate_refusal(io),
        _ => false,
    }
}

/// How long one exchange with the broker (a declare, a publish and its confirm, an ack) may
/// take before the connection is given up for lost. When a connection drops under it, lapin
/// can leave a reply pending for ever (the consumer-recovery test caught acks doing so; see
/// also amqp-rs/lapin#327), and a worker waiting on it would stay alive and do nothing.
pub const BROKER_REPLY_TIMEOUT: Duration = Duration::from_secs(15);

/// `exchange`, or `BrokerError::Timeout` if the broker has not answered within
/// [`BROKER_REPLY_TIMEOUT`].
pub async fn within_reply_timeout<T>(
    exchange: impl Future<Output = Result<T, BrokerError>>,
) -> Result<T, BrokerError> {
    tokio::time::timeout(BROKER_REPLY_TIMEOUT, exchange)
        .await
        .map_err(|_| BrokerError::Timeout(BROKER_REPLY_TIMEOUT))?
}

/// A connection with one channel in publisher-confirm mode, the topology declared on it.
pub async fn open_confirming(
    url: &str,
    role: &str,
    topology: &super::Topology,
) -> Result<(Connection, lapin::Channel), BrokerError> {
    let connection = connect(url, role).await?;
    let channel = within_reply_timeout(async {
        let channel = connection
            .create_channel()
            .await
            .map_err(BrokerError::Channel)?;
        topology
            .declare(&channel)
            .await
            .map_err(BrokerError::Channel)?;
        channel
            .confirm_select(Default::default())
            .await
            .map_err(BrokerError::Channel)?;
        Ok(channel)
    })
    .await?;
    Ok((connection, channel))
}

/// Ready messages, consumers and parked messages of the topology's queues, sampled on a
/// connection of its own (`role` names it).
pub async fn sample_depths(
    url: &str,
    role: &str,
    topology: &super::Topology,
) -> Result<Vec<super::QueueDepth>, BrokerError> {
    on_a_channel_of_its_own(url, role, async |channel| topology.depths(channel).await).await
}

/// Opens a connection of its own (`role` names it), runs `exchange` on one channel within
/// [`BROKER_REPLY_TIMEOUT`], and closes both.
///
/// The channel is closed before its connection, never left to its `Drop`: a dropped channel
/// sends its close later, from lapin's own task, and when the connection's close has begun
/// by then lapin reports the refused close as a connection error, at ERROR, once a minute
/// from the scheduler's queue sampling.
pub async fn on_a_channel_of_its_own<T>(
    url: &str,
    role: &str,
    exchange: impl AsyncFnOnce(&lapin::Channel) -> Result<T, lapin::Error>,
) -> Result<T, BrokerError> {
    let connection = connect(url, role).await?;
    let outcome = within_reply_timeout(async {
        let channel = connection
            .create_channel()
            .await
            .map_err(BrokerError::Channel)?;
        let outcome = exchange(&channel).await.map_err(BrokerError::Channel);
        // A channel the broker has closed already (a failed passive declare) refuses this;
        // the exchange's own error is the one to report.
        let _ = channel.close(200, "done".into()).await;
        outcome
    })
    .await;
    close_within_timeout(&connection).await;
    outcome
}

/// Closes `connection` and its channels, giving up after [`BROKER_REPLY_TIMEOUT`]: a
/// connection already lost may never answer.
pub async fn close_within_timeout(connection: &Connection) {
    let _ = tokio::time::timeout(BROKER_REPLY_TIMEOUT, connection.close(200, "bye".into())).await;
}

/// Answers "is RabbitMQ reachable?" for readiness checks, reusing one connection while it
/// stays up instead of opening one per check.
pub struct BrokerProbe {
    url: String,
    connection: Mutex<Option<Connection>>,
}

impl BrokerProbe {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            connection: Mutex::new(None),
        }
    }

    pub async fn check(&self) -> Result<(), BrokerError> {
        let mut slot = self.connection.lock().await;
        if slot
            .as_ref()
            .is_some_and(|connection| connection.status().connected())
        {
            return Ok(());
        }
        *slot = None;
        let connection = connect(&self.url, "probe").await?;
        *slot = Some(connection);
        Ok(())
    }
}
