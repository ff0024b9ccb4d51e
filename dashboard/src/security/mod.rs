//! Who may use the dashboard: network allowlist, administrators with a password and a TOTP
//! code, sessions with CSRF tokens, and the headers every page carries.

pub mod client_ip;
pub mod credentials;
pub mod headers;
pub mod session;
pub mod throttle;
