//! Login throttling per client address: a few failures a minute, then refusals until the
//! minute is over. (Per account, repeated failures lock the account; see `store::admins`.)

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

const WINDOW: Duration = Duration::from_secs(60);
const MAX_FAILURES: u32 = 10;

#[derive(Default)]
pub struct LoginThrottle {
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl LoginThrottle {
    /// Whether this address may try to log in now.
    pub fn allows(&self, client: IpAddr) -> bool {
        let Ok(failures) = self.failures.lock() else {
            return true;
        };
        match failures.get(&client) {
            Some((since, count)) if since.elapsed() < WINDOW => *count < MAX_FAILURES,
            _ => true,
        }
    }

    pub fn failed(&self, client: IpAddr) {
        if let Ok(mut failures) = self.failures.lock() {
            let entry = failures.entry(client).or_insert((Instant::now(), 0));
            if entry.0.elapsed() >= WINDOW {
                *entry = (Instant::now(), 0);
            }
            entry.1 += 1;
            // Keep the map small: forget addresses whose window is over.
            if failures.len() > 10_000 {
                failures.retain(|_, (since, _)| since.elapsed() < WINDOW);
            }
        }
    }
}
