//! The throw-away database and queues a load run works in, so that it never touches the
//! configured ones and leaves nothing behind.

use namaskah_core::{
    Config,
    queue::{self, Topology},
    store,
};

/// `config` pointed at `<DATABASE_URL>_load` and `<QUEUE_PREFIX>load.`.
pub fn config(mut config: Config) -> Config {
    config.database_url = format!("{}_load", config.database_url.trim_end_matches('/'));
    config.queue_prefix = format!("{}load.", config.queue_prefix);
    // The run's own webhook receiver listens on 127.0.0.1 over plain http.
    config.webhooks.allow_http = true;
    config.webhooks.allow_private_networks = true;
    config
}

/// A fresh database: whatever an earlier run left is dropped first.
pub async fn reset(config: &Config) -> Result<(), store::StoreError> {
    store::drop_database(&config.database_url).await
}

/// Drops the database and deletes the queues and exchanges.
pub async fn clean_up(config: &Config) -> Result<(), store::StoreError> {
    store::drop_database(&config.database_url).await?;
    if let Ok(connection) = queue::connect(&config.amqp_url, "load-cleanup").await
        && let Ok(channel) = connection.create_channel().await
    {
        let _ = Topology::from_config(config).delete(&channel).await;
    }
    Ok(())
}
