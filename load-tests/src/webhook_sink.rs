//! A webhook receiver for load runs: answers 204 at once, checks every signature, and notes
//! when each message arrived and when each verification's `verification.completed` did.

use chrono::{DateTime, Utc};
use std::{
    collections::{HashMap, hash_map::Entry},
    net::SocketAddr,
    sync::{Arc, Mutex},
};
use warp::{Filter, http::StatusCode};

use namaskah_core::{
    Shutdown,
    webhooks::{
        WebhookSecret,
        signing::{DEFAULT_TOLERANCE_SECS, verify},
    },
};

/// What the sink has seen.
#[derive(Default)]
pub struct Tally {
    /// First validly signed arrival of each `webhook-id` at each endpoint path.
    pub first_seen: HashMap<(String, String), DateTime<Utc>>,
    /// First arrival of `verification.completed`, by verification id.
    pub completions: HashMap<String, DateTime<Utc>>,
    pub requests: u64,
    pub duplicates: u64,
    pub bad_signatures: u64,
}

pub struct WebhookSink {
    pub address: SocketAddr,
    tally: Arc<Mutex<Tally>>,
}

impl WebhookSink {
    /// Starts a sink that accepts requests signed with any of `secrets`.
    pub async fn start(
        secrets: Arc<Mutex<Vec<WebhookSecret>>>,
        shutdown: Shutdown,
    ) -> std::io::Result<Self> {
        let tally: Arc<Mutex<Tally>> = Arc::default();
        let seen = Arc::clone(&tally);
        let route = warp::post()
            .and(warp::path::full())
            .and(warp::header::optional::<String>("webhook-id"))
            .and(warp::header::optional::<String>("webhook-timestamp"))
            .and(warp::header::optional::<String>("webhook-signature"))
            .and(warp::body::bytes())
            .map(
                move |path: warp::path::FullPath,
                      id: Option<String>,
                      timestamp: Option<String>,
                      signature: Option<String>,
                      body: bytes::Bytes| {
                    let now = Utc::now();
                    let id = id.unwrap_or_default();
                    let valid = secrets.lock().map(|secrets| {
                        secrets.iter().any(|secret| {
                            verify(
                                secret,
                                &id,
                                timestamp.as_deref().unwrap_or_default(),
                                signature.as_deref().unwrap_or_default(),
                                &body,
                                now.timestamp(),
                                DEFAULT_TOLERANCE_SECS,
                            )
                            .is_ok()
                        })
                    });
                    let valid = valid.unwrap_or(false);
                    let completed = if valid {
                        completed_verification(&body)
                    } else {
                        None
                    };
                    if let Ok(mut tally) = seen.lock() {
                        tally.requests += 1;
                        if !valid {
                            tally.bad_signatures += 1;
                            return StatusCode::NO_CONTENT;
                        }
                        match tally.first_seen.entry((path.as_str().to_owned(), id)) {
                            Entry::Occupied(_) => tally.duplicates += 1,
                            Entry::Vacant(slot) => {
                                slot.insert(now);
                            }
                        }
                        if let Some(verification) = completed {
                            tally.completions.entry(verification).or_insert(now);
                        }
                    }
                    StatusCode::NO_CONTENT
                },
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        tokio::spawn(
            warp::serve(route)
                .incoming(listener)
                .graceful(async move { shutdown.wait().await })
                .run(),
        );
        Ok(Self { address, tally })
    }

    /// Runs `read` on the tally.
    pub fn with_tally<T>(&self, read: impl FnOnce(&Tally) -> T) -> Option<T> {
        self.tally.lock().ok().map(|tally| read(&tally))
    }
}

/// The verification id of a `verification.completed` event; `None` for any other body.
fn completed_verification(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Event {
        #[serde(rename = "type")]
        event_type: String,
        data: Data,
    }
    #[derive(serde::Deserialize)]
    struct Data {
        id: String,
    }
    let event: Event = serde_json::from_slice(body).ok()?;
    (event.event_type == "verification.completed").then_some(event.data.id)
}
