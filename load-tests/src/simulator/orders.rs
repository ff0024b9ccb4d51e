//! The simulated provider's orders.

use chrono::{DateTime, Utc};
use rand::RngExt;
use serde::Serialize;
use std::{
    collections::HashMap,
    sync::{
        Mutex,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

/// 5SIM's order statuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum OrderStatus {
    Pending,
    Received,
    Canceled,
    Timeout,
    Finished,
    Banned,
}

#[derive(Clone, Debug, Serialize)]
pub struct Sms {
    pub created_at: DateTime<Utc>,
    pub date: DateTime<Utc>,
    pub sender: String,
    pub text: String,
    pub code: String,
}

/// An order in 5SIM's JSON shape, plus the simulator's plan for it.
#[derive(Clone, Debug, Serialize)]
pub struct SimOrder {
    pub id: i64,
    pub phone: String,
    pub operator: String,
    pub product: String,
    pub price: f64,
    pub status: OrderStatus,
    pub expires: DateTime<Utc>,
    pub sms: Vec<Sms>,
    pub created_at: DateTime<Utc>,
    pub country: String,
    /// When the SMS arrives on its own; `None` for an order that never gets one.
    #[serde(skip)]
    pub sms_due: Option<DateTime<Utc>>,
}

/// How long a simulated order lives before the provider times it out, as 5SIM's do.
const ORDER_LIFETIME: Duration = Duration::from_secs(20 * 60);

#[derive(Default)]
pub struct Orders {
    next_id: AtomicI64,
    orders: Mutex<HashMap<i64, SimOrder>>,
}

impl Orders {
    pub fn create(
        &self,
        country: &str,
        operator: &str,
        product: &str,
        sms_delay: Option<Duration>,
    ) -> SimOrder {
        let id = 100_000 + self.next_id.fetch_add(1, Ordering::Relaxed);
        let now = Utc::now();
        let mut rng = rand::rng();
        let order = SimOrder {
            id,
            phone: format!("+1555{:07}", rng.random_range(0..10_000_000)),
            operator: operator.to_owned(),
            product: product.to_owned(),
            price: 0.5,
            status: OrderStatus::Pending,
            expires: now + ORDER_LIFETIME,
            sms: Vec::new(),
            created_at: now,
            country: country.to_owned(),
            sms_due: sms_delay.map(|delay| now + delay),
        };
        if let Ok(mut orders) = self.orders.lock() {
            orders.insert(id, order.clone());
        }
        order
    }

    /// The order as it stands now: a due SMS has arrived, an old order has timed out.
    pub fn get(&self, id: i64) -> Option<SimOrder> {
        let mut orders = self.orders.lock().ok()?;
        let order = orders.get_mut(&id)?;
        advance(order);
        Some(order.clone())
    }

    /// Applies `change` to the current order; `None` if it does not exist.
    pub fn update<T>(&self, id: i64, change: impl FnOnce(&mut SimOrder) -> T) -> Option<T> {
        let mut orders = self.orders.lock().ok()?;
        let order = orders.get_mut(&id)?;
        advance(order);
        Some(change(order))
    }

    pub fn deliver_sms(&self, id: i64, text: &str) -> bool {
        self.update(id, |order| {
            if matches!(order.status, OrderStatus::Pending | OrderStatus::Received) {
                receive(order, text);
                true
            } else {
                false
            }
        })
        .unwrap_or(false)
    }
}

fn advance(order: &mut SimOrder) {
    let now = Utc::now();
    if order.status == OrderStatus::Pending {
        if order.sms_due.is_some_and(|due| due <= now) {
            let code = format!("{:06}", rand::rng().random_range(0..1_000_000));
            let text = format!("Your {} verification code is {code}", order.product);
            order.sms_due = None;
            receive(order, &text);
        } else if now >= order.expires {
            order.status = OrderStatus::Timeout;
        }
    }
}

fn receive(order: &mut SimOrder, text: &str) {
    let now = Utc::now();
    let code = namaskah_core::providers::extract_code(text).unwrap_or_default();
    order.sms.push(Sms {
        created_at: now,
        date: now,
        sender: order.product.clone(),
        text: text.to_owned(),
        code,
    });
    order.status = OrderStatus::Received;
}
