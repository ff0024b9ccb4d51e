//! How the simulated provider behaves; changed at run time through `POST /_sim/config`.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Behaviour {
    /// Added to every request.
    pub latency_ms: u64,
    /// How long after the purchase the SMS arrives (for orders that get one).
    pub sms_delay_ms: u64,
    /// Share of orders that never get an SMS on their own (0 to 1).
    pub no_sms_ratio: f64,
    /// Share of purchases answered "no free phones".
    pub out_of_stock_ratio: f64,
    /// Share of requests answered with a server error.
    pub error_ratio: f64,
    /// Share of requests refused with `429 Too Many Requests` and `Retry-After: 1`.
    pub throttle_ratio: f64,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            sms_delay_ms: 3_000,
            no_sms_ratio: 0.0,
            out_of_stock_ratio: 0.0,
            error_ratio: 0.0,
            throttle_ratio: 0.0,
        }
    }
}

/// A partial update: fields left out keep their value.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BehaviourUpdate {
    latency_ms: Option<u64>,
    sms_delay_ms: Option<u64>,
    no_sms_ratio: Option<f64>,
    out_of_stock_ratio: Option<f64>,
    error_ratio: Option<f64>,
    throttle_ratio: Option<f64>,
}

impl Behaviour {
    pub fn apply(&self, update: BehaviourUpdate) -> Result<Behaviour, String> {
        let ratio = |name: &str, value: Option<f64>, current: f64| match value {
            None => Ok(current),
            Some(v) if (0.0..=1.0).contains(&v) => Ok(v),
            Some(v) => Err(format!("{name} must be from 0 to 1, got {v}")),
        };
        let latency_ms = update.latency_ms.unwrap_or(self.latency_ms);
        if latency_ms > 60_000 {
            return Err("latency_ms must be at most 60000".to_owned());
        }
        Ok(Behaviour {
            latency_ms,
            sms_delay_ms: update.sms_delay_ms.unwrap_or(self.sms_delay_ms),
            no_sms_ratio: ratio("no_sms_ratio", update.no_sms_ratio, self.no_sms_ratio)?,
            out_of_stock_ratio: ratio(
                "out_of_stock_ratio",
                update.out_of_stock_ratio,
                self.out_of_stock_ratio,
            )?,
            error_ratio: ratio("error_ratio", update.error_ratio, self.error_ratio)?,
            throttle_ratio: ratio("throttle_ratio", update.throttle_ratio, self.throttle_ratio)?,
        })
    }
}
