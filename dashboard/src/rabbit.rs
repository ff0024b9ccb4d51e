//! RabbitMQ as the dashboard sees it: queue statistics (from the management API when it
//! answers, otherwise from passive declares), and the parked messages operators act on.

use lapin::{
    BasicProperties, Channel,
    options::{BasicAckOptions, BasicGetOptions, BasicPublishOptions, QueuePurgeOptions},
    types::{AMQPValue, FieldTable},
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::time::Duration;

use namaskah_core::{
    Config,
    queue::{
        self, BrokerError, Envelope, QueueName, TRACE_ID_HEADER, Topology, within_reply_timeout,
    },
};

/// One work queue.
#[derive(Clone, Debug, Default, Serialize)]
pub struct QueueStats {
    pub name: String,
    pub ready: u64,
    /// Known only through the management API.
    pub unacked: Option<u64>,
    pub consumers: u64,
    pub publish_rate: Option<f64>,
    pub ack_rate: Option<f64>,
    pub parked: u64,
}

/// The queues, and where the numbers came from.
pub async fn queue_stats(
    config: &Config,
    http: &reqwest::Client,
) -> Result<(Vec<QueueStats>, &'static str), BrokerError> {
    if let Some(stats) = from_management_api(config, http).await {
        return Ok((stats, "management API"));
    }
    Ok((
        from_passive_declares(config).await?,
        "AMQP passive declares",
    ))
}

#[derive(Deserialize)]
struct ApiQueue {
    name: String,
    #[serde(default)]
    messages_ready: u64,
    #[serde(default)]
    messages_unacknowledged: u64,
    #[serde(default)]
    consumers: u64,
    #[serde(default)]
    message_stats: Option<ApiStats>,
}

#[derive(Deserialize)]
struct ApiStats {
    publish_details: Option<Rate>,
    ack_details: Option<Rate>,
}

#[derive(Deserialize)]
struct Rate {
    rate: f64,
}

async fn from_management_api(config: &Config, http: &reqwest::Client) -> Option<Vec<QueueStats>> {
    let base = reqwest::Url::parse(&config.dashboard.rabbitmq_management_url).ok()?;
    let vhost = reqwest::Url::parse(&config.amqp_url.replacen("amqp", "http", 1))
        .ok()
        .map(|url| url.path().trim_start_matches('/').to_owned())
        .filter(|path| !path.is_empty())
        .unwrap_or_else(|| "%2f".to_owned());
    let mut url = base.join(&format!("api/queues/{vhost}")).ok()?;
    let (user, password) = (url.username().to_owned(), url.password().map(str::to_owned));
    let _ = url.set_username("");
    let _ = url.set_password(None);
    let response = http
        .get(url)
        .basic_auth(user, password)
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?
        .error_for_status()
        .ok()?;
    let queues: Vec<ApiQueue> = response.json().await.ok()?;
    let topology = Topology::from_config(config);
    let find = |name: &str| queues.iter().find(|q| q.name == name);
    Some(
        QueueName::ALL
            .iter()
            .map(|queue| {
                let work = find(&topology.queue(*queue));
                let parked = find(&topology.parking_queue(*queue));
                let stats = work.and_then(|w| w.message_stats.as_ref());
                QueueStats {
                    name: queue.as_str().to_owned(),
                    ready: work.map_or(0, |w| w.messages_ready),
                    unacked: work.map(|w| w.messages_unacknowledged),
                    consumers: work.map_or(0, |w| w.consumers),
                    publish_rate: stats
                        .and_then(|s| s.publish_details.as_ref())
                        .map(|r| r.rate),
                    ack_rate: stats.and_then(|s| s.ack_details.as_ref()).map(|r| r.rate),
                    parked: parked.map_or(0, |p| p.messages_ready + p.messages_unacknowledged),
                }
            })
            .collect(),
    )
}

async fn from_passive_declares(config: &Config) -> Result<Vec<QueueStats>, BrokerError> {
    let topology = Topology::from_config(config);
    let stats = queue::sample_depths(&config.amqp_url, "dashboard", &topology)
        .await?
        .into_iter()
        .map(|depth| QueueStats {
            name: depth.queue.as_str().to_owned(),
            ready: u64::from(depth.ready),
            consumers: u64::from(depth.consumers),
            parked: u64::from(depth.parked),
            ..QueueStats::default()
        })
        .collect();
    Ok(stats)
}

/// A parked message, as shown to operators.
#[derive(Clone, Debug, Serialize)]
pub struct Parked {
    /// Identifies the message for "requeue this one": a hash of its body and parking time.
    pub id: String,
    pub body: String,
    pub reason: String,
    pub error: String,
    pub attempts: String,
    pub first_seen: String,
    pub parked_at: String,
}

/// At most this many parked messages are shown (and requeued one by one).
const PEEK_LIMIT: usize = 200;

fn header_text(headers: Option<&FieldTable>, name: &str) -> String {
    match headers.and_then(|h| h.inner().get(name)) {
        Some(AMQPValue::LongString(s)) => s.to_string(),
        Some(AMQPValue::LongLongInt(n)) => n.to_string(),
        Some(AMQPValue::LongInt(n)) => n.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn message_id(body: &[u8], parked_at: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(body);
    hasher.update(parked_at.as_bytes());
    hex::encode(&hasher.finalize()[..8])
}

/// Reads the parked messages of `queue` without removing them: they are taken unacked and
/// go back to the queue when the channel closes.
pub async fn peek(config: &Config, queue: QueueName) -> Result<Vec<Parked>, BrokerError> {
    let topology = Topology::from_config(config);
    let connection = queue::connect(&config.amqp_url, "dashboard-parked").await?;
    let channel = within_reply_timeout(async {
        connection
            .create_channel()
            .await
            .map_err(BrokerError::Channel)
    })
    .await?;
    let mut parked = Vec::new();
    while parked.len() < PEEK_LIMIT {
        let Some(message) = within_reply_timeout(take_parked(&channel, &topology, queue)).await?
        else {
            break;
        };
        let delivery = message.delivery;
        let headers = delivery.properties.headers().as_ref();
        let parked_at = header_text(headers, "x-parked-at");
        parked.push(Parked {
            id: message_id(&delivery.data, &parked_at),
            body: String::from_utf8_lossy(&delivery.data)
                .chars()
                .take(500)
                .collect(),
            reason: header_text(headers, "x-park-reason"),
            error: header_text(headers, "x-error"),
            attempts: header_text(headers, "x-attempts"),
            first_seen: header_text(headers, "x-first-seen"),
            parked_at,
        });
    }
    queue::close_within_timeout(&connection).await;
    Ok(parked)
}

/// The next parked message of `queue`, unacked: it goes back when the channel closes unless
/// it is acked.
async fn take_parked(
    channel: &Channel,
    topology: &Topology,
    queue: QueueName,
) -> Result<Option<lapin::message::BasicGetMessage>, BrokerError> {
    channel
        .basic_get(
            topology.parking_queue(queue).into(),
            BasicGetOptions { no_ack: false },
        )
        .await
        .map_err(BrokerError::Channel)
}

/// Sends parked messages back to their queue (one, by id, or all), each with a fresh retry
/// budget. Returns how many were requeued.
pub async fn requeue(
    config: &Config,
    queue: QueueName,
    only: Option<&str>,
) -> Result<u64, BrokerError> {
    let topology = Topology::from_config(config);
    let (connection, channel) =
        queue::open_confirming(&config.amqp_url, "dashboard-requeue", &topology).await?;
    let mut requeued = 0;
    let mut examined = 0;
    while examined < PEEK_LIMIT * 50 {
        let Some(message) = within_reply_timeout(take_parked(&channel, &topology, queue)).await?
        else {
            break;
        };
        examined += 1;
        let delivery = message.delivery;
        let parked_at = header_text(delivery.properties.headers().as_ref(), "x-parked-at");
        if only.is_some_and(|id| id != message_id(&delivery.data, &parked_at)) {
            continue; // not this one: it goes back when the channel closes
        }
        within_reply_timeout(async {
            republish(&channel, &topology, queue, &delivery.data).await?;
            delivery
                .acker
                .ack(BasicAckOptions::default())
                .await
                .map_err(BrokerError::Channel)
        })
        .await?;
        requeued += 1;
        if only.is_some() {
            break;
        }
    }
    queue::close_within_timeout(&connection).await;
    Ok(requeued)
}

async fn republish(
    channel: &Channel,
    topology: &Topology,
    queue: QueueName,
    body: &[u8],
) -> Result<(), BrokerError> {
    // A message that parses gets a fresh retry budget; one that does not goes back as it is
    // (and will be parked again, unless the worker was fixed to read it).
    let mut headers = FieldTable::default();
    let body = match Envelope::parse(body) {
        Ok(envelope) => {
            headers.insert(
                TRACE_ID_HEADER.into(),
                AMQPValue::LongString(envelope.trace_id.as_str().into()),
            );
            Envelope {
                attempt: 1,
                ..envelope
            }
            .to_bytes()
        }
        Err(_) => body.to_vec(),
    };
    let confirm = channel
        .basic_publish(
            topology.exchange().into(),
            queue.as_str().into(),
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            &body,
            BasicProperties::default()
                .with_delivery_mode(2)
                .with_headers(headers),
        )
        .await
        .map_err(BrokerError::Channel)?
        .await
        .map_err(BrokerError::Channel)?;
    if confirm.is_ack() && confirm.take_message().is_none() {
        Ok(())
    } else {
        Err(BrokerError::NotConfirmed(
            "requeue refused by the broker".to_owned(),
        ))
    }
}

/// Deletes every parked message of `queue`; returns how many.
pub async fn purge(config: &Config, queue: QueueName) -> Result<u64, BrokerError> {
    let topology = Topology::from_config(config);
    let purged =
        queue::on_a_channel_of_its_own(&config.amqp_url, "dashboard-purge", async |channel| {
            channel
                .queue_purge(
                    topology.parking_queue(queue).into(),
                    QueuePurgeOptions::default(),
                )
                .await
        })
        .await?;
    Ok(u64::from(purged))
}
