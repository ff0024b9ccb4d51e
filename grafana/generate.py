#!/usr/bin/env python3
"""Writes grafana/dashboards/*.json. The dashboards are data; this keeps their layout and
datasource in one place. Run it after changing a panel: python3 grafana/generate.py"""
import json
import pathlib

DATASOURCE = {"type": "prometheus", "uid": "namaskah-prometheus"}
OUT = pathlib.Path(__file__).parent / "dashboards"


def panel(title, exprs, kind="timeseries", unit="short", legend=None, width=12, height=8, description=""):
    if isinstance(exprs, str):
        exprs = [exprs]
    targets = [
        {"datasource": DATASOURCE, "expr": expr, "refId": chr(ord("A") + i),
         "legendFormat": (legend[i] if legend else "__auto")}
        for i, expr in enumerate(exprs)
    ]
    return {"type": kind, "title": title, "description": description, "datasource": DATASOURCE,
            "targets": targets, "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "options": {}, "gridPos": {"w": width, "h": height}}


def dashboard(uid, title, panels, description):
    x = y = 0
    row_height = 0
    for i, p in enumerate(panels, start=1):
        p["id"] = i
        w, h = p["gridPos"]["w"], p["gridPos"]["h"]
        if x + w > 24:
            x, y = 0, y + row_height
            row_height = 0
        p["gridPos"].update({"x": x, "y": y})
        x += w
        row_height = max(row_height, h)
    return {"uid": uid, "title": title, "description": description, "tags": ["namaskah"],
            "timezone": "utc", "schemaVersion": 39, "version": 1, "refresh": "30s",
            "time": {"from": "now-6h", "to": "now"}, "editable": False, "panels": panels}


def quantile(q, metric, by=""):
    group = f"le{', ' + by if by else ''}"
    return f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket[5m])))"


