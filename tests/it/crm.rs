//! The `crm` job: new accounts and recent usage reach the CRM endpoint, signed like our
//! webhooks; an accepted batch is not sent again, a refused one is.

use serde_json::Value;

use crate::support::{Answer, Sink, TestEnv};
use namaskah_core::webhooks::WebhookSecret;
use namaskah_scheduler::{JobName, jobs};

fn ids(batch: &Value) -> Vec<String> {
    batch["accounts"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x["account_id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn accounts_and_usage_reach_the_crm_signed_and_once() {
    let sink = Sink::start().await;
    let secret = WebhookSecret::generate();
    let env = TestEnv::builder()
        .api_only()
        .set("CRM_URL", &sink.url("/crm"))
        .set("CRM_SECRET", secret.expose())
        .start()
        .await;
    let context = env.job_context();
    let first = env.account(5_000).await;
    env.create_verification(&first, "telegram", "us").await;

    // Refused: nothing is marked, the same accounts go again next time.
    sink.script([Answer::Status(503)]);
    assert!(jobs::run(JobName::Crm, &context).await.is_err());
    assert!(jobs::run(JobName::Crm, &context).await.is_ok());
    let received = sink.received_at("/crm");
    assert_eq!(received.len(), 2);
    let batch = &received[1];
    assert!(
        batch.signed_with(secret.expose()),
        "signed like our webhooks"
    );
    assert_eq!(batch.json["type"], "crm.sync");
    assert!(ids(&batch.json).contains(&first.id.to_string()));
    assert_eq!(batch.json["usage"][0]["service"], "telegram");
    assert_eq!(batch.json["usage"][0]["verifications"], 1);

    // Only what is new goes next: the second account, not the first again.
    let second = env.account(0).await;
    jobs::run(JobName::Crm, &context).await.expect("export");
    let latest = sink.received_at("/crm").pop().expect("third");
    assert_eq!(ids(&latest.json), vec![second.id.to_string()]);
    assert_ne!(latest.id, batch.id, "each request has its own webhook-id");
}
