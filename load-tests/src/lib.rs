//! Tools that stand in for the world outside, for tests and load runs: the provider
//! simulator, a webhook receiver that checks signatures, and a TCP proxy that can be cut.
//! (`namaskah load` itself lives in the binary, `src/commands/load`.)

pub mod proxy;
pub mod simulator;
pub mod webhook_sink;
