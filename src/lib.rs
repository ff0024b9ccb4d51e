//! The `namaskah` binary's library half: starting roles together ([`pipeline`]) and checking
//! that the services they need are there ([`prerequisites`]). Tests start pipelines with it.

pub mod pipeline;
pub mod ports;
pub mod prerequisites;
