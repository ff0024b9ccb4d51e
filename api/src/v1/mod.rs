//! API v1: verifications, the account and the service catalogue.

pub mod account;
pub mod services;
pub mod verifications;
mod view;
