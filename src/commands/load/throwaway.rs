//! The throw-away database and queues a load run works in, so that it never touches the
//! configured ones and leaves nothing behind.

use namaskah_core::{
    Config,
    queue::{self, Topology},
    store,
};

/// `config` pointed at `<DATABASE_URL>_load` and `<QUEUE_PREFIX>load.`.
pub fn config(mut config: Config) -> Config {
    config.database_url = store::sibling_database_url(&config.database_url, "_load");
    config.queue_prefix = format!("{}load.", config.queue_prefix);
    // The run's own webhook receiver listens on 127.0.0.1 over plain http.
    config.webhooks.allow_http = true;
    config.webhooks.allow_private_networks = true;
    config
}

/// A fresh start: whatever an interrupted earlier run left, its database and the messages
/// in its queues, is removed first, so that this run sees only its own work.
pub async fn reset(config: &Config) -> Result<(), store::StoreError> {
    clean_up(config).await
}

/// Drops the database and deletes the queues and exchanges.
pub async fn clean_up(config: &Config) -> Result<(), store::StoreError> {
    store::drop_database(&config.database_url).await?;
    let topology = Topology::from_config(config);
    let deleted =
        queue::on_a_channel_of_its_own(&config.amqp_url, "load-cleanup", async |channel| {
            topology.delete(channel).await
        })
        .await;
    if let Err(error) = deleted {
        tracing::warn!(%error, "could not delete the load run's queues");
    }
    Ok(())
}
