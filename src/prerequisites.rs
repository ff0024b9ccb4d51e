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
    /// Reached, but refused for what no retry changes: a certificate that does not verify
    /// against the CA and host name configured, TLS settings that cannot work, a server that
    /// refuses plain text. Never a fall back to plain text.
    #[error("{variable}: {reason}")]
    Refused {
        variable: &'static str,
        reason: String,
    },
}

impl Missing {
    /// Waiting will not bring it: the configuration must change (exit code 2).
    pub fn is_permanent(&self) -> bool {
        matches!(self, Missing::Refused { .. })
    }
}

/// Says what is missing, one problem a line, and the exit code for it: 2 when the
/// configuration must change (as for a bad variable), 3 when a service is absent.
pub fn report(missing: &[Missing]) -> std::process::ExitCode {
    for problem in missing {
        if problem.is_permanent() {
            eprintln!("cannot start: {problem}");
        } else {
            eprintln!("missing prerequisite: {problem}");
        }
    }
    let permanent = missing.iter().any(Missing::is_permanent);
    std::process::ExitCode::from(if permanent { 2 } else { 3 })
}

const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn check_postgres(config: &Config) -> Result<(), Missing> {
    let probe = async {
        // The maintenance database always exists; ours may not yet (it is created at start).
        store::ensure_database_exists(&config.database_url).await
    };
    match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) if error.is_refusal() => Err(Missing::Refused {
            variable: "DATABASE_URL",
            reason: format!("PostgreSQL refuses the connection: {error}"),
        }),
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
        Err(error) if error.is_permanent() => Err(Missing::Refused {
            variable: "AMQP_URL",
            reason: error.to_string(),
        }),
        Err(error) => Err(Missing::RabbitMq {
            error: error.to_string(),
        }),
    }
}

/// Redis is optional (rate limits fall back to each process when it does not answer), but a
/// `rediss://` whose certificate does not verify is a configuration to fix, not an outage.
pub async fn check_redis(config: &Config) -> Result<(), Missing> {
    let Some(url) = &config.redis_url else {
        return Ok(());
    };
    match namaskah_api::rate_limit::ping(url, &config.redis_tls, PROBE_TIMEOUT).await {
        Err(error) if namaskah_api::rate_limit::is_certificate_refusal(&error) => {
            Err(Missing::Refused {
                variable: "REDIS_URL",
                reason: format!(
                    "Redis's certificate does not verify against REDIS_CA_FILE and the host: {error}"
                ),
            })
        }
        Err(error) => {
            eprintln!(
                "Redis does not answer through REDIS_URL ({error}); rate limits stay in each process until it does"
            );
            Ok(())
        }
        Ok(()) => Ok(()),
    }
}

/// Every check, reporting everything that is missing at once.
pub async fn check_all(config: &Config) -> Result<(), Vec<Missing>> {
    let (postgres, rabbitmq, redis) = tokio::join!(
        check_postgres(config),
        check_rabbitmq(config),
        check_redis(config)
    );
    let missing: Vec<Missing> = [postgres.err(), rabbitmq.err(), redis.err()]
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
        if now >= deadline || shutdown.is_triggered() || missing.iter().any(Missing::is_permanent) {
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
