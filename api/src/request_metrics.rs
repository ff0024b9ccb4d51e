//! Every request counted and timed by route, for Prometheus.

/// Counts and times every request, by route template (ids replaced by `{id}`, so the
/// number of series stays small), method and status.
pub(crate) fn record_request(info: warp::log::Info<'_>) {
    let route = route_template(info.path());
    let method = info.method().as_str().to_owned();
    metrics::counter!("namaskah_http_requests_total",
        "route" => route.clone(), "method" => method.clone(), "status" => info.status().as_u16().to_string())
    .increment(1);
    metrics::histogram!("namaskah_http_request_duration_seconds", "route" => route, "method" => method)
        .record(info.elapsed().as_secs_f64());
}

fn route_template(path: &str) -> String {
    let known = [
        "v1",
        "v2",
        "verifications",
        "batch",
        "events",
        "cancel",
        "account",
        "export",
        "services",
        "webhook-endpoints",
        "webhook-messages",
        "rotate-secret",
        "test",
        "recover",
        "attempts",
        "replay",
        "api-keys",
        "payments",
        "paystack",
        "stripe",
        "webhook",
        "referrals",
        "claim",
        "subscription",
        "usage",
        "brand",
        "tenant",
        "prices",
        "healthz",
        "readyz",
        "openapi.json",
        "docs",
    ];
    let segments: Vec<&str> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|segment| {
            if known.contains(&segment) {
                segment
            } else {
                "{id}"
            }
        })
        .collect();
    format!("/{}", segments.join("/"))
}
