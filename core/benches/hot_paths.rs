//! The hot paths that run once or more per verification, without I/O: what a request or a
//! message costs in CPU before it touches the network or the database.
//!
//! `cargo bench -p namaskah-core` (results: docs/benchmarks.md).

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

use namaskah_core::{
    domain::{ApiKey, Status, Transition, VerificationId},
    pricing,
    queue::{Envelope, Job},
    store::{services::Offer, tenants::PriceBook},
    webhooks::{
        WebhookSecret,
        signing::{self, DEFAULT_TOLERANCE_SECS},
    },
};

/// A `verification.completed` event as the API sends it (≈ 600 bytes).
fn event_body() -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "type": "verification.completed",
        "timestamp": "2026-11-25T07:00:00.000Z",
        "data": {
            "id": "01a21168-5624-7342-9bb4-3c181efa8335",
            "status": "completed",
            "service": "telegram",
            "country": "us",
            "price_cents": 90,
            "phone_number": "+15555550123",
            "code": "123456",
            "sms_text": "Your Telegram code is 123456. Do not give it to anyone.",
            "created_at": "2026-11-25T06:59:58.000Z",
            "number_assigned_at": "2026-11-25T06:59:58.120Z",
            "completed_at": "2026-11-25T07:00:00.000Z",
            "expires_at": "2026-11-25T07:04:58.120Z",
            "cancel_requested": false,
            "trace_id": "ddce88a40ac9401eb45168ddb081fc6a"
        }
    }))
    .unwrap_or_default()
}

fn webhook_signatures(c: &mut Criterion) {
    let secret = WebhookSecret::generate();
    let body = event_body();
    let id = "msg_af963258faec46ffa526d9b6d1e7f138";
    let now = 1_795_000_000;
    c.bench_function("webhook sign", |b| {
        b.iter(|| signing::sign(black_box(&secret), black_box(id), now, black_box(&body)))
    });
    let signature = signing::sign(&secret, id, now, &body);
    let timestamp = now.to_string();
    c.bench_function("webhook verify", |b| {
        b.iter(|| {
            signing::verify(
                black_box(&secret),
                id,
                &timestamp,
                black_box(&signature),
                black_box(&body),
                now,
                DEFAULT_TOLERANCE_SECS,
            )
        })
    });
}

fn queue_messages(c: &mut Criterion) {
    let envelope = Envelope::first(
        Job::PollSms {
            verification_id: VerificationId::new(),
        },
        "ddce88a40ac9401eb45168ddb081fc6a",
    );
    c.bench_function("message encode", |b| {
        b.iter(|| black_box(&envelope).to_bytes())
    });
    let bytes = envelope.to_bytes();
    c.bench_function("message decode", |b| {
        b.iter(|| Envelope::parse(black_box(&bytes)))
    });
}

fn api_request(c: &mut Criterion) {
    let key = ApiKey::generate();
    let text = key.expose().to_owned();
    // Every request: parse the bearer key and hash it to find its owner in the cache.
    c.bench_function("API key parse and hash", |b| {
        b.iter(|| ApiKey::parse(black_box(&text)).map(|key| key.hash()))
    });
    // The seeded catalogue's shape: 12 services × 10 countries × 3 providers.
    let providers = ["simulator", "5sim", "textverified"];
    let offers: Vec<Offer> = (0..12)
        .flat_map(|s| (0..10).map(move |c| (s, c)))
        .flat_map(|(s, c)| {
            providers.iter().map(move |provider| Offer {
                service: format!("service{s}"),
                country: format!("c{c}"),
                provider: (*provider).to_owned(),
                provider_product: format!("service{s}"),
                provider_country: format!("country{c}"),
                price_cents: 20 + s * 5 + c,
                sms_timeout_secs: 300,
            })
        })
        .collect();
    let order: Vec<String> = providers.iter().map(|p| (*p).to_owned()).collect();
    let book = PriceBook::new();
    c.bench_function("price an order (no country: cheapest)", |b| {
        b.iter(|| pricing::quote(black_box(&offers), &order, &book, "service7", None))
    });
}

fn state_updates(c: &mut Criterion) {
    // Every transition is checked against the statuses it may start from before its
    // conditional UPDATE is built.
    let transitions = [
        Transition::StartOrdering,
        Transition::AssignNumber,
        Transition::Complete,
        Transition::TimeOut,
    ];
    c.bench_function("transition guards", |b| {
        b.iter(|| {
            transitions
                .iter()
                .map(|t| {
                    Status::ALL.iter().filter(|s| t.from().contains(s)).count()
                        + usize::from(t.to().is_final())
                })
                .sum::<usize>()
        })
    });
}

criterion_group!(
    hot_paths,
    webhook_signatures,
    queue_messages,
    api_request,
    state_updates
);
criterion_main!(hot_paths);
