//! Before a role starts: are PostgreSQL and RabbitMQ there? If not, say how to get them.

use std::time::Duration;

use namaskah_core::{Config, Shutdown, queue, store};

/// A service a role needs is not reachable.
#[derive(Debug, thiserror::Error)]
pub enum Missing {
    #[error(
        "PostgreSQL is not reachable through DATABASE_URL ({error}).\n  \
         Start it: `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` \
         (Debian), `brew services start postgresql` (macOS) or `docker compose up -d postgres`,\n  \
         or point DATABASE_URL at a running server."
    )]
    Postgres { error: String },
    #[error(
        "RabbitMQ is not reachable through AMQP_URL ({error}).\n  \
         Start it: `rabbitmq-server -detached` (Debian), `brew services start rabbitmq` (macOS) \
         or `docker compose up -d rabbitmq`,\n  or point AMQP_URL at a running broker."
    )]
    RabbitMq { error: String },
}

const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn check_postgres(config: &Config) -> Result<(), Missing> {
    let probe = async {
        // The maintenance database always exists; ours may not yet (it is created at start).
        store::ensure_database_exists(&config.database_url).await
    };
    match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(Missing::Postgres {
            error: error.to_string(),
        }),
        Err(_) => Err(Missing::Postgres {
            error: "no answer within 5 s".to_owned(),
        }),
    }
}

pub async fn check_rabbitmq(config: &Config) -> Result<(), Missing> {
    match queue::connect(&config.amqp_url, "prerequisite-check").await {
        Ok(connection) => {
            let _ = connection.close(200, "checked".into()).await;
            Ok(())
        }
        Err(error) => Err(Missing::RabbitMq {
            error: error.to_string(),
        }),
    }
}

/// Both checks, reporting everything that is missing at once.
pub async fn check_all(config: &Config) -> Result<(), Vec<Missing>> {
    let (postgres, rabbitmq) = tokio::join!(check_postgres(config), check_rabbitmq(config));
    let missing: Vec<Missing> = [postgres.err(), rabbitmq.err()]
        .into_iter()
        .flatten()
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing)
    }
}

/// Both checks until they pass, for at most `limit`: what is missing is said at once, then
/// checked again with back-off (1 s doubling to 8 s), so that a role started during an
/// outage comes up when it ends. `Err` with what is still missing when `limit` runs out or
/// `shutdown` is triggered first.
pub async fn wait_for_all(
    config: &Config,
    limit: Duration,
    shutdown: &Shutdown,
) -> Result<(), Vec<Missing>> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut pause = Duration::from_secs(1);
    let mut reported = false;
    loop {
        let missing = match check_all(config).await {
            Ok(()) => {
                if reported {
                    eprintln!("prerequisites: every service is reachable now; starting");
                }
                return Ok(());
            }
            Err(missing) => missing,
        };
        let now = tokio::time::Instant::now();
        if now >= deadline || shutdown.is_triggered() {
            return Err(missing);
        }
        if !reported {
            for problem in &missing {
                eprintln!("missing prerequisite: {problem}");
            }
            eprintln!("waiting up to {} s for it (STARTUP_WAIT)…", limit.as_secs());
            reported = true;
        }
        tokio::select! {
            () = tokio::time::sleep(pause.min(deadline - now)) => {}
            () = shutdown.wait() => return Err(missing),
        }
        pause = (pause * 2).min(Duration::from_secs(8));
    }
}
