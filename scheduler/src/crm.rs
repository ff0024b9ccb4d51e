//! The `crm` job: new accounts and recent usage to the CRM endpoint, as one request signed
//! like our webhooks (Standard Webhooks headers, `CRM_SECRET`), so the CRM side can verify
//! it with any Standard Webhooks library. At least once: the mark moves only after a 2xx.

use chrono::Utc;
use std::time::Duration;

use namaskah_core::{
    config::CrmSettings,
    store::{StoreError, crm},
    webhooks::signing,
};

use crate::JobContext;

#[derive(Debug, thiserror::Error)]
pub enum CrmError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the CRM endpoint did not answer: {0}")]
    Unreachable(#[from] reqwest::Error),
    #[error("the CRM endpoint answered {0}")]
    Refused(u16),
}

/// Sends what is new; the number of accounts and usage rows sent.
pub async fn export(context: &JobContext, settings: &CrmSettings) -> Result<u64, CrmError> {
    let batch = crm::pending(&context.pool, Utc::now()).await?;
    let sent = (batch.accounts.len() + batch.usage.len()) as u64;
    let body = serde_json::to_vec(&serde_json::json!({
        "type": "crm.sync",
        "exported_until": batch.until.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "accounts": batch.accounts,
        "usage": batch.usage,
    }))
    .unwrap_or_default();
    let id = format!("crm_{}", uuid::Uuid::new_v4().simple());
    let timestamp = Utc::now().timestamp();
    namaskah_core::telemetry::install_crypto_provider();
    let response = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?
        .post(&settings.url)
        .header("content-type", "application/json")
        .header("webhook-id", &id)
        .header("webhook-timestamp", timestamp.to_string())
        .header(
            "webhook-signature",
            signing::signature_header(&[&settings.secret], &id, timestamp, &body),
        )
        .body(body)
        .send()
        .await?;
    if !response.status().is_success() {
        return Err(CrmError::Refused(response.status().as_u16()));
    }
    crm::mark(&context.pool, batch.until).await?;
    Ok(sent)
}
