//! Picking a local port for a listener that is started later, by another process.

use rand::RngExt;
use std::net::TcpListener;

/// A port on 127.0.0.1 that nothing listened on a moment ago, chosen below the kernel's
/// ephemeral range. A port from that range (what binding port 0 gives) is also handed to
/// outgoing connections, so between this probe and the listener's own bind one of them could
/// take it; below the range only another listener can. Falls back to port 0 when 64 random
/// probes all find a listener.
pub fn unused_local_port() -> std::io::Result<u16> {
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let candidates = 10_000..ephemeral_start.max(10_001);
    for _ in 0..64 {
        let port = rand::rng().random_range(candidates.clone());
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    let probe = TcpListener::bind("127.0.0.1:0")?;
    Ok(probe.local_addr()?.port())
}
