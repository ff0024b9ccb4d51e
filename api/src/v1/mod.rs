//! API v1: verifications, the account and the service catalogue, keys, webhooks, money and
//! the white-label tenant.

pub mod account;
pub mod api_keys;
pub mod payments;
pub mod referrals;
pub mod services;
pub mod subscription;
pub mod tenant;
pub mod usage;
pub mod verifications;
pub mod webhook_endpoints;
pub mod webhook_messages;
