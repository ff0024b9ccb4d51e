//! API v1: verifications, the account and the service catalogue.

pub mod account;
pub mod api_keys;
pub mod payments;
pub mod referrals;
pub mod services;
pub mod subscription;
pub mod usage;
pub mod verifications;
pub mod webhook_endpoints;
pub mod webhook_messages;
