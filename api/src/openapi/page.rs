//! `GET /docs`: the API reference as one HTML page, rendered here from the OpenAPI
//! document (no CDN, no script). Error entries carry the anchors that v2's problem `type`
//! links point at (`/docs#error-<code>`).

use handlebars::Handlebars;
use serde::Serialize;
use serde_json::{Value, json};
use std::sync::LazyLock;

use crate::ApiError;

const TEMPLATE: &str = r##"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{title}} API reference</title>
<style>
body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:0 auto;padding:1rem 1.5rem;color:#1d2330}
h1{margin-bottom:0}h2{border-bottom:1px solid #ccd;margin-top:2.5rem}
.op{border:1px solid #dde;border-radius:6px;padding:.6rem .9rem;margin:.8rem 0}
.method{display:inline-block;min-width:4.2rem;font-weight:700;font-family:monospace}
code,pre{font-family:ui-monospace,monospace;font-size:13px}pre{background:#f4f5f8;padding:.6rem;overflow:auto}
table{border-collapse:collapse}td,th{padding:.2rem .6rem;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
.muted{color:#667}
@media (prefers-color-scheme:dark){body{background:#14161c;color:#dfe3ea}.op{border-color:#334}pre{background:#1f232c}td,th{border-color:#2a2e38}}
</style></head><body>
<h1>{{title}} API</h1>
<p class="muted">Version {{version}} · <a href="/openapi.json">openapi.json</a> (OpenAPI 3.1)</p>
<p>{{description}}</p>
<p>Authenticate with <code>Authorization: Bearer &lt;key&gt;</code>. Every answer to an authenticated
request carries <code>RateLimit-Limit</code>, <code>RateLimit-Remaining</code> and <code>RateLimit-Reset</code>.</p>
{{#each tags}}
<h2 id="tag-{{name}}">{{name}}</h2><p class="muted">{{description}}</p>
{{#each operations}}
<div class="op" id="{{id}}">
<div><span class="method">{{method}}</span> <code>{{path}}</code>{{#if authenticated}} <span class="muted">· key</span>{{/if}}</div>
<p>{{summary}}</p>
{{#if parameters}}<table><tr><th>parameter</th><th>in</th><th></th></tr>
{{#each parameters}}<tr><td><code>{{name}}</code></td><td>{{location}}</td><td>{{description}}</td></tr>{{/each}}</table>{{/if}}
{{#if body}}<p>Body: <a href="#schema-{{body}}"><code>{{body}}</code></a></p>{{/if}}
<table><tr><th>status</th><th></th><th>body</th></tr>
{{#each responses}}<tr><td>{{status}}</td><td>{{description}}</td><td>{{#if schema}}<a href="#schema-{{schema}}"><code>{{schema}}</code></a>{{/if}}</td></tr>{{/each}}
</table></div>
{{/each}}
{{/each}}
<h2 id="errors">Errors</h2>
<p>v1: <code>{"error": {"code", "message"}}</code>. v2: problem details, whose <code>type</code> links here.</p>
<table><tr><th>code</th><th>status</th><th>for example</th></tr>
{{#each errors}}<tr id="error-{{code}}"><td><code>{{code}}</code></td><td>{{status}}</td><td>{{example}}</td></tr>{{/each}}
</table>
<h2 id="schemas">Schemas</h2>
{{#each schemas}}<h3 id="schema-{{name}}"><code>{{name}}</code></h3><pre>{{json}}</pre>{{/each}}
</body></html>"##;

#[derive(Serialize)]
struct ErrorEntry {
    code: &'static str,
    status: u16,
    example: String,
}

fn render() -> String {
    let document = serde_json::to_value(super::document()).unwrap_or(Value::Null);
    let mut tags: Vec<Value> = document["tags"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|tag| json!({ "name": tag["name"], "description": tag["description"], "operations": [] }))
        .collect();
    if let Some(paths) = document["paths"].as_object() {
        for (path, item) in paths {
            let Some(methods) = item.as_object() else {
                continue;
            };
            for (method, operation) in methods {
                let entry = operation_entry(path, method, operation);
                let tag = operation["tags"][0].as_str().unwrap_or_default();
                if let Some(group) = tags.iter_mut().find(|t| t["name"] == tag)
                    && let Some(list) = group["operations"].as_array_mut()
                {
                    list.push(entry);
                }
            }
        }
    }
    let schemas: Vec<Value> = document["components"]["schemas"]
        .as_object()
        .map(|schemas| {
            schemas
                .iter()
                .map(|(name, schema)| {
                    json!({ "name": name, "json": serde_json::to_string_pretty(schema).unwrap_or_default() })
                })
                .collect()
        })
        .unwrap_or_default();
    let errors: Vec<ErrorEntry> = ApiError::examples()
        .iter()
        .map(|error| ErrorEntry {
            code: error.code(),
            status: error.status().as_u16(),
            example: error.to_string(),
        })
        .collect();
    let context = json!({
        "title": document["info"]["title"],
        "version": document["info"]["version"],
        "description": document["info"]["description"],
        "tags": tags,
        "schemas": schemas,
        "errors": errors,
    });
    let mut handlebars = Handlebars::new();
    handlebars.set_strict_mode(false);
    handlebars
        .render_template(TEMPLATE, &context)
        .unwrap_or_else(|error| format!("cannot render the reference: {error}"))
}

fn operation_entry(path: &str, method: &str, operation: &Value) -> Value {
    let schema_name = |value: &Value| {
        value["$ref"]
            .as_str()
            .and_then(|r| r.rsplit('/').next())
            .map(str::to_owned)
    };
    let body = operation["requestBody"]["content"]["application/json"]["schema"].clone();
    let responses: Vec<Value> = operation["responses"]
        .as_object()
        .map(|responses| {
            responses
                .iter()
                .map(|(status, response)| {
                    let schema = response["content"]
                        .as_object()
                        .and_then(|content| content.values().next())
                        .and_then(|media| schema_name(&media["schema"]));
                    json!({ "status": status, "description": response["description"], "schema": schema })
                })
                .collect()
        })
        .unwrap_or_default();
    let parameters: Vec<Value> = operation["parameters"]
        .as_array()
        .map(|parameters| {
            parameters
                .iter()
                .map(|p| json!({ "name": p["name"], "location": p["in"], "description": p["description"] }))
                .collect()
        })
        .unwrap_or_default();
    json!({
        "id": operation["operationId"],
        "method": method.to_uppercase(),
        "path": path,
        "summary": operation["summary"],
        "authenticated": operation.get("security").is_some(),
        "parameters": parameters,
        "body": schema_name(&body),
        "responses": responses,
    })
}

/// The page, rendered once.
pub fn reference_page() -> &'static str {
    static PAGE: LazyLock<String> = LazyLock::new(render);
    &PAGE
}
