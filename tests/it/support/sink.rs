//! A webhook receiver for tests. It checks every request's Standard Webhooks signature with
//! its own HMAC-SHA256 (built from SHA-256 here, not from the library's signer), and answers
//! with whatever the test scripts.

use base64::{Engine, engine::general_purpose::STANDARD};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};
use warp::{Filter, http::StatusCode, reply::Reply};

/// What the sink answers to one request.
#[derive(Clone, Debug)]
pub enum Answer {
    Status(u16),
    /// Answer 200 after this long (longer than the delivery timeout: a timeout).
    SlowOk(Duration),
    /// 302 to another path of the sink.
    Redirect,
}

/// One request as received.
#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub id: String,
    pub timestamp: String,
    pub signatures: Vec<String>,
    pub body: Vec<u8>,
    pub json: Value,
    pub trace_id: Option<String>,
}

#[derive(Default)]
struct State {
    script: VecDeque<Answer>,
    default: Option<Answer>,
    received: Vec<Received>,
}

#[derive(Clone)]
pub struct Sink {
    pub address: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl Sink {
    pub async fn start() -> Self {
        let state: Arc<Mutex<State>> = Arc::default();
        let shared = Arc::clone(&state);
        let route = warp::path::full()
            .and(warp::header::headers_cloned())
            .and(warp::body::bytes())
            .then(
                move |path: warp::path::FullPath,
                      headers: warp::http::HeaderMap,
                      body: bytes::Bytes| {
                    let state = Arc::clone(&shared);
                    async move {
                        let header = |name: &str| {
                            headers
                                .get(name)
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_owned)
                        };
                        let received = Received {
                            path: path.as_str().to_owned(),
                            id: header("webhook-id").unwrap_or_default(),
                            timestamp: header("webhook-timestamp").unwrap_or_default(),
                            signatures: header("webhook-signature")
                                .unwrap_or_default()
                                .split(' ')
                                .map(str::to_owned)
                                .collect(),
                            json: serde_json::from_slice(&body).unwrap_or(Value::Null),
                            body: body.to_vec(),
                            trace_id: header("namaskah-trace-id"),
                        };
                        let answer = {
                            let mut state = state.lock().expect("sink");
                            state.received.push(received);
                            state
                                .script
                                .pop_front()
                                .or(state.default.clone())
                                .unwrap_or(Answer::Status(200))
                        };
                        match answer {
                            Answer::Status(code) => StatusCode::from_u16(code)
                                .unwrap_or(StatusCode::OK)
                                .into_response(),
                            Answer::SlowOk(delay) => {
                                tokio::time::sleep(delay).await;
                                StatusCode::OK.into_response()
                            }
                            Answer::Redirect => warp::http::Response::builder()
                                .status(StatusCode::FOUND)
                                .header("location", "/elsewhere")
                                .body(warp::hyper::body::Bytes::new())
                                .map(Reply::into_response)
                                .unwrap_or_else(|_| StatusCode::FOUND.into_response()),
                        }
                    }
                },
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind sink");
        let address = listener.local_addr().expect("sink address");
        tokio::spawn(warp::serve(route).incoming(listener).run());
        Self { address, state }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Answers for the next requests, in order; then the default.
    pub fn script(&self, answers: impl IntoIterator<Item = Answer>) {
        self.state.lock().expect("sink").script.extend(answers);
    }

    pub fn answer_by_default(&self, answer: Answer) {
        self.state.lock().expect("sink").default = Some(answer);
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().expect("sink").received.clone()
    }

    pub fn received_at(&self, path: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }
}

/// HMAC-SHA256 (RFC 2104) from SHA-256 alone.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block_key = [0u8; BLOCK];
    if key.len() > BLOCK {
        block_key[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block_key[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block_key.iter().map(|k| k ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    let outer = Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize();
    outer.into()
}

impl Received {
    /// Whether one of the signatures is valid for `secret` (`whsec_…`), per the specification,
    /// and the timestamp is within five minutes.
    pub fn signed_with(&self, secret: &str) -> bool {
        let Some(key) = secret
            .strip_prefix("whsec_")
            .and_then(|k| STANDARD.decode(k).ok())
        else {
            return false;
        };
        let Ok(timestamp) = self.timestamp.parse::<i64>() else {
            return false;
        };
        if (chrono::Utc::now().timestamp() - timestamp).abs() > 300 {
            return false;
        }
        let mut signed = format!("{}.{}.", self.id, self.timestamp).into_bytes();
        signed.extend_from_slice(&self.body);
        let expected = format!("v1,{}", STANDARD.encode(hmac_sha256(&key, &signed)));
        self.signatures.contains(&expected)
    }

    pub fn event_type(&self) -> &str {
        self.json["type"].as_str().unwrap_or_default()
    }
}
