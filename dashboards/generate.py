#!/usr/bin/env python3
"""Generates the Grafana dashboards in this directory (run it after changing a panel).

Every panel has a title, a description and a unit, reads from the `datasource` template
variable, and uses $__rate_interval in rate queries. tests/prometheus.rs evaluates every
expression against a real Prometheus scraping a real erpsync.
"""
import json
import pathlib

DS = {"type": "prometheus", "uid": "${datasource}"}
HERE = pathlib.Path(__file__).parent


def panel(pid, title, desc, exprs, unit, x, y, w=12, h=8):
    targets = [
        {"refId": chr(ord("A") + i), "expr": e, "legendFormat": legend, "datasource": DS}
        for i, (e, legend) in enumerate(exprs)
    ]
    return {
        "id": pid, "type": "timeseries", "title": title, "description": desc, "datasource": DS,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "gridPos": {"h": h, "w": w, "x": x, "y": y}, "targets": targets,
    }


def dashboard(uid, title, panels, extra_vars=()):
    variables = [{"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
                  "current": {}, "hide": 0}]
    variables += list(extra_vars)
    return {"uid": uid, "title": title, "tags": ["erpsync"], "timezone": "browser", "schemaVersion": 39,
            "version": 1, "editable": True, "refresh": "30s", "time": {"from": "now-3h", "to": "now"},
            "templating": {"list": variables}, "annotations": {"list": []}, "panels": panels}


RI = "$__rate_interval"
overview = dashboard("erpsync-overview", "erpsync — overview", [
    panel(1, "Items finished", "Work items reaching a terminal state per second, by outcome.",
          [(f'sum by (outcome) (rate(erpsync_items_total[{RI}]))', "{{outcome}}")], "ops", 0, 0),
    panel(2, "Error ratio", "Share of finished items that failed or were dead-lettered.",
          [(f'sum(rate(erpsync_items_total{{outcome!="succeeded"}}[{RI}])) / clamp_min(sum(rate(erpsync_items_total[{RI}])), 1e-9)', "error ratio")],
          "percentunit", 12, 0),
    panel(3, "Stage duration p95", "95th percentile of pipeline stage durations (serializer, renderer, matcher).",
          [(f'histogram_quantile(0.95, sum by (le, stage) (rate(erpsync_stage_duration_seconds_bucket[{RI}])))', "{{stage}}")],
          "s", 0, 8),
    panel(4, "Queue depth", "Messages in the queue by state, sampled from the queue backend every few seconds.",
          [('sum by (state) (erpsync_queue_depth_messages)', "{{state}}")], "short", 12, 8),
    panel(5, "Oldest message age", "Age of the oldest message still on the queue: how far behind the daemon is.",
          [('max(erpsync_queue_oldest_message_age_seconds)', "oldest")], "s", 0, 16),
    panel(6, "ERP throughput", "ERP calls per second by ERP kind and outcome.",
          [(f'sum by (erp, outcome) (rate(erpsync_erp_request_duration_seconds_count[{RI}]))', "{{erp}} {{outcome}}")],
          "reqps", 12, 16),
    panel(7, "ERP latency p95", "95th percentile of ERP call latency by ERP kind.",
          [(f'histogram_quantile(0.95, sum by (le, erp) (rate(erpsync_erp_request_duration_seconds_bucket[{RI}])))', "{{erp}}")],
          "s", 0, 24),
    panel(8, "Concurrency slots in use", "ERP calls in flight per connection as a share of its concurrency limit.",
          [('sum by (connection) (erpsync_connection_in_flight_calls) / sum by (connection) (erpsync_connection_concurrency_limit)', "{{connection}}")],
          "percentunit", 12, 24),
    panel(9, "Retries and throttles", "Rescheduled attempts by error kind, and 429 answers by ERP kind.",
          [(f'sum by (error_kind) (rate(erpsync_retries_total[{RI}]))', "retry {{error_kind}}"),
           (f'sum by (erp) (rate(erpsync_erp_throttled_total[{RI}]))', "throttled {{erp}}")], "ops", 0, 32),
    panel(10, "Actor restarts", "Supervisor restarts by actor kind; a steady climb is a crash loop.",
          [(f'sum by (actor) (increase(erpsync_actor_restarts_total[{RI}]))', "{{actor}}")], "short", 12, 32),
    panel(11, "Dead-letter growth", "Messages moved to the dead-letter store, by reason.",
          [(f'sum by (reason) (increase(erpsync_queue_messages_dead_lettered_total[{RI}]))', "{{reason}}")],
          "short", 0, 40),
    panel(12, "Status writes", "StatusActor transactions: p95 latency and p95 batch size.",
          [(f'histogram_quantile(0.95, sum by (le) (rate(erpsync_status_write_duration_seconds_bucket[{RI}])))', "p95 latency (s)"),
           (f'histogram_quantile(0.95, sum by (le) (rate(erpsync_status_write_batch_size_bucket[{RI}])))', "p95 batch size")],
          "short", 12, 40),
    panel(13, "Queue errors", "Failed queue calls per second by call (send, receive, delete, heartbeat, return, depth): SQS throttling or an outage, or the embedded queue's database.",
          [(f'sum by (op) (rate(erpsync_queue_errors_total[{RI}]))', "{{op}}")], "ops", 0, 48),
    panel(14, "SQS requests", "Requests sent to SQS per second by API, retries included: each is billed. Messages per batch call are the received and deleted rates over these. Zero on the embedded queue.",
          [(f'sum by (api) (rate(erpsync_sqs_requests_total[{RI}]))', "{{api}}"),
           (f'sum(rate(erpsync_queue_messages_received_total[{RI}]))', "messages received")], "reqps", 12, 48),
    panel(15, "SQLite lock waits", "Retries of an SQLite statement that found a lock another connection held (20 µs apart for the first 2 ms, then 1 ms). A steady climb means writers queue behind each other: the embedded store is near its limit. Zero on PostgreSQL.",
          [(f'sum(rate(erpsync_sqlite_busy_waits_total[{RI}]))', "waits")], "ops", 0, 56),
    panel(16, "Parked connections", "Connections whose items wait unattempted, by reason (auth_revoked: the ERP refused the credentials for good; operator: parked by hand). `erpsync connections` lists them.",
          [('sum by (reason) (erpsync_connection_parked)', "{{reason}}")], "short", 12, 56),
])

