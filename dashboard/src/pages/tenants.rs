//! `/tenants`: every white-label tenant with its brand as its customers see it, and how many
//! accounts and own prices it has.

use serde_json::json;
use warp::{http::StatusCode, reply::Response};

use namaskah_core::store::{admins::Session, tenants};

use super::when;
use crate::{DashboardState, request::text};

pub async fn page(state: &DashboardState, session: &Session) -> Response {
    let Ok(tenants) = tenants::list(&state.pool).await else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "The database is unavailable.",
        );
    };
    let rows: Vec<_> = tenants
        .iter()
        .map(|summary| {
            let tenant = &summary.tenant;
            json!({
                "slug": tenant.slug,
                "brand": tenant.brand,
                "created_at": when(&tenant.created_at),
                "accounts": summary.accounts,
                "prices": summary.prices,
            })
        })
        .collect();
    super::page(
        state,
        session,
        "tenants",
        "Tenants",
        json!({ "tenants": rows }),
    )
}
