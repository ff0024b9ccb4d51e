//! A fresh, isolated pipeline per test: its own database (from the migrations), its own
//! queue prefix on the shared broker, its own provider simulator.

use lapin::{BasicProperties, options::BasicPublishOptions};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use std::{collections::HashMap, sync::Arc, time::Duration};

use namaskah::pipeline::{self, Roles, Running};
use namaskah_core::{
    Config, Shutdown,
    config::{ProviderProtocol, ProviderSettings, Secret},
    domain::{AccountId, ApiKey, Cents, Scope, TenantId, Tier},
    queue::{self, QueueName, Topology},
    store::{self, accounts, api_keys, tenants},
};
use namaskah_load_tests::simulator::{self, Behaviour, Simulator};
use namaskah_workers::WorkerKind;

use super::eventually;

const SIMULATOR_KEY: &str = "test-simulator-key";

pub fn server_url() -> String {
    std::env::var("TEST_DATABASE_SERVER")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

pub fn amqp_url() -> String {
    std::env::var("TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

pub struct TestEnvBuilder {
    roles: Roles,
    overrides: HashMap<String, String>,
    behaviour: Behaviour,
    backup_provider: bool,
    amqp_url: Option<String>,
    database_proxy: Option<std::net::SocketAddr>,
    seeded_tier_limits: bool,
}

impl TestEnvBuilder {
    /// Keep the tiers' rate and open-verification limits as the migration seeds them. By
    /// default tests lift them, so that only the tests about limits meet them.
    pub fn seeded_tier_limits(mut self) -> Self {
        self.seeded_tier_limits = true;
        self
    }

    /// Only the API (and no workers): for tests of what the API itself answers and writes.
    pub fn api_only(self) -> Self {
        self.roles(Roles {
            api: true,
            ..Roles::default()
        })
    }

    /// Only these roles (the default is all of them).
    pub fn roles(mut self, roles: Roles) -> Self {
        self.roles = roles;
        self
    }

    pub fn set(mut self, variable: &str, value: &str) -> Self {
        self.overrides.insert(variable.to_owned(), value.to_owned());
        self
    }

    pub fn behaviour(mut self, behaviour: Behaviour) -> Self {
        self.behaviour = behaviour;
        self
    }

    /// A second simulator, listed after the first in the failover order as `backup`, selling
    /// everything the first sells.
    pub fn with_backup_provider(mut self) -> Self {
        self.backup_provider = true;
        self
    }

    /// Point the pipeline's RabbitMQ connections elsewhere (a cuttable proxy, say).
    pub fn amqp_url(mut self, url: String) -> Self {
        self.amqp_url = Some(url);
        self
    }

    /// Point the pipeline's PostgreSQL connections through a proxy at this address (a
    /// cuttable one, in front of the test server); the test's own pool connects directly.
    pub fn database_through(mut self, proxy: std::net::SocketAddr) -> Self {
        self.database_proxy = Some(proxy);
        self
    }

    pub async fn start(self) -> TestEnv {
        // Logs are captured per test and shown when it fails.
        std::mem::forget(namaskah_core::telemetry::init(
            namaskah_core::config::LogFormat::Text,
            None,
            "test",
        ));
        let id = uuid::Uuid::new_v4().simple().to_string();
        let database_url = format!("{}/namaskah_test_{}", server_url(), &id[..16]);
        let pipeline_database_url = match self.database_proxy {
            Some(proxy) => format!("postgres://postgres@{proxy}/namaskah_test_{}", &id[..16]),
            None => database_url.clone(),
        };
        let prefix = format!("t{}.", &id[..12]);

        let sim = Simulator::new(SIMULATOR_KEY, self.behaviour.clone());
        let sim_addr = spawn_simulator(Arc::clone(&sim)).await;

        let mut values: HashMap<String, String> = [
            ("DATABASE_URL", pipeline_database_url.as_str()),
            ("DATABASE_MAX_CONNECTIONS", "8"),
            ("QUEUE_PREFIX", prefix.as_str()),
            ("API_ADDR", "127.0.0.1:0"),
            ("DASHBOARD_ADDR", "127.0.0.1:0"),
            ("APP_ADDR", "127.0.0.1:0"),
            ("METRICS_ADDR", "127.0.0.1:0"),
            ("SIMULATOR_ADDR", "127.0.0.1:0"),
            ("PROVIDERS", "simulator"),
            ("SIMULATOR_API_KEY", SIMULATOR_KEY),
            ("PROVIDER_TIMEOUT", "5s"),
            ("OUTBOX_POLL_INTERVAL", "50ms"),
            ("POLL_CADENCE", "250ms,500ms,1s"),
            ("ORDERING_LEASE", "3s"),
            ("ORDERING_RETRY", "3,100ms,500ms"),
            ("POLLING_RETRY", "3,100ms,500ms"),
            ("REFUND_RETRY", "5,100ms,1s"),
            ("DEADLINE_GRACE", "5s"),
            // Test sinks listen on 127.0.0.1 over plain http.
            ("WEBHOOK_ALLOW_PRIVATE_NETWORKS", "true"),
            ("WEBHOOK_ALLOW_HTTP", "true"),
            ("WEBHOOK_RETRY_SCHEDULE", "200ms,200ms,200ms"),
            ("WEBHOOK_TIMEOUT", "2s"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        values.insert("SIMULATOR_BASE_URL".into(), format!("http://{sim_addr}/v1"));
        // The 5SIM client is the simulator's client: listing `5sim` points it at the simulator.
        values.insert("FIVESIM_BASE_URL".into(), format!("http://{sim_addr}/v1"));
        values.insert("FIVESIM_API_KEY".into(), SIMULATOR_KEY.into());
        // Top-ups: the simulator stands in for both providers' checkout APIs.
        values.insert("PAYSTACK_SECRET_KEY".into(), PAYSTACK_SECRET.into());
        values.insert(
            "PAYSTACK_BASE_URL".into(),
            format!("http://{sim_addr}/paystack"),
        );
        values.insert("STRIPE_SECRET_KEY".into(), "sk_test_stripe".into());
        values.insert("STRIPE_WEBHOOK_SECRET".into(), STRIPE_WEBHOOK_SECRET.into());
        values.insert(
            "STRIPE_BASE_URL".into(),
            format!("http://{sim_addr}/stripe"),
        );
        values.insert(
            "AMQP_URL".into(),
            self.amqp_url.clone().unwrap_or_else(amqp_url),
        );
        values.extend(self.overrides);
        let mut config = Config::from_map(&values).expect("test configuration is valid");

        let mut backup = None;
        if self.backup_provider {
            let backup_sim = Simulator::new(SIMULATOR_KEY, Behaviour::default());
            let backup_addr = spawn_simulator(Arc::clone(&backup_sim)).await;
            config.providers.push(ProviderSettings {
                name: "backup".to_owned(),
                protocol: ProviderProtocol::FiveSim,
                base_url: format!("http://{backup_addr}/v1"),
                api_key: Secret::new(SIMULATOR_KEY),
                username: None,
            });
            backup = Some(backup_sim);
        }

        let config = Arc::new(config);
        let pool = store::connect(&database_url, 4)
            .await
            .expect("test database");
        if !self.seeded_tier_limits {
            sqlx::query(
                "UPDATE tiers SET requests_per_second = 100000, burst = 100000,
                                  max_open_verifications = 1000000",
            )
            .execute(&pool)
            .await
            .expect("lift tier limits");
        }
        if backup.is_some() {
            sqlx::query(
                "INSERT INTO services (service, country, provider, provider_product, provider_country,
                                       price_cents, sms_timeout_secs, enabled)
                 SELECT service, country, 'backup', provider_product, provider_country,
                        price_cents, sms_timeout_secs, enabled
                 FROM services WHERE provider = 'simulator'",
            )
            .execute(&pool)
            .await
            .expect("backup catalogue");
        }
        // Declared up front, so tests can publish before any role has connected.
        let connection = queue::connect(&amqp_url(), "test-setup")
            .await
            .expect("broker");
        let channel = connection.create_channel().await.expect("channel");
        Topology::from_config(&config)
            .declare(&channel)
            .await
            .expect("topology");
        let _ = connection.close(200, "declared".into()).await;
        let roles = Roles {
            simulator: false,
            ..self.roles
        };
        let running = pipeline::start(Arc::clone(&config), roles, Shutdown::new())
            .await
            .expect("pipeline starts");
        let dashboard = running
            .dashboard_addr
            .map(|a| format!("http://{a}"))
            .unwrap_or_default();
        let api = running
            .api_addr
            .map(|a| format!("http://{a}"))
            .unwrap_or_default();
        let app = running
            .app_addr
            .map(|a| format!("http://{a}"))
            .unwrap_or_default();
        let metrics = running
            .metrics_addr
            .map(|a| format!("http://{a}"))
            .unwrap_or_default();
        TestEnv {
            config,
            pool,
            sim,
            backup,
            api,
            app,
            dashboard,
            metrics,
            http: reqwest::Client::new(),
            running: Some(running),
            database_url,
            prefix,
        }
    }
}

async fn spawn_simulator(sim: Arc<Simulator>) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind simulator");
    let addr = listener.local_addr().expect("simulator address");
    tokio::spawn(simulator::serve(sim, listener, Shutdown::new()));
    addr
}

pub struct TestEnv {
    pub config: Arc<Config>,
    pub pool: PgPool,
    pub sim: Arc<Simulator>,
    pub backup: Option<Arc<Simulator>>,
    /// The API's base URL, `http://127.0.0.1:port`.
    pub api: String,
    /// The customer web app's base URL (it runs with the API).
    pub app: String,
    /// The dashboard's base URL, when the dashboard role runs.
    pub dashboard: String,
    /// The internal metrics listener's base URL (`METRICS_ADDR`).
    pub metrics: String,
    pub http: reqwest::Client,
    running: Option<Running>,
    database_url: String,
    prefix: String,
}

/// A customer account with a key that can read and write.
/// The payment providers' secrets in every test configuration.
pub const PAYSTACK_SECRET: &str = "sk_test_paystack";
pub const STRIPE_WEBHOOK_SECRET: &str = "whsec_test_stripe";

/// A white-label tenant and its administrator.
#[derive(Clone, Debug)]
pub struct Tenant {
    pub id: TenantId,
    pub admin: Account,
}

#[derive(Clone, Debug)]
pub struct Account {
    pub id: AccountId,
    pub key: String,
}

impl TestEnv {
    pub fn builder() -> TestEnvBuilder {
        TestEnvBuilder {
            roles: Roles {
                api: true,
                simulator: false,
                relay: true,
                workers: WorkerKind::ALL.to_vec(),
                scheduler: false,
                dashboard: false,
            },
            overrides: HashMap::new(),
            behaviour: Behaviour {
                sms_delay_ms: 500,
                ..Behaviour::default()
            },
            backup_provider: false,
            amqp_url: None,
            database_proxy: None,
            seeded_tier_limits: false,
        }
    }

    /// [`TestEnvBuilder::api_only`], started.
    pub async fn api_only() -> TestEnv {
        Self::builder().api_only().start().await
    }

    /// Everything running: API, relay, all workers.
    pub async fn start() -> TestEnv {
        Self::builder().start().await
    }

    /// Starts more roles against the same database and queues (a second worker process).
    pub async fn start_roles(&self, roles: Roles) -> Running {
        pipeline::start(Arc::clone(&self.config), roles, Shutdown::new())
            .await
            .expect("extra roles start")
    }

    pub async fn account(&self, balance_cents: i64) -> Account {
        self.account_with_scopes(balance_cents, &[Scope::Read, Scope::Write])
            .await
    }

    pub async fn account_with_scopes(&self, balance_cents: i64, scopes: &[Scope]) -> Account {
        self.account_on_tier(balance_cents, scopes, Tier::Free)
            .await
    }

    pub async fn account_on_tier(
        &self,
        balance_cents: i64,
        scopes: &[Scope],
        tier: Tier,
    ) -> Account {
        self.account_in(TenantId::DEFAULT, balance_cents, scopes, tier)
            .await
    }

    /// A white-label tenant named after `slug`, with one administrator (`tenant_admin` key).
    pub async fn tenant(&self, slug: &str, custom_domain: Option<&str>) -> Tenant {
        let brand = tenants::Brand {
            name: format!("{slug} brand"),
            logo_url: Some(format!("https://{slug}.example/logo.svg")),
            primary_colour: Some("#0b5fff".to_owned()),
            accent_colour: None,
            support_email: Some(format!("help@{slug}.example")),
            custom_domain: custom_domain.map(str::to_owned),
        };
        let mut conn = self.pool.acquire().await.expect("connection");
        let tenant = tenants::create(&mut conn, slug, &brand)
            .await
            .expect("tenant");
        let admin = self
            .account_in(tenant.id, 0, &[Scope::TenantAdmin], Tier::Free)
            .await;
        Tenant {
            id: tenant.id,
            admin,
        }
    }

    /// An account of `tenant` with one key holding `scopes`.
    pub async fn account_in(
        &self,
        tenant: TenantId,
        balance_cents: i64,
        scopes: &[Scope],
        tier: Tier,
    ) -> Account {
        let key = ApiKey::generate();
        let mut tx = self.pool.begin().await.expect("tx");
        let email = format!("{}@example.com", uuid::Uuid::new_v4().simple());
        let account = accounts::create(
            &mut tx,
            tenant,
            &email,
            tier,
            Cents::new(balance_cents).expect("balance"),
        )
        .await
        .expect("account");
        api_keys::insert(&mut tx, account.id, &key, scopes, "test")
            .await
            .expect("key");
        tx.commit().await.expect("commit");
        Account {
            id: account.id,
            key: key.expose().to_owned(),
        }
    }

    pub async fn balance(&self, account: &Account) -> i64 {
        sqlx::query_scalar("SELECT balance_cents FROM accounts WHERE id = $1")
            .bind(account.id)
            .fetch_one(&self.pool)
            .await
            .expect("balance")
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.api));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let text = response.text().await.expect("body");
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    pub async fn get(&self, path: &str, key: &str) -> (StatusCode, Value) {
        self.request(reqwest::Method::GET, path, Some(key), None)
            .await
    }

    pub async fn post(&self, path: &str, key: &str, body: Value) -> (StatusCode, Value) {
        self.request(reqwest::Method::POST, path, Some(key), Some(body))
            .await
    }

    /// Creates a verification and returns its id; panics unless the API answers 201.
    pub async fn create_verification(
        &self,
        account: &Account,
        service: &str,
        country: &str,
    ) -> String {
        let (status, body) = self
            .post(
                "/v1/verifications",
                &account.key,
                json!({ "service": service, "country": country }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().expect("id").to_owned()
    }

    pub async fn verification(&self, account: &Account, id: &str) -> Value {
        let (status, body) = self
            .get(&format!("/v1/verifications/{id}"), &account.key)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// Waits until the verification has `status`.
    pub async fn wait_for_status(
        &self,
        account: &Account,
        id: &str,
        status: &str,
        timeout: Duration,
    ) -> Value {
        eventually(
            timeout,
            &format!("verification {id} to be {status}"),
            || async {
                let body = self.verification(account, id).await;
                (body["status"] == status).then_some(body)
            },
        )
        .await
    }

    /// One column of a verification row, straight from the database.
    pub async fn column<T>(&self, id: &str, column: &str) -> T
    where
        T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send + Unpin,
    {
        let query = format!("SELECT {column} FROM verifications WHERE id = $1::uuid");
        sqlx::query_scalar(sqlx::AssertSqlSafe(query))
            .bind(id)
            .fetch_one(&self.pool)
            .await
            .unwrap_or_else(|e| panic!("column {column} of {id}: {e}"))
    }

    /// The simulator's order id of a verification with a number.
    pub async fn provider_order_id(&self, id: &str) -> i64 {
        let order: Option<String> = self.column(id, "provider_order_id").await;
        order
            .and_then(|o| o.parse().ok())
            .expect("numeric order id")
    }

    /// Publishes a raw body to one of our queues, as a duplicate or a malformed message.
    pub async fn publish_raw(&self, queue: QueueName, body: &[u8]) {
        let connection = queue::connect(&amqp_url(), "test").await.expect("connect");
        let channel = connection.create_channel().await.expect("channel");
        channel
            .confirm_select(Default::default())
            .await
            .expect("confirms");
        let topology = Topology::from_config(&self.config);
        channel
            .basic_publish(
                topology.exchange().into(),
                queue.as_str().into(),
                BasicPublishOptions::default(),
                body,
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .expect("publish")
            .await
            .expect("confirm");
        let _ = connection.close(200, "done".into()).await;
    }

    /// Drops every message waiting in one of our queues (a lost message, for the sweeper).
    pub async fn purge(&self, queue: QueueName) {
        let connection = queue::connect(&amqp_url(), "test-purge")
            .await
            .expect("connect");
        let channel = connection.create_channel().await.expect("channel");
        channel
            .queue_purge(self.topology().queue(queue).into(), Default::default())
            .await
            .expect("purge");
        let _ = connection.close(200, "purged".into()).await;
    }

    /// What the scheduler's jobs need, for calling a job directly.
    pub fn job_context(&self) -> namaskah_scheduler::JobContext {
        namaskah_scheduler::JobContext {
            pool: self.pool.clone(),
            config: Arc::clone(&self.config),
            relay: namaskah_core::queue::OutboxRelay::new(
                self.pool.clone(),
                amqp_url(),
                self.topology(),
                self.config.outbox_batch_size,
                self.config.outbox_poll_interval,
                namaskah_core::queue::OutboxSignal::new(),
            ),
            outbox: namaskah_core::queue::OutboxSignal::new(),
        }
    }

    pub fn database_url(&self) -> &str {
        &self.database_url
    }

    /// Checks the system's invariants; panics with the report if any is broken.
    pub async fn assert_invariants(&self) {
        let report = store::invariants::check(&self.pool, Duration::from_secs(3600))
            .await
            .expect("invariant check runs");
        assert!(report.is_clean(), "invariants broken: {report:#?}");
    }

    /// The examples `namaskah check` gives of one broken invariant: empty while it holds.
    pub async fn violations_of(&self, invariant: &str) -> Vec<String> {
        let report = store::invariants::check(&self.pool, Duration::from_secs(3600))
            .await
            .expect("invariant check runs");
        report
            .violations
            .into_iter()
            .filter(|v| v.invariant == invariant)
            .flat_map(|v| v.examples)
            .collect()
    }

    /// Waits until a relay has published (and so deleted) every outbox row.
    pub async fn wait_for_empty_outbox(&self, timeout: Duration) {
        eventually(timeout, "the outbox to be published", || async {
            let unsent: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
                .fetch_one(&self.pool)
                .await
                .ok()?;
            (unsent == 0).then_some(())
        })
        .await;
    }

    pub fn topology(&self) -> Topology {
        Topology::from_config(&self.config)
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        // Stop the roles first, or consumers would declare the queues again after cleanup.
        if let Some(running) = self.running.as_mut() {
            running.abort();
        }
        let database_url = self.database_url.clone();
        let topology = Topology::new(self.prefix.clone(), self.config.queue_delivery_limit);
        // Async cleanup cannot run in Drop; a helper thread with its own runtime can.
        let cleanup = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                let _ = store::drop_database(&database_url).await;
                if let Ok(connection) = queue::connect(&amqp_url(), "test-cleanup").await
                    && let Ok(channel) = connection.create_channel().await
                {
                    let _ = topology.delete(&channel).await;
                    let _ = connection.close(200, "bye".into()).await;
                }
            });
        });
        let _ = cleanup.join();
    }
}
