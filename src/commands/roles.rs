//! `up`, `api`, `worker`, `simulator`: long-running roles.

use anyhow::Result;
use std::{process::ExitCode, sync::Arc};

use namaskah::{
    pipeline::{self, Roles},
    prerequisites,
};
use namaskah_core::{Config, Shutdown, store};
use namaskah_workers::WorkerKind;

pub async fn up(mut config: Config) -> Result<ExitCode> {
    // The local demo delivers webhooks to sinks on this machine unless told otherwise.
    if std::env::var_os("WEBHOOK_ALLOW_PRIVATE_NETWORKS").is_none() {
        config.webhooks.allow_private_networks = true;
        println!(
            "webhooks: private and loopback addresses allowed for the local demo (WEBHOOK_ALLOW_PRIVATE_NETWORKS=false refuses them)"
        );
    }
    if std::env::var_os("WEBHOOK_ALLOW_HTTP").is_none() {
        config.webhooks.allow_http = true;
        println!(
            "webhooks: plain http:// endpoints allowed for the local demo (WEBHOOK_ALLOW_HTTP=false refuses them)"
        );
    }
    let roles = Roles {
        simulator: config.provider("simulator").is_some(),
        ..Roles::everything()
    };
    run(config, roles, true).await
}

pub async fn api(config: Config) -> Result<ExitCode> {
    let roles = Roles {
        api: true,
        relay: true,
        ..Roles::default()
    };
    run(config, roles, false).await
}

pub async fn worker(config: Config, kind: WorkerKind) -> Result<ExitCode> {
    let roles = Roles {
        relay: true,
        workers: vec![kind],
        ..Roles::default()
    };
    run(config, roles, false).await
}

pub async fn dashboard(config: Config) -> Result<ExitCode> {
    let roles = Roles {
        dashboard: true,
        ..Roles::default()
    };
    run(config, roles, true).await
}

pub async fn scheduler(config: Config) -> Result<ExitCode> {
    let roles = Roles {
        relay: true,
        scheduler: true,
        ..Roles::default()
    };
    run(config, roles, false).await
}

pub async fn simulator(config: Config) -> Result<ExitCode> {
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();
    let listener = namaskah_api::bind(config.simulator_addr).await?;
    let api_key = config
        .provider("simulator")
        .map(|p| p.api_key.expose().to_owned())
        .unwrap_or_else(|| namaskah_core::config::DEFAULT_SIMULATOR_KEY.to_owned());
    println!(
        "provider simulator on http://{}  (5SIM API under /v1, control under /_sim)",
        config.simulator_addr
    );
    let sim = namaskah_load_tests::simulator::Simulator::new(api_key, Default::default());
    namaskah_load_tests::simulator::serve(sim, listener, shutdown).await;
    Ok(ExitCode::SUCCESS)
}

async fn run(config: Config, roles: Roles, announce: bool) -> Result<ExitCode> {
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();
    if let Err(missing) = prerequisites::wait_for_all(&config, config.startup_wait, &shutdown).await
    {
        return Ok(prerequisites::report(&missing));
    }
    let workers = roles.workers.clone();
    let running = pipeline::start(Arc::new(config), roles.clone(), shutdown).await?;
    if announce {
        println!("Namaskah is up:");
        if let Some(address) = running.api_addr {
            println!("  API              http://{address}   (try: curl http://{address}/healthz)");
        }
        if let Some(address) = running.app_addr {
            println!("  customer web app http://{address}   (sign up at /sign-up)");
        }
        if let Some(address) = running.dashboard_addr {
            println!("  dashboard        http://{address}");
        }
        if let Some(address) = running.metrics_addr {
            println!("  metrics          http://{address}/metrics");
        }
        if let Some(address) = running.simulator_addr {
            println!(
                "  provider sim     http://{address}   (5SIM API under /v1, control under /_sim)"
            );
        }
        if !workers.is_empty() {
            let names: Vec<String> = workers.iter().map(ToString::to_string).collect();
            println!("  workers          {}", names.join(", "));
        }
        if roles.relay {
            println!("  outbox relay     running");
        }
        if roles.scheduler {
            println!("  scheduler        running (leads unless another instance does)");
        }
        print_first_steps(&running).await;
        println!("Press Ctrl-C to stop.");
    }
    running.wait().await;
    Ok(ExitCode::SUCCESS)
}

/// On an installation with no account or no administrator yet, what a person does next.
async fn print_first_steps(running: &pipeline::Running) {
    let binary = std::env::args()
        .next()
        .unwrap_or_else(|| "namaskah".to_owned());
    // A failed look-up prints nothing: the hint is a courtesy, not worth an error.
    let no_account = matches!(store::accounts::any_exist(&running.pool).await, Ok(false));
    let no_admin = matches!(store::admins::any_exist(&running.pool).await, Ok(false));
    if !(no_account && running.api_addr.is_some() || no_admin && running.dashboard_addr.is_some()) {
        return;
    }
    println!("First steps (in another terminal):");
    if no_account && let Some(address) = running.api_addr {
        println!(
            "  an account and its API key   {binary} accounts create --email you@example.com --balance-cents 1000"
        );
        println!(
            "  then                         curl -H \"Authorization: Bearer nmk_…\" http://{address}/v1/account"
        );
    }
    if no_admin && running.dashboard_addr.is_some() {
        println!("  a dashboard administrator    {binary} admin create --username you");
    }
}
