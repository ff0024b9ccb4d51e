//! One operation of the document, built from its line in the operations table.

use utoipa::openapi::{
    ContentBuilder, HttpMethod, ObjectBuilder, Ref, RefOr, ResponseBuilder, Schema, Type,
    path::{OperationBuilder, ParameterBuilder, ParameterIn},
    request_body::RequestBodyBuilder,
    security::SecurityRequirement,
};

use super::{IDEMPOTENCY, Operation, parameters};

/// What an error status means, for the document.
fn error_meaning(status: u16) -> &'static str {
    match status {
        400 => "the request is malformed (see `code`)",
        401 => {
            "not authenticated: no key, an unknown or a revoked key (payment webhooks: a missing, wrong or stale signature)"
        }
        402 => "the balance does not cover the price",
        403 => "the key lacks the scope",
        404 => "no such resource for this account",
        409 => "conflicts with the resource's state or a running request",
        413 => "the body is over 64 KiB",
        422 => "understood but refused (see `code`)",
        429 => "over the tier's rate limit; see `Retry-After`",
        503 => {
            "a dependency (the database, a payment provider) is briefly unavailable; retry after `Retry-After` seconds"
        }
        _ => "error",
    }
}

fn schema_ref(name: &str) -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(name))
}

fn json_content(schema: &str) -> utoipa::openapi::Content {
    ContentBuilder::new()
        .schema(Some(schema_ref(schema)))
        .build()
}

/// One operation of the document, with its parameters, answers and every error it may give.
pub(super) fn build(operation: &Operation) -> utoipa::openapi::path::Operation {
    let v2 = operation.path.starts_with("/v2/");
    let mut builder = OperationBuilder::new()
        .tag(operation.tag)
        .summary(Some(operation.summary))
        .operation_id(Some(operation_id(operation)));
    if operation.path.contains("{id}") {
        builder = builder.parameter(
            ParameterBuilder::new()
                .name("id")
                .parameter_in(ParameterIn::Path)
                .required(utoipa::openapi::Required::True)
                .schema(Some(ObjectBuilder::new().schema_type(Type::String).build())),
        );
    }
    for (name, description) in operation.query {
        builder = builder.parameter(
            ParameterBuilder::new()
                .name(*name)
                .parameter_in(ParameterIn::Query)
                .description(Some(*description))
                .schema(Some(parameters::schema(name, v2))),
        );
    }
    for (name, description) in operation.headers {
        builder = builder.parameter(
            ParameterBuilder::new()
                .name(*name)
                .parameter_in(ParameterIn::Header)
                .description(Some(*description))
                .schema(Some(parameters::schema(name, v2))),
        );
    }
    if let Some(body) = operation.body {
        builder = builder.request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(utoipa::openapi::Required::True))
                .content("application/json", json_content(body))
                .build(),
        ));
    }
    for (status, description, body) in operation.answers {
        let mut response = ResponseBuilder::new().description(*description);
        if let Some(body) = body {
            response = response.content("application/json", json_content(body));
        } else if operation.path == "/v2/events" {
            // OpenAPI 3.1: the schema of a `text/event-stream` describes each event.
            response = response.content(
                "text/event-stream",
                ContentBuilder::new()
                    .schema(Some(schema_ref("StreamEvent")))
                    .build(),
            );
        }
        builder = builder.response(status.to_string(), response.build());
    }
    let mut errors: Vec<u16> = operation.errors.to_vec();
    if operation
        .headers
        .iter()
        .any(|(name, _)| *name == IDEMPOTENCY.0)
    {
        // A malformed key; the same key with another body; the same key still in flight.
        errors.extend([400, 409, 422]);
    }
    if let Some(scope) = operation.scope {
        errors.extend([401, 403, 429]);
        // OpenAPI 3.1 lets an API key's requirement name the roles it needs: the scope.
        builder = builder.security(SecurityRequirement::new("api_key", [scope.as_str()]));
    }
    errors.push(503);
    errors.sort_unstable();
    errors.dedup();
    for status in errors {
        let content = if v2 {
            ("application/problem+json", json_content("Problem"))
        } else {
            ("application/json", json_content("V1Error"))
        };
        builder = builder.response(
            status.to_string(),
            ResponseBuilder::new()
                .description(error_meaning(status))
                .content(content.0, content.1)
                .build(),
        );
    }
    builder.build()
}

/// `v1_post_verifications_id_cancel`, from the method and path.
fn operation_id(operation: &Operation) -> String {
    let method = match operation.method {
        HttpMethod::Get => "get",
        HttpMethod::Post => "post",
        HttpMethod::Patch => "patch",
        HttpMethod::Put => "put",
        HttpMethod::Delete => "delete",
        _ => "other",
    };
    let path: String = operation
        .path
        .trim_start_matches('/')
        .replace(['/', '-'], "_")
        .replace(['{', '}'], "");
    let (version, rest) = path.split_once('_').unwrap_or(("", &path));
    if version.starts_with('v') {
        format!("{version}_{method}_{rest}")
    } else {
        format!("{method}_{path}")
    }
}
