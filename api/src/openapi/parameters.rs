//! What each query and header parameter accepts, as precisely as a schema can say it, so
//! that a client (or a fuzzer) that follows the document is never refused for the form of
//! a value. Parameters share their rules by name across operations.

use utoipa::openapi::{ObjectBuilder, Schema, Type};

use crate::v1::webhook_endpoints::EVENT_TYPES;
use namaskah_core::domain::Status;

/// An event id of `GET /v2/events`: `<transaction>-<sequence>`, each within its integer.
pub const STREAM_POSITION_PATTERN: &str = "^[0-9]{1,19}-[0-9]{1,18}$";
/// What `Idempotency-Key` takes: 1–255 visible ASCII characters.
const IDEMPOTENCY_KEY_PATTERN: &str = "^[!-~]{1,255}$";
const SERVICE_PATTERN: &str = "^[a-z0-9][a-z0-9_-]{0,31}$";
/// Either case is accepted (`us` or `US`).
const COUNTRY_PATTERN: &str = "^[a-zA-Z]{2}$";

/// The schema of the parameter `name` (its rules are the same in every operation of a
/// version; v1 ignores an `expand` it does not know, v2 refuses it).
pub fn schema(name: &str, v2: bool) -> Schema {
    let string = || ObjectBuilder::new().schema_type(Type::String);
    let integer = |minimum: i64, maximum: i64| {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(minimum))
            .maximum(Some(maximum))
    };
    let object = match name {
        "limit" => integer(1, 100),
        "offset" => integer(0, 1_000_000),
        "status" => string().enum_values(Some(Status::ALL.map(Status::as_str))),
        "event_type" => string().enum_values(Some(EVENT_TYPES)),
        // A comma-separated list; `events` is the one name (empty items are ignored).
        "expand" if v2 => string().pattern(Some(r"^\s*(events)?\s*(,\s*(events)?\s*)*$")),
        "service" => string().pattern(Some(SERVICE_PATTERN)),
        "country" => string().pattern(Some(COUNTRY_PATTERN)),
        "from" | "to" => string().format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
            utoipa::openapi::KnownFormat::Date,
        ))),
        "after" | "Last-Event-ID" => string().pattern(Some(STREAM_POSITION_PATTERN)),
        "Idempotency-Key" => string().pattern(Some(IDEMPOTENCY_KEY_PATTERN)),
        _ => string(),
    };
    Schema::Object(object.build())
}
