//! Integration tests against real PostgreSQL and RabbitMQ. One test binary (one link); each
//! test gets a fresh database created from the migrations and its own queue prefix, so
//! tests run in parallel without seeing each other.

mod support;

mod api;
mod api_keys;
mod audit;
mod authorization;
mod browser;
mod compliance;
mod consumer_recovery;
mod contract;
mod crm;
mod customer_app;
mod dashboard;
mod dashboard_live;
mod deployment;
mod drill;
mod holding;
mod lifecycle;
mod load;
mod migrations;
mod money;
mod observability;
mod ordering;
mod outages;
mod outbox;
mod outside_scan;
mod parking;
mod payments;
mod polling;
mod privacy;
mod provider_resilience;
mod scheduler;
mod secrets_in_logs;
mod sentry;
mod setup_scripts;
mod startup;
mod subscriptions;
mod tenants;
mod text_verified;
mod tiers;
mod tls;
mod usage;
mod v2;
mod webhooks;
