//! `GET /v2/events`: the account's events (the same ones webhooks carry) as server-sent
//! events, resumable. Each event's `id` is its stream position; a client that reconnects
//! with `Last-Event-ID` (or `?after=`) gets exactly the events after it, none skipped, none
//! repeated (see `store/events.rs` for why that holds with concurrent writers). Without a
//! position the stream starts with events from now on; `?after=0-0` replays everything.
//!
//! The stream polls PostgreSQL once a second while idle, ends when the API shuts down,
//! ends when its key is revoked, and ends after `EVENT_STREAM_MAX_AGE` (the client resumes
//! with `Last-Event-ID`), so that no connection outlives a load balancer's limits.

use futures_util::stream;
use serde::Deserialize;
use std::{collections::VecDeque, convert::Infallible, sync::Arc, time::Duration};
use warp::{Reply as _, sse};

use namaskah_core::{
    domain::{AccountId, ApiKey, Scope},
    store::{
        customers,
        events::{self, Event, StreamPosition},
    },
};
use uuid::Uuid;

use crate::{ApiError, AppState, auth::authenticate, body::parse_query};

const IDLE_POLL: Duration = Duration::from_secs(1);
const BATCH: i64 = 100;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamQuery {
    after: Option<String>,
}

/// Whose stream it is: it ends when the key is revoked or the session ends.
pub(crate) enum Holder {
    Key(ApiKey),
    /// The web app's signed-in customer, by session id.
    Session(Uuid),
}

struct Cursor {
    state: Arc<AppState>,
    account: AccountId,
    holder: Holder,
    position: StreamPosition,
    ready: VecDeque<Event>,
}

pub async fn stream(
    state: Arc<AppState>,
    authorization: Option<String>,
    last_event_id: Option<String>,
    query: String,
) -> Result<warp::reply::Response, ApiError> {
    let caller = authenticate(&state, authorization.as_deref(), Scope::Read).await?;
    let query: StreamQuery = parse_query(&query)?;
    let parse = |id: &str| {
        StreamPosition::parse(id).ok_or_else(|| {
            ApiError::InvalidRequest(format!(
                "{id:?} is not an event id of this stream (`Last-Event-ID` and `after` take the `id` of an event)"
            ))
        })
    };
    // Both are checked when both are sent; a reconnecting client's `Last-Event-ID` wins.
    let after = query.after.as_deref().map(parse).transpose()?;
    let resumed = last_event_id.as_deref().map(parse).transpose()?;
    let position = match resumed.or(after) {
        Some(position) => position,
        None => events::head(&state.pool, caller.account_id).await?,
    };
    let key = authorization
        .as_deref()
        .and_then(|header| header.trim().split_once(' '))
        .and_then(|(_, token)| ApiKey::parse(token.trim()))
        .ok_or(ApiError::InvalidApiKey)?;
    Ok(open(state, caller.account_id, Holder::Key(key), position))
}

/// The account's events after `position`, as server-sent events, while `holder` may read them.
pub(crate) fn open(
    state: Arc<AppState>,
    account: AccountId,
    holder: Holder,
    position: StreamPosition,
) -> warp::reply::Response {
    let cursor = Cursor {
        state,
        account,
        holder,
        position,
        ready: VecDeque::new(),
    };
    // A task reads the events and hands them over; it ends when the client goes away (the
    // channel closes) or the stream should end.
    let (sender, receiver) = tokio::sync::mpsc::channel::<sse::Event>(16);
    let ends_at = tokio::time::Instant::now() + cursor.state.event_stream_max_age;
    tokio::spawn(async move {
        let mut cursor = cursor;
        loop {
            let event = tokio::select! {
                event = next_event(&mut cursor) => event,
                _ = sender.closed() => None,
                _ = tokio::time::sleep_until(ends_at) => None,
            };
            let Some(event) = event else { break };
            if sender.send(event).await.is_err() {
                break;
            }
        }
    });
    let events = stream::unfold(receiver, |mut receiver| async move {
        receiver
            .recv()
            .await
            .map(|event| (Ok::<_, Infallible>(event), receiver))
    });
    sse::reply(
        sse::keep_alive()
            .interval(Duration::from_secs(15))
            .stream(events),
    )
    .into_response()
}

/// The next event to send, waiting for one as long as the stream should stay open.
async fn next_event(cursor: &mut Cursor) -> Option<sse::Event> {
    loop {
        if let Some(event) = cursor.ready.pop_front() {
            cursor.position = event.position();
            let message = sse::Event::default()
                .id(cursor.position.to_event_id())
                .event(event.event_type.clone())
                .data(event.payload.to_string());
            return Some(message);
        }
        if cursor.state.streams_stop.is_triggered() || !holder_still_valid(cursor).await {
            return None;
        }
        match events::after(
            &cursor.state.pool,
            cursor.account,
            Some(cursor.position),
            BATCH,
        )
        .await
        {
            Ok(batch) if !batch.is_empty() => cursor.ready.extend(batch),
            outcome => {
                if let Err(error) = outcome {
                    tracing::warn!(%error, "event stream cannot read events; retrying");
                }
                tokio::select! {
                    _ = cursor.state.streams_stop.wait() => return None,
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                }
            }
        }
    }
}

/// A revoked key loses its open streams too (the key cache makes this check cheap), and
/// so does a session that ended (signed out, expired, password changed).
async fn holder_still_valid(cursor: &Cursor) -> bool {
    let pool = &cursor.state.pool;
    let valid = match &cursor.holder {
        Holder::Key(key) => cursor
            .state
            .caches
            .key_owner(pool, &key.hash())
            .await
            .map(|owner| owner.is_some_and(|owner| owner.revoked_at.is_none())),
        Holder::Session(id) => customers::session_is_live(pool, *id).await,
    };
    // The database being away is no reason to drop the client; the next poll retries.
    valid.unwrap_or(true)
}
