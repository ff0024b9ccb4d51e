//! The overview: health, queues, the last hour drawn as charts. Numbers and charts refresh
//! over the WebSocket (see `live`).

use warp::reply::Response;

use namaskah_core::store::admins::Session;

use crate::{DashboardState, live, snapshot};

pub async fn page(state: &DashboardState, session: &Session) -> Response {
    let mut snapshot = snapshot::gather(state).await;
    if let Some(latest) = state.live.latest() {
        live::fill_queue_rates(&mut snapshot, &latest);
    }
    state.live.describe_breakers(&mut snapshot);
    let mut context = snapshot::context(&snapshot);
    if let Some(map) = context.as_object_mut() {
        map.insert("charts".into(), state.live.charts().into());
    }
    super::page(state, session, "overview", "Overview", context)
}
