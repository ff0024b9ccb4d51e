//! `GET /events`: the signed-in account's events as server-sent events, for the pages that
//! show a code arriving. The same stream as `GET /v2/events`; it resumes from the browser's
//! `Last-Event-ID` after a reconnect, else from the position the page was rendered at
//! (`?after=`), and ends when the session does.

use std::sync::Arc;
use warp::{http::StatusCode, reply::Response};

use namaskah_core::store::{
    customers::Session,
    events::{self, StreamPosition},
};

use super::account::unavailable;
use crate::{
    app::{WebApp, visit::Visit},
    v2::events::{Holder, open},
};

pub async fn events(app: &WebApp, visit: &Visit, session: &Session) -> Response {
    let state = &app.api;
    // A reconnecting browser's `Last-Event-ID` wins over the page's starting point.
    let resumed = visit
        .last_event_id
        .as_deref()
        .or(visit.query("after"))
        .and_then(StreamPosition::parse);
    let position = match resumed {
        Some(position) => position,
        None => match events::head(&state.pool, session.account_id).await {
            Ok(position) => position,
            Err(error) => {
                let mut response = unavailable(app, visit, &error);
                *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                return response;
            }
        },
    };
    open(
        Arc::clone(state),
        session.account_id,
        Holder::Session(session.id),
        position,
    )
}