DASHBOARDS = {
    "overview": dashboard("namaskah-overview", "Namaskah · pipeline overview", [
        panel("Verifications accepted per second", "sum(rate(namaskah_charges_total[5m]))", unit="reqps"),
        panel("Verifications finished per second", "sum by (status) (rate(namaskah_verifications_finished_total[5m]))", unit="reqps"),
        panel("Acceptance → code (end to end)", [quantile(q, "namaskah_verification_completion_seconds") for q in (0.5, 0.95, 0.99)],
              unit="s", legend=["p50", "p95", "p99"]),
        panel("Ready messages per queue", 'sum by (queue) (namaskah_queue_messages{state="ready"})'),
        panel("Parked messages", 'sum by (queue) (namaskah_queue_messages{state="parked"})', kind="stat", width=6),
        panel("Errors per second", "sum by (role, kind) (rate(namaskah_errors_total[5m]))", unit="reqps", width=6),
        panel("Outbox lag", "max(namaskah_outbox_lag_seconds)", kind="stat", unit="s", width=6),
        panel("Scheduler leader", "max(namaskah_scheduler_leader)", kind="stat", width=6),
    ], "Throughput, end-to-end latency, queues, parked messages and errors at a glance."),
    "api": dashboard("namaskah-api", "Namaskah · API", [
        panel("Requests per second by route", "sum by (route, method) (rate(namaskah_http_requests_total[5m]))", unit="reqps", width=24),
        panel("Error responses per second", 'sum by (route, status) (rate(namaskah_http_requests_total{status=~"4..|5.."}[5m]))', unit="reqps"),
        panel("Latency", [quantile(q, "namaskah_http_request_duration_seconds") for q in (0.5, 0.95, 0.99)],
              unit="s", legend=["p50", "p95", "p99"]),
        panel("p99 latency by route", quantile(0.99, "namaskah_http_request_duration_seconds", "route"), unit="s", width=24),
        panel("Rate-limited requests per second by tier", "sum by (tier) (rate(namaskah_rate_limited_total[5m]))", unit="reqps",
              description="429s from the per-key limits; a jump for one tier is one integrator over its plan"),
        panel("Cache hit ratio", 'sum by (cache) (rate(namaskah_cache_requests_total{result="hit"}[5m])) / sum by (cache) (rate(namaskah_cache_requests_total[5m]))',
              unit="percentunit", description="api_keys, tiers and catalogue caches; a drop means frequent invalidations or a cold replica"),
        panel("Rate-limit decisions without Redis", "sum(rate(namaskah_rate_limit_fallbacks_total[5m]))", unit="reqps",
              description="non-zero while Redis does not answer: each replica then limits on its own", width=24),
    ], "Requests, statuses, latency, rate limits and caches of the job submission API."),
    "workers": dashboard("namaskah-workers", "Namaskah · workers", [
        panel("Messages handled per second", "sum by (queue, outcome) (rate(namaskah_jobs_total[5m]))", unit="reqps", width=24),
        panel("Handling time p99 per queue", quantile(0.99, "namaskah_job_duration_seconds", "queue"), unit="s"),
        panel("Consumers per queue", "max by (queue) (namaskah_queue_consumers)"),
        panel("Outbox published per second", "sum(rate(namaskah_outbox_published_total[5m]))", unit="reqps"),
        panel("Outbox unsent", "max(namaskah_outbox_unsent)"),
        panel("Scheduler runs", "sum by (job, outcome) (increase(namaskah_scheduler_runs_total[1h]))", width=24),
    ], "What the workers, the outbox relay and the scheduler do."),
    "providers": dashboard("namaskah-providers", "Namaskah · providers", [
        panel("Calls per second by outcome", "sum by (provider, outcome) (rate(namaskah_provider_requests_total[5m]))", unit="reqps", width=24),
        panel("Unavailable share", 'sum by (provider) (rate(namaskah_provider_requests_total{outcome="unavailable"}[5m])) / sum by (provider) (rate(namaskah_provider_requests_total[5m]))', unit="percentunit"),
        panel("Latency p95 by operation", quantile(0.95, "namaskah_provider_request_duration_seconds", "provider, operation"), unit="s"),
    ], "SMS providers: calls, failures and latency."),
    "webhooks": dashboard("namaskah-webhooks", "Namaskah · webhooks", [
        panel("Attempts per second", "sum by (outcome) (rate(namaskah_webhook_attempts_total[5m]))", unit="reqps"),
        panel("Failure share", 'sum(rate(namaskah_webhook_attempts_total{outcome="failed"}[15m])) / sum(rate(namaskah_webhook_attempts_total[15m]))', unit="percentunit"),
        panel("Event commit → delivery", [quantile(q, "namaskah_webhook_delivery_seconds") for q in (0.5, 0.95, 0.99)],
              unit="s", legend=["p50", "p95", "p99"]),
        panel("Attempt duration p95", quantile(0.95, "namaskah_webhook_attempt_duration_seconds"), unit="s"),
    ], "Deliveries to customer endpoints."),
    "business": dashboard("namaskah-business", "Namaskah · business", [
        panel("Verifications by status (now)", "sum by (status) (namaskah_verifications)", width=24),
        panel("Revenue (charged − refunded), cents per hour", "sum(increase(namaskah_charged_cents_total[1h])) - sum(increase(namaskah_refunded_cents_total[1h]))"),
        panel("Refunds per hour", "sum(increase(namaskah_refunds_total[1h]))"),
        panel("Charged cents per hour", "sum(increase(namaskah_charged_cents_total[1h]))"),
        panel("Invariant violations", "max(namaskah_invariant_violations)", kind="stat"),
    ], "Verifications, refunds and revenue."),
}

if __name__ == "__main__":
    OUT.mkdir(exist_ok=True)
    for name, board in DASHBOARDS.items():
        (OUT / f"{name}.json").write_text(json.dumps(board, indent=2) + "\n")
        print(f"wrote {OUT / (name + '.json')}")
