//! The overview: health, queues, the last hour. Numbers refresh over the WebSocket.

use warp::reply::Response;

use namaskah_core::store::admins::Session;

use crate::{DashboardState, snapshot};

pub async fn page(state: &DashboardState, session: &Session) -> Response {
    let snapshot = snapshot::gather(state).await;
    super::page(
        state,
        session,
        "overview",
        "Overview",
        snapshot::context(&snapshot),
    )
}