conn_var = {"name": "connection", "label": "Connection", "type": "query", "datasource": DS,
            "query": {"query": "label_values(erpsync_connection_concurrency_limit, connection)", "refId": "connection"},
            "definition": "label_values(erpsync_connection_concurrency_limit, connection)",
            "refresh": 2, "includeAll": False, "multi": False, "current": {}, "hide": 0, "sort": 1}
C = 'connection="$connection"'
connection = dashboard("erpsync-connection", "erpsync — connection", [
    panel(1, "Items finished", "Terminal items per second on this connection, by outcome.",
          [(f'sum by (outcome) (rate(erpsync_connection_items_total{{{C}}}[{RI}]))', "{{outcome}}")], "ops", 0, 0),
    panel(2, "Slots in use vs limit", "ERP calls in flight on this connection against its concurrency limit.",
          [(f'sum(erpsync_connection_in_flight_calls{{{C}}})', "in flight"),
           (f'sum(erpsync_connection_concurrency_limit{{{C}}})', "limit")], "short", 12, 0),
    panel(3, "ERP latency", "p50 and p95 of this connection's ERP calls.",
          [(f'histogram_quantile(0.5, sum by (le) (rate(erpsync_connection_erp_request_duration_seconds_bucket{{{C}}}[{RI}])))', "p50"),
           (f'histogram_quantile(0.95, sum by (le) (rate(erpsync_connection_erp_request_duration_seconds_bucket{{{C}}}[{RI}])))', "p95")],
          "s", 0, 8),
    panel(4, "Retries by kind", "Rescheduled attempts on this connection, by error kind (throttled, transient, auth…).",
          [(f'sum by (error_kind) (rate(erpsync_connection_retries_total{{{C}}}[{RI}]))', "{{error_kind}}")], "ops", 12, 8),
], [conn_var])

for name, dash in [("erpsync-overview.json", overview), ("erpsync-connection.json", connection)]:
    (HERE / name).write_text(json.dumps(dash, indent=2, ensure_ascii=False) + "\n")
