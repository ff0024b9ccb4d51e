//! Tools that stand in for the world outside: the provider simulator, and (later) the load
//! generator, webhook sink and chaos runner.

pub mod simulator;
pub mod webhook_sink;
