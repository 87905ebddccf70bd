#!/usr/bin/env python3
"""Local simulator of the OpenAI and Anthropic organization usage and cost APIs.

Serves, on 127.0.0.1 only, the wire formats of ../shared/provider-apis.md:

  OpenAI     GET /v1/organization/usage/completions | /usage/embeddings | /costs
             Authorization: Bearer <key>; start_time/end_time Unix seconds;
             group_by[] brackets; envelope {"object":"page","data":[...],
             "has_more","next_page"}, buckets {"object":"bucket",...}.
  Anthropic  GET /v1/organizations/usage_report/messages | /cost_report
             x-api-key + anthropic-version; starting_at/ending_at RFC 3339;
             envelope without "object"; cost amount a decimal string in cents.

Data is deterministic: a function of the key and the UTC day, so tests can
ask /_sim/expected for exact totals.  Pages hold `limit` daily buckets; the
cursor is opaque base64 with '=' (it must come back URL-encoded).

Keys: OpenAI keys start with "sk-admin-", Anthropic keys with
"sk-ant-admin"; anything else gets 401.  Failure modes are set per key:

  POST /_sim/mode {"key": K, "mode": M, "count": N, "seconds": S}
    429            N times 429 with Retry-After: S, then normal
    429_bare       N times 429 without Retry-After
    500            N times 500
    401            always 401 (a revoked key)
    slow           every response delayed S seconds (N times, or always if N=0)
    malformed      200 application/json with a truncated body
    wrong_type     200 text/html
    oversized      200 JSON with a 2 MB filler field
    filler         200 JSON with a filler field of N (count) kB in every page
    partial        the last bucket of each response holds half its values
    fuzz           a hostile provider: {"kind": K, "seed": S} picks one of the
                   mutation kinds of FUZZ_KINDS below and, seeded, the endpoint,
                   bucket, result and field it hits (the first page of that
                   endpoint; some kinds hit every page or the HTTP exchange)
    none           back to normal
  GET  /_sim/fuzz_kinds      every mutation kind: {"kind": [verdict, target]}
  GET  /_sim/requests        every request seen: method, path, query, auth ok, status
  GET  /_sim/arrivals        every provider request as it arrived (also those still held)
  POST /_sim/reset           forget modes and the request log
  GET  /_sim/expected?key=K&from=YYYY-MM-DD&to=YYYY-MM-DD
                             exact totals the API serves for those days

A custom usage service (the README's worked example of a custom usage source):

  GET /metrics/api-usage?from=F&to=T[&cursor=C][&limit=N]
             usage per UTC day and API-key purpose: {"period": {...},
             "usage": [{"date", "purpose", "requests", "cost"}], "meta":
             {"next_cursor": C|null}}; N days a page (default 2)
  GET /api-keys?from=F&to=T[&page=P][&per_page=N]
             per key: {"keys": [{"id", "name", "purpose", "total_requests"}],
             "page": P, "has_more", "next_page": "P+1"|null}; pages from 1,
             N keys a page (default 2), a page past the end is empty
  F and T are RFC 3339 (UTC) or Unix seconds.  The key is accepted as
  "Authorization: Bearer K", "X-Api-Key: K" or "?api_key=K"; it must start
  with "svc-".  The failure modes above apply per key; mode "cfuzz"
  {"kind": K} serves one of CUSTOM_FUZZ_KINDS on the first page (of each
  endpoint).
  GET  /_sim/custom_expected?key=K&from=YYYY-MM-DD&to=YYYY-MM-DD
                             exact totals of those days

Usage: provider_sim.py PORTFILE  (binds an ephemeral port, writes it to PORTFILE and
its pid to PORTFILE.pid)
Stops on SIGTERM, or by itself after --max-seconds (default 3600).
"""
import base64
import gzip
import os
import random
import socket
import struct
import datetime as dt
import hashlib
import json
import sys
import threading
import time
import urllib.parse
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DAY = 86400
STATE_LOCK = threading.Lock()
MODES = {}          # key -> {"mode":..., "count":..., "seconds":...}
REQUESTS = []       # request log (written when a response is decided)
ARRIVALS = []       # every provider request as it arrives: path, time

OPENAI_GROUPS = {
    "completions": {"project_id", "user_id", "api_key_id", "model", "batch", "service_tier"},
    "embeddings": {"project_id", "user_id", "api_key_id", "model"},
    "costs": {"project_id", "line_item", "api_key_id"},
}
ANTHROPIC_GROUPS = {
    "messages": {"api_key_id", "workspace_id", "model", "service_tier", "context_window",
                 "inference_geo", "account_id", "service_account_id"},
    "cost_report": {"workspace_id", "description"},
}


def seed_of(key):
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16)


# ---------------------------------------------------------------- data
def openai_completion_rows(key, day):
    s = seed_of(key)
    rows = []
    for mi, model in enumerate(["gpt-4o", "gpt-4o-mini"]):
        for pi, project in enumerate(["proj_alpha", "proj_beta"]):
            for batch in ([False, True] if (mi, pi) == (1, 0) else [False]):
                base = 1000 * (1 + (s + day + mi + pi) % 7) * (mi + 1) * (pi + 1) + (100 if batch else 0)
                rows.append({
                    "object": "organization.usage.completions.result",
                    "input_tokens": base,
                    "input_cached_tokens": base // 4,
                    "input_cache_write_tokens": base // 20,
                    "output_tokens": base // 5,
                    "input_audio_tokens": 0,
                    "output_audio_tokens": 0,
                    "num_model_requests": 10 + (s + day + mi + pi) % 13,
                    "project_id": project,
                    "user_id": None,
                    "api_key_id": "key_%d" % (s % 1000),
                    "model": model,
                    "batch": batch,
                    "service_tier": None,
                })
    return rows


def openai_embedding_rows(key, day):
    s = seed_of(key)
    return [{
        "object": "organization.usage.embeddings.result",
        "input_tokens": 5000 * (1 + (s + day) % 5),
        "num_model_requests": 3 + (s + day) % 4,
        "project_id": "proj_alpha",
        "user_id": None,
        "api_key_id": "key_%d" % (s % 1000),
        "model": "text-embedding-3-small",
    }]


def openai_cost_rows(key, day):
    s = seed_of(key)
    rows = []
    for pi, project in enumerate(["proj_alpha", "proj_beta"]):
        for li, item in enumerate(["gpt-4o, input", "gpt-4o, output", "gpt-4o-mini, input"]):
            micro = 1000 + ((s + day * 7 + pi * 13 + li * 29) % 90000)
            value = float(Decimal(micro) / Decimal(1000000) + Decimal("0.5") * li)
            rows.append({
                "object": "organization.costs.result",
                "amount": {"value": value, "currency": "usd"},
                "line_item": item,
                "project_id": project,
                "api_key_id": None,
                "quantity": None,
                "quantity_unit": None,
            })
    return rows


def anthropic_message_rows(key, day):
    s = seed_of(key)
    rows = []
    for mi, model in enumerate(["claude-sonnet-4-5", "claude-haiku-4-5"]):
        for wi, ws in enumerate(["wrkspc_alpha", None]):
            base = 2000 * (1 + (s + day + mi + wi) % 6) * (mi + 1)
            rows.append({
                "uncached_input_tokens": base,
                "cache_creation": {"ephemeral_1h_input_tokens": base // 10, "ephemeral_5m_input_tokens": base // 8},
                "cache_read_input_tokens": base // 2,
                "output_tokens": base // 3,
                "server_tool_use": {"web_search_requests": 0},
                "api_key_id": "apikey_%d" % (s % 1000),
                "workspace_id": ws,
                "model": model,
                "service_tier": "standard",
                "context_window": None,
            })
    return rows


def anthropic_cost_rows(key, day):
    s = seed_of(key)
    rows = []
    for mi, (model, desc) in enumerate([("claude-sonnet-4-5", "Claude Sonnet 4.5 Usage"),
                                        ("claude-haiku-4-5", "Claude Haiku 4.5 Usage")]):
        for ti, (tt, label) in enumerate([("uncached_input_tokens", "Input Tokens"),
                                          ("output_tokens", "Output Tokens")]):
            for wi, ws in enumerate(["wrkspc_alpha", None]):
                cents = Decimal(10000 + (s + day * 3 + mi * 17 + ti * 5 + wi * 11) % 500000) / Decimal(1000)
                rows.append({
                    "currency": "USD",
                    "amount": str(cents),
                    "workspace_id": ws,
                    "description": "%s - %s" % (desc, label),
                    "cost_type": "tokens",
                    "context_window": "0-200k",
                    "model": model,
                    "service_tier": "standard",
                    "token_type": tt,
                    "inference_geo": "global",
                })
    return rows


GENERATORS = {
    ("openai", "completions"): openai_completion_rows,
    ("openai", "embeddings"): openai_embedding_rows,
    ("openai", "costs"): openai_cost_rows,
    ("anthropic", "messages"): anthropic_message_rows,
    ("anthropic", "cost_report"): anthropic_cost_rows,
}


def halve(rows):
    out = []
    for r in rows:
        r = json.loads(json.dumps(r))
        for k, v in list(r.items()):
            if isinstance(v, int) and not isinstance(v, bool):
                r[k] = v // 2
            elif k == "cache_creation":
                r[k] = {a: b // 2 for a, b in v.items()}
            elif k == "amount" and isinstance(v, dict):
                v["value"] = float(Decimal(repr(v["value"])) / 2)
            elif k == "amount":
                r[k] = str(Decimal(v) / 2)
        out.append(r)
    return out


# ---------------------------------------------------------------- expected totals
def expected(key, day_from, day_to):
    provider = "anthropic" if key.startswith("sk-ant-admin") else "openai"
    days = range(day_from, day_to + 1)
    out = {}
    if provider == "openai":
        for ep in ("completions", "embeddings"):
            rows = [r for d in days for r in GENERATORS[("openai", ep)](key, d)]
            out[ep] = {
                "rows": len(rows),
                "input_tokens": sum(r["input_tokens"] for r in rows),
                "cached_input_tokens": sum(r.get("input_cached_tokens", 0) for r in rows),
                "cache_write_tokens": sum(r.get("input_cache_write_tokens", 0) for r in rows),
                "output_tokens": sum(r.get("output_tokens", 0) for r in rows),
                "requests": sum(r["num_model_requests"] for r in rows),
            }
        rows = [r for d in days for r in GENERATORS[("openai", "costs")](key, d)]
        out["costs"] = {"rows": len(rows), "usd": str(sum(Decimal(repr(r["amount"]["value"])) for r in rows))}
    else:
        rows = [r for d in days for r in GENERATORS[("anthropic", "messages")](key, d)]
        cw = sum(r["cache_creation"]["ephemeral_1h_input_tokens"] + r["cache_creation"]["ephemeral_5m_input_tokens"]
                 for r in rows)
        out["messages"] = {
            "rows": len(rows),
            "input_tokens": sum(r["uncached_input_tokens"] + r["cache_read_input_tokens"] for r in rows) + cw,
            "cached_input_tokens": sum(r["cache_read_input_tokens"] for r in rows),
            "cache_write_tokens": cw,
            "output_tokens": sum(r["output_tokens"] for r in rows),
            "requests": 0,
        }
        rows = [r for d in days for r in GENERATORS[("anthropic", "cost_report")](key, d)]
        out["costs"] = {"rows": len(rows), "usd": str(sum(Decimal(r["amount"]) for r in rows) / 100)}
    return out


# ---------------------------------------------------------------- custom service
SVC_KEYS = [("key_01", "checkout"), ("key_02", "checkout"), ("key_03", "search"),
            ("key_04", "support"), ("key_05", "support")]
SVC_PRICE = {"checkout": Decimal("0.0004"), "search": Decimal("0.0002"), "support": Decimal("0.0001")}
CUSTOM_FUZZ_KINDS = ["truncated", "invalid_utf8", "nul_byte", "not_json", "deep_nesting", "cursor_repeat",
                     "huge_cursor", "cursor_wrong_type", "cursor_control_chars", "endless_pages",
                     "has_more_without_next", "items_not_array", "negative_requests", "requests_string",
                     "requests_nan", "duplicate_row", "date_outside_window", "purpose_control_char"]


def svc_requests(key, i, day):
    return 50 + (seed_of(key) + day * 7 + i * 13) % 97


def svc_day_usage(key, day):
    """[(purpose, requests, cost)] of one UTC day"""
    out = {}
    for i, (_, purpose) in enumerate(SVC_KEYS):
        out[purpose] = out.get(purpose, 0) + svc_requests(key, i, day)
    return [(p, n, n * SVC_PRICE[p]) for p, n in sorted(out.items())]


def svc_expected(key, day_from, day_to):
    days = range(day_from, day_to + 1)
    by_purpose, by_key, cost = {}, {}, Decimal(0)
    for d in days:
        for p, n, c in svc_day_usage(key, d):
            by_purpose[p] = by_purpose.get(p, 0) + n
            cost += c
        for i, (k, _) in enumerate(SVC_KEYS):
            by_key[k] = by_key.get(k, 0) + svc_requests(key, i, d)
    return {"requests": sum(by_purpose.values()), "by_purpose": by_purpose, "by_key": by_key,
            "cost": str(cost), "usage_rows": len(days) * len(by_purpose)}


def parse_time(v):
    return int(v) if v.isdigit() else parse_rfc3339(v)


# ---------------------------------------------------------------- HTTP
def rfc3339(ts):
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(s):
    return int(dt.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc).timestamp())


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "provider-sim/1.0"

    def log_message(self, fmt, *args):
        pass

    def send(self, status, body, ctype="application/json", headers=None):
        data = body if isinstance(body, bytes) else body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def log_request_seen(self, status, auth_ok):
        u = urllib.parse.urlsplit(self.path)
        with STATE_LOCK:
            REQUESTS.append({"method": self.command, "path": u.path, "query": u.query,
                             "auth_ok": auth_ok, "status": status, "at": time.time()})

    # -------------------------------------------------------- control
    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        path = urllib.parse.urlsplit(self.path).path
        with STATE_LOCK:
            if path == "/_sim/mode":
                if body.get("mode", "none") == "none":
                    MODES.pop(body["key"], None)
                else:
                    MODES[body["key"]] = {"mode": body["mode"], "count": int(body.get("count", 0)),
                                          "seconds": float(body.get("seconds", 1)),
                                          "kind": body.get("kind"), "seed": int(body.get("seed", 0))}
                return self.send(200, "{}")
            if path == "/_sim/reset":
                MODES.clear()
                REQUESTS.clear()
                ARRIVALS.clear()
                return self.send(200, "{}")
        self.send(404, '{"error": "unknown control path"}')

    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(u.query, keep_blank_values=True)
        if u.path == "/_sim/requests":
            with STATE_LOCK:
                return self.send(200, json.dumps(REQUESTS))
        if u.path == "/_sim/arrivals":
            with STATE_LOCK:
                return self.send(200, json.dumps(ARRIVALS))
        if u.path.startswith("/v1/"):
            with STATE_LOCK:
                ARRIVALS.append({"path": u.path, "at": time.time()})
        if u.path == "/_sim/fuzz_kinds":
            return self.send(200, json.dumps(FUZZ_KINDS))
        if u.path == "/_sim/custom_expected":
            f = dt.date.fromisoformat(q["from"][0])
            t = dt.date.fromisoformat(q["to"][0])
            epoch = dt.date(1970, 1, 1)
            return self.send(200, json.dumps(svc_expected(q["key"][0], (f - epoch).days, (t - epoch).days)))
        if u.path in ("/metrics/api-usage", "/api-keys"):
            with STATE_LOCK:
                ARRIVALS.append({"path": u.path, "at": time.time()})
            return self.custom(u.path, q)
        if u.path == "/_sim/expected":
            f = dt.date.fromisoformat(q["from"][0])
            t = dt.date.fromisoformat(q["to"][0])
            epoch = dt.date(1970, 1, 1)
            return self.send(200, json.dumps(expected(q["key"][0], (f - epoch).days, (t - epoch).days)))
        if u.path.startswith("/v1/organization/"):
            return self.openai(u.path[len("/v1/organization/"):], q)
        if u.path.startswith("/v1/organizations/"):
            return self.anthropic(u.path[len("/v1/organizations/"):], q)
        self.send(404, '{"error": {"message": "not found", "type": "invalid_request_error", "param": null, "code": null}}')

    # -------------------------------------------------------- failure modes
    def apply_mode(self, key, provider):
        """Send the failure response the key's mode asks for; True when one was sent."""
        with STATE_LOCK:
            m = MODES.get(key)
            if m is None:
                return False
            mode = m["mode"]
            seconds = m["seconds"]
            if mode in ("429", "429_bare", "500", "slow") and m["count"] > 0:
                m["count"] -= 1
                if m["count"] == 0:
                    MODES.pop(key)
        err_openai = lambda msg, typ: json.dumps({"error": {"message": msg, "type": typ, "param": None, "code": None}})
        err_anthropic = lambda msg, typ: json.dumps({"type": "error", "error": {"type": typ, "message": msg},
                                                     "request_id": "req_sim"})
        err = err_openai if provider == "openai" else err_anthropic
        if mode == "429":
            self.send(429, err("Rate limit reached", "rate_limit_error"), headers={"Retry-After": str(int(seconds))})
            return True
        if mode == "429_bare":
            self.send(429, err("Rate limit reached", "rate_limit_error"))
            return True
        if mode == "500":
            self.send(500, err("The server had an error", "api_error"))
            return True
        if mode == "401":
            self.send(401, err("Invalid authentication", "authentication_error"))
            return True
        if mode == "slow":
            time.sleep(seconds)
        return False

    def finish_body(self, key, envelope, provider=None, ep=None, page=None):
        with STATE_LOCK:
            m = MODES.get(key)
            mode = m["mode"] if m else None
        if mode == "fuzz" and fuzz_target(provider, m["kind"], m["seed"]) == ep:
            return Fuzz(self, provider, ep, m["kind"], m["seed"], page).serve(envelope)
        if mode == "malformed":
            text = json.dumps(envelope)
            return self.send(200, text[: len(text) // 2])
        if mode == "wrong_type":
            return self.send(200, "<html><body>maintenance</body></html>", ctype="text/html")
        if mode == "oversized":
            envelope["filler"] = "x" * (2 * 1024 * 1024)
        if mode == "filler":
            envelope["filler"] = "x" * (m["count"] * 1024)
        if mode == "partial" and envelope["data"]:
            envelope["data"][-1]["results"] = halve(envelope["data"][-1]["results"])
        self.send(200, json.dumps(envelope))

    # -------------------------------------------------------- pagination
    @staticmethod
    def paginate(start, end, limit, page):
        first = start - start % DAY
        if page is not None:
            try:
                token = page[len("page_"):] if page.startswith("page_") else page
                first = int(base64.b64decode(token.encode()).decode())
            except Exception:
                return None
        days = []
        t = first
        while t < end and len(days) < limit:
            days.append(t)
            t += DAY
        more = t < end
        cursor = "page_" + base64.b64encode(str(t).encode()).decode() if more else None
        return days, more, cursor

    def bad_request(self, provider, msg):
        if provider == "openai":
            body = json.dumps({"error": {"message": msg, "type": "invalid_request_error", "param": None, "code": None}})
        else:
            body = json.dumps({"type": "error", "error": {"type": "invalid_request_error", "message": msg},
                               "request_id": "req_sim"})
        self.log_request_seen(400, True)
        self.send(400, body)

    def check_group_by(self, provider, q, allowed):
        if "group_by" in q:
            return "arrays must use brackets: group_by[]"
        for g in q.get("group_by[]", []):
            if g not in allowed:
                return "invalid group_by value: %s" % g
        return None

    # -------------------------------------------------------- OpenAI
    def openai(self, rest, q):
        auth = self.headers.get("Authorization", "")
        key = auth[len("Bearer "):] if auth.startswith("Bearer ") else ""
        if not key.startswith("sk-admin-"):
            self.log_request_seen(401, False)
            return self.send(401, json.dumps({"error": {"message": "Incorrect API key provided.",
                                                        "type": "invalid_request_error", "param": None,
                                                        "code": "invalid_api_key"}}))
        ep = {"usage/completions": "completions", "usage/embeddings": "embeddings", "costs": "costs"}.get(rest)
        if ep is None:
            self.log_request_seen(404, True)
            return self.send(404, json.dumps({"error": {"message": "not found", "type": "invalid_request_error",
                                                        "param": None, "code": None}}))
        try:
            start = int(q["start_time"][0])
            end = int(q.get("end_time", [str(int(time.time()))])[0])
            limit = int(q.get("limit", ["7"])[0])
        except (KeyError, ValueError):
            return self.bad_request("openai", "start_time is required and must be Unix seconds")
        if q.get("bucket_width", ["1d"])[0] != "1d":
            return self.bad_request("openai", "this simulator serves bucket_width=1d only")
        if not 1 <= limit <= (180 if ep == "costs" else 31):
            return self.bad_request("openai", "limit out of range")
        problem = self.check_group_by("openai", q, OPENAI_GROUPS[ep])
        if problem:
            return self.bad_request("openai", problem)
        if self.apply_mode(key, "openai"):
            self.log_request_seen(-1, True)
            return
        page = q.get("page", [None])[0]
        pg = self.paginate(start, end, limit, None if page and page.startswith("fuzz") else page)
        if pg is None:
            return self.bad_request("openai", "invalid page cursor")
        days, more, cursor = pg
        data = [{"object": "bucket", "start_time": d, "end_time": d + DAY,
                 "results": GENERATORS[("openai", ep)](key, d // DAY)} for d in days]
        self.log_request_seen(200, True)
        self.finish_body(key, {"object": "page", "data": data, "has_more": more, "next_page": cursor},
                         "openai", ep, page)

    # -------------------------------------------------------- Anthropic
    def anthropic(self, rest, q):
        key = self.headers.get("x-api-key", "")
        if self.headers.get("anthropic-version") != "2023-06-01":
            return self.bad_request("anthropic", "anthropic-version header is required")
        if not key.startswith("sk-ant-admin"):
            self.log_request_seen(401, False)
            return self.send(401, json.dumps({"type": "error", "error": {"type": "authentication_error",
                                                                         "message": "invalid x-api-key"},
                                              "request_id": "req_sim"}))
        ep = {"usage_report/messages": "messages", "cost_report": "cost_report"}.get(rest)
        if ep is None:
            self.log_request_seen(404, True)
            return self.send(404, json.dumps({"type": "error", "error": {"type": "not_found_error",
                                                                         "message": "not found"}}))
        try:
            start = parse_rfc3339(q["starting_at"][0])
            end = parse_rfc3339(q["ending_at"][0]) if "ending_at" in q else int(time.time())
            limit = int(q.get("limit", ["7"])[0])
        except (KeyError, ValueError):
            return self.bad_request("anthropic", "starting_at is required and must be RFC 3339")
        if not 1 <= limit <= 31:
            return self.bad_request("anthropic", "limit out of range")
        problem = self.check_group_by("anthropic", q, ANTHROPIC_GROUPS[ep])
        if problem:
            return self.bad_request("anthropic", problem)
        if self.apply_mode(key, "anthropic"):
            self.log_request_seen(-1, True)
            return
        page = q.get("page", [None])[0]
        pg = self.paginate(start, end, limit, None if page and page.startswith("fuzz") else page)
        if pg is None:
            return self.bad_request("anthropic", "invalid page cursor")
        days, more, cursor = pg
        data = [{"starting_at": rfc3339(d), "ending_at": rfc3339(d + DAY),
                 "results": GENERATORS[("anthropic", ep)](key, d // DAY)} for d in days]
        self.log_request_seen(200, True)
        self.finish_body(key, {"data": data, "has_more": more, "next_page": cursor}, "anthropic", ep, page)


    # -------------------------------------------------------- custom service
    def custom(self, path, q):
        auth = self.headers.get("Authorization", "")
        key = (auth[len("Bearer "):] if auth.startswith("Bearer ") else
               self.headers.get("X-Api-Key") or q.get("api_key", [""])[0])
        if not key.startswith("svc-"):
            self.log_request_seen(401, False)
            return self.send(401, json.dumps({"error": "invalid API key"}))
        try:
            start = parse_time(q["from"][0])
            end = parse_time(q["to"][0])
        except (KeyError, ValueError):
            self.log_request_seen(400, True)
            return self.send(400, json.dumps({"error": "from and to are required (RFC 3339 or Unix seconds)"}))
        if end <= start:
            self.log_request_seen(400, True)
            return self.send(400, json.dumps({"error": "to must be after from"}))
        if self.apply_mode(key, "openai"):
            self.log_request_seen(-1, True)
            return
        with STATE_LOCK:
            m = MODES.get(key)
            mode = m["mode"] if m else None
            kind = m.get("kind") if m else None
        if path == "/metrics/api-usage":
            limit = int(q.get("limit", ["2"])[0])
            cursor = q.get("cursor", [None])[0]
            first = start - start % DAY
            if cursor is not None and not cursor.startswith("fuzz"):
                try:
                    first = int(base64.b64decode(cursor[2:].encode()).decode())
                except Exception:
                    self.log_request_seen(400, True)
                    return self.send(400, json.dumps({"error": "invalid cursor"}))
            days, t = [], first
            while t < end and len(days) < limit:
                days.append(t)
                t += DAY
            nxt = "c_" + base64.b64encode(str(t).encode()).decode() if t < end else None
            usage = [{"date": dt.datetime.fromtimestamp(d, dt.timezone.utc).strftime("%Y-%m-%d"),
                      "purpose": p, "requests": n, "cost": str(c)}
                     for d in days for p, n, c in svc_day_usage(key, d // DAY)]
            env = {"period": {"from": rfc3339(start), "to": rfc3339(end)}, "usage": usage,
                   "meta": {"next_cursor": nxt}}
            page_first = cursor is None
        else:
            per_page = int(q.get("per_page", ["2"])[0])
            page = q.get("page", ["1"])[0]
            n = int(page) if page.isdigit() else 1
            d0, d1 = (start - start % DAY) // DAY, (end - 1) // DAY
            keys = [{"id": k, "name": "%s key %d" % (p, i + 1), "purpose": p,
                     "total_requests": sum(svc_requests(key, i, d) for d in range(d0, d1 + 1))}
                    for i, (k, p) in enumerate(SVC_KEYS)]
            chunk = keys[(n - 1) * per_page: n * per_page]
            more = n * per_page < len(keys)
            env = {"period": {"from": rfc3339(start), "to": rfc3339(end)}, "keys": chunk, "page": n,
                   "has_more": more, "next_page": str(n + 1) if more else None}
            page_first = n == 1
        self.log_request_seen(200, True)
        if mode == "cfuzz":
            return self.custom_fuzz(path, env, kind, page_first, q)
        self.finish_body(key, env)

    def custom_fuzz(self, path, env, k, first, q):
        usage = path == "/metrics/api-usage"
        rows = env["usage"] if usage else env["keys"]
        count = "requests" if usage else "total_requests"
        if k == "cursor_repeat" or k == "endless_pages":
            cur = q.get("cursor", ["fuzz_0"])[0] if usage else q.get("page", ["1"])[0]
            if usage:
                env["meta"]["next_cursor"] = "fuzz_0" if k == "cursor_repeat" else "fuzz_%d" % (int(cur.split("_")[1]) + 1)
            else:
                env["has_more"] = True
                env["next_page"] = "1" if k == "cursor_repeat" else str(int(cur) + 1)
                if k == "endless_pages" and not env["keys"]:
                    env["keys"] = [{"id": "key_x%s" % cur, "purpose": "x", "total_requests": 1}]
            return self.send(200, json.dumps(env))
        if not first:
            return self.send(200, json.dumps(env))
        body = None
        if k == "truncated":
            t = json.dumps(env)
            body = t[: len(t) // 2].encode()
        elif k == "invalid_utf8":
            body = json.dumps(env).encode().replace(b'"period"', b'"per\xc3\x28iod"')
        elif k == "nul_byte":
            body = json.dumps(env).encode().replace(b'"period"', b'"per\x00iod"')
        elif k == "not_json":
            body = b"<html>maintenance</html>"
        elif k == "deep_nesting":
            body = ("[" * 100000 + "]" * 100000).encode()
        elif k == "huge_cursor":
            if usage:
                env["meta"]["next_cursor"] = "c" * 5000
            else:
                env["has_more"], env["next_page"] = True, "9" * 5000
        elif k == "cursor_wrong_type":
            if usage:
                env["meta"]["next_cursor"] = {"next": "x"}
            else:
                env["has_more"], env["next_page"] = True, ["2"]
        elif k == "cursor_control_chars":
            if usage:
                env["meta"]["next_cursor"] = "page\r\nX-Injected: 1"
            else:
                env["has_more"], env["next_page"] = True, "2\r\nX-Injected: 1"
        elif k == "has_more_without_next":
            if usage:
                env["meta"] = "none"
            else:
                env["has_more"], env["next_page"] = True, None
        elif k == "items_not_array":
            if usage:
                env["usage"] = {"0": rows[0]}
            else:
                env["keys"] = {"0": rows[0]}
        elif k == "negative_requests":
            rows[0][count] = -5
        elif k == "requests_string":
            rows[0][count] = "lots"
        elif k == "requests_nan":
            body = json.dumps(env).replace('"%s": %d' % (count, rows[0][count]), '"%s": 1e400' % count, 1).encode()
        elif k == "duplicate_row":
            rows.append(json.loads(json.dumps(rows[0])))
        elif k == "date_outside_window":
            if usage:
                rows[0]["date"] = "1999-01-01"
            else:
                env["period"]["from"] = "1999-01-01T00:00:00Z"
        elif k == "purpose_control_char":
            rows[0]["purpose" if usage else "id"] = "check\u0007out"
        if body is None:
            body = json.dumps(env).encode()
        self.send(200, body)


# ---------------------------------------------------------------- fuzzing
# kind: (verdict, target).  verdict "fail": the run must fail and write
# nothing; "collect": the page means the same as the valid one, and the run
# must collect exact totals.  target: which endpoints the kind can hit
# ("any", "usage", "costs").
FUZZ_KINDS = {
    # the body as JSON
    "truncated": ("fail", "any"), "empty_body": ("fail", "any"), "not_object": ("fail", "any"),
    "top_level_null": ("fail", "any"), "trailing_garbage": ("fail", "any"), "bom": ("fail", "any"),
    # the envelope
    "data_missing": ("fail", "any"), "data_not_array": ("fail", "any"), "data_null": ("fail", "any"),
    "has_more_missing": ("fail", "any"), "has_more_string": ("fail", "any"),
    "has_more_without_next_page": ("fail", "any"), "next_page_number": ("fail", "any"),
    "cursor_repeat": ("fail", "any"), "endless_pages": ("fail", "any"), "huge_cursor": ("fail", "any"),
    "cursor_control_chars": ("fail", "any"),
    # buckets
    "bucket_not_object": ("fail", "any"), "results_missing": ("fail", "any"),
    "results_not_array": ("fail", "any"), "result_not_object": ("fail", "any"),
    "bucket_inverted": ("fail", "any"), "bucket_empty": ("fail", "any"), "bucket_1969": ("fail", "any"),
    "bucket_9999": ("fail", "any"), "bucket_outside_window": ("fail", "any"),
    "bucket_duplicate": ("fail", "any"), "bucket_duplicate_across_pages": ("fail", "any"),
    "bucket_time_wrong_type": ("fail", "any"), "bucket_time_malformed": ("fail", "any"),
    "bucket_start_missing": ("fail", "any"), "result_duplicate": ("fail", "any"),
    # counts
    "count_negative": ("fail", "usage"), "count_fraction": ("fail", "usage"), "count_1e30": ("fail", "usage"),
    "count_2pow63": ("fail", "usage"), "count_string": ("fail", "usage"), "count_null_required": ("fail", "usage"),
    "count_missing_required": ("fail", "usage"), "count_bool": ("fail", "usage"), "count_object": ("fail", "usage"),
    # costs
    "cost_nan": ("fail", "costs"), "cost_infinity": ("fail", "costs"), "cost_1e30": ("fail", "costs"),
    "cost_garbage": ("fail", "costs"), "cost_missing": ("fail", "costs"), "currency_eur": ("fail", "costs"),
    "cost_object": ("fail", "costs"),
    # grouping dimensions (text)
    "text_number": ("fail", "any"), "text_object": ("fail", "any"), "text_megabyte": ("fail", "any"),
    "text_control_char": ("fail", "any"), "nul_escape": ("fail", "any"), "lone_surrogate": ("fail", "any"),
    "invalid_utf8": ("fail", "any"), "overlong_utf8": ("fail", "any"), "raw_nul_byte": ("fail", "any"),
    "deep_nesting": ("fail", "any"), "text_bool": ("fail", "any"),
    # the HTTP exchange
    "wrong_content_type": ("fail", "any"), "gzip_bomb": ("fail", "any"), "gzip_corrupt": ("fail", "any"),
    "redirect_302": ("fail", "any"), "redirect_file": ("fail", "any"), "slow_drip": ("fail", "any"),
    "reset_midbody": ("fail", "any"), "reset_at_once": ("fail", "any"), "retry_after_absurd": ("fail", "any"),
    "retry_after_far_date": ("fail", "any"), "retry_after_negative": ("fail", "any"), "status_204": ("fail", "any"),
    "content_length_lies": ("fail", "any"), "huge_header": ("fail", "any"),
    # harmless: the same data, differently said
    "extra_keys": ("collect", "any"), "gzip_ok": ("collect", "any"), "chunked": ("collect", "any"),
    "close_delimited": ("collect", "any"), "pretty_whitespace": ("collect", "any"),
    "null_api_key_id": ("collect", "usage"), "absent_optional": ("collect", "usage"),
    "retry_after_once": ("collect", "any"), "escaped_unicode": ("collect", "any"),
}

PROVIDER_ENDPOINTS = {"openai": ["completions", "embeddings", "costs"], "anthropic": ["messages", "cost_report"]}
# per endpoint: required counts, text dimensions that are set in the generated data, optional keys that are absent-safe
FUZZ_FIELDS = {
    ("openai", "completions"): (["input_tokens", "output_tokens", "num_model_requests"], ["model", "project_id"], "service_tier"),
    ("openai", "embeddings"): (["input_tokens", "num_model_requests"], ["model", "project_id"], "user_id"),
    ("openai", "costs"): ([], ["line_item", "project_id"], "quantity"),
    ("anthropic", "messages"): (["uncached_input_tokens", "cache_read_input_tokens", "output_tokens"],
                                ["model", "service_tier"], "context_window"),
    ("anthropic", "cost_report"): ([], ["description", "model", "token_type"], "inference_geo"),
}


def fuzz_target(provider, kind, seed):
    """The endpoint a kind hits for this seed."""
    if provider is None or kind not in FUZZ_KINDS:
        return None
    eps = PROVIDER_ENDPOINTS[provider]
    target = FUZZ_KINDS[kind][1]
    if target == "usage":
        eps = [e for e in eps if e not in ("costs", "cost_report")]
    elif target == "costs":
        eps = [e for e in eps if e in ("costs", "cost_report")]
    return eps[seed % len(eps)]


class Fuzz:
    def __init__(self, handler, provider, ep, kind, seed, page):
        self.h, self.provider, self.ep, self.kind, self.page = handler, provider, ep, kind, page
        self.rng = random.Random("%s/%s/%s/%d" % (provider, ep, kind, seed))
        self.counts, self.texts, self.optional = FUZZ_FIELDS[(provider, ep)]
        self.start_key, self.end_key = ("start_time", "end_time") if provider == "openai" else ("starting_at", "ending_at")

    # ------------------------------------------------ helpers
    def send_raw(self, status, body, headers=(), ctype="application/json", length=True):
        h = self.h
        h.send_response(status)
        if ctype:
            h.send_header("Content-Type", ctype)
        if length:
            h.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(body)

    def reset(self):
        c = self.h.connection
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
        self.h.close_connection = True

    def bucket(self, env):
        return self.rng.choice(env["data"])

    def result(self, env):
        return self.rng.choice(self.bucket(env)["results"])

    def time_value(self, ts):
        return ts if self.provider == "openai" else rfc3339(ts)

    def bucket_start(self, b):
        v = b[self.start_key]
        return v if self.provider == "openai" else parse_rfc3339(v)

    def cost_path(self, r):
        """(container, key) of the cost amount"""
        return (r["amount"], "value") if self.provider == "openai" else (r, "amount")

    # ------------------------------------------------ serving
    def serve(self, env):
        k = self.kind
        first = self.page is None
        env = json.loads(json.dumps(env))
        raw = None            # (placeholder value, raw bytes) to splice into the JSON text
        text = None           # the whole body, when not json.dumps(env)
        if k in ("cursor_repeat", "endless_pages"):
            n = 0 if first else int(self.page.split("_")[1])
            env["has_more"] = True
            env["next_page"] = "fuzz_0" if k == "cursor_repeat" else "fuzz_%d" % (n + 1)
            return self.send_raw(200, json.dumps(env).encode())
        if k == "bucket_duplicate_across_pages":
            if first:
                env["has_more"], env["next_page"] = True, "fuzz_1"
                self.h.server.first_bucket = env["data"][0]
            else:
                env["has_more"], env["next_page"] = False, None
                env["data"] = [self.h.server.first_bucket]
            return self.send_raw(200, json.dumps(env).encode())
        if not first:
            return self.send_raw(200, json.dumps(env).encode())

        if k == "truncated":
            t = json.dumps(env)
            text = t[: self.rng.randrange(1, len(t) - 1)]
        elif k == "empty_body":
            text = ""
        elif k == "not_object":
            text = json.dumps([env])
        elif k == "top_level_null":
            text = "null"
        elif k == "trailing_garbage":
            text = json.dumps(env) + " {}"
        elif k == "bom":
            return self.send_raw(200, b"\xef\xbb\xbf" + json.dumps(env).encode())
        elif k == "data_missing":
            del env["data"]
        elif k == "data_not_array":
            env["data"] = {"0": env["data"][0]}
        elif k == "data_null":
            env["data"] = None
        elif k == "has_more_missing":
            del env["has_more"]
        elif k == "has_more_string":
            env["has_more"] = "false"
        elif k == "has_more_without_next_page":
            env["has_more"], env["next_page"] = True, None
        elif k == "next_page_number":
            env["has_more"], env["next_page"] = True, 12345
        elif k == "huge_cursor":
            env["has_more"], env["next_page"] = True, "c" * (1024 * 1024)
        elif k == "cursor_control_chars":
            env["has_more"], env["next_page"] = True, "page\r\nX-Injected: 1"
        elif k == "bucket_not_object":
            env["data"][self.rng.randrange(len(env["data"]))] = 1
        elif k == "results_missing":
            del self.bucket(env)["results"]
        elif k == "results_not_array":
            b = self.bucket(env)
            b["results"] = {"0": b["results"][0]}
        elif k == "result_not_object":
            b = self.bucket(env)
            b["results"][self.rng.randrange(len(b["results"]))] = "row"
        elif k == "bucket_inverted":
            b = self.bucket(env)
            b[self.start_key], b[self.end_key] = b[self.end_key], b[self.start_key]
        elif k == "bucket_empty":
            b = self.bucket(env)
            b[self.end_key] = b[self.start_key]
        elif k == "bucket_1969":
            b = self.bucket(env)
            b[self.start_key], b[self.end_key] = self.time_value(-DAY), self.time_value(0)
        elif k == "bucket_9999":
            b = self.bucket(env)
            b[self.start_key], b[self.end_key] = self.time_value(253402214400), self.time_value(253402300799)
        elif k == "bucket_outside_window":
            b = self.bucket(env)
            s = self.bucket_start(env["data"][-1]) + 30 * DAY
            b[self.start_key], b[self.end_key] = self.time_value(s), self.time_value(s + DAY)
        elif k == "bucket_duplicate":
            env["data"].append(json.loads(json.dumps(self.bucket(env))))
        elif k == "bucket_time_wrong_type":
            b = self.bucket(env)
            b[self.start_key] = str(b[self.start_key]) if self.provider == "openai" else self.bucket_start(b)
        elif k == "bucket_time_malformed":
            b = self.bucket(env)
            b[self.start_key] = b[self.start_key] + 0.5 if self.provider == "openai" else "2026-13-45T00:00:00Z"
        elif k == "bucket_start_missing":
            del self.bucket(env)[self.start_key]
        elif k == "result_duplicate":
            b = self.bucket(env)
            b["results"].append(json.loads(json.dumps(self.rng.choice(b["results"]))))
        elif k.startswith("count_"):
            r, f = self.result(env), self.rng.choice(self.counts)
            r[f] = {"count_negative": -77212, "count_fraction": 1000.5, "count_1e30": 1e30,
                    "count_2pow63": 2 ** 63 + 5, "count_string": str(r[f]), "count_null_required": None,
                    "count_bool": True, "count_object": {"value": 1}}.get(k)
            if k == "count_missing_required":
                del r[f]
        elif k.startswith("cost_") or k == "currency_eur":
            r = self.result(env)
            c, f = self.cost_path(r)
            if k == "currency_eur":
                if self.provider == "openai":
                    r["amount"]["currency"] = "eur"
                else:
                    r["currency"] = "EUR"
            elif k == "cost_missing":
                del c[f]
            elif k == "cost_object":
                c[f] = {"cents": 1}
            elif k == "cost_infinity" and self.provider == "openai":
                raw = ("@@RAW@@", b"1e400")
                c[f] = raw[0]
            elif k == "cost_1e30" and self.provider == "openai":
                c[f] = 1e30
            else:
                c[f] = {"cost_nan": "NaN", "cost_infinity": "Infinity", "cost_1e30": "1e30",
                        "cost_garbage": "12abc"}[k]
        elif k in ("text_number", "text_object", "text_megabyte", "text_control_char", "nul_escape",
                   "lone_surrogate", "invalid_utf8", "overlong_utf8", "raw_nul_byte", "deep_nesting", "text_bool"):
            r, f = self.result(env), self.rng.choice(self.texts)
            if k == "text_number":
                r[f] = 123
            elif k == "text_object":
                r[f] = {"name": r[f]}
            elif k == "text_megabyte":
                r[f] = "m" * (1024 * 1024)
            elif k == "text_control_char":
                r[f] = r[f] + "\u0001"
            elif k == "text_bool":
                r[f] = True
            else:
                raw = ("@@RAW@@", {"nul_escape": b'"gpt\\u0000x"', "lone_surrogate": b'"gpt\\ud800x"',
                                   "invalid_utf8": b'"gpt\xff\xfex"', "overlong_utf8": b'"gpt\xc0\xafx"',
                                   "raw_nul_byte": b'"gpt\x00x"',
                                   "deep_nesting": b"[" * 10000 + b"]" * 10000}[k])
                r[f] = raw[0]
        elif k == "wrong_content_type":
            return self.send_raw(200, json.dumps(env).encode(), ctype="text/html")
        elif k == "gzip_bomb":
            body = gzip.compress(json.dumps(env).encode()[:-1] + b', "pad": "' + b" " * (4 * 1024 * 1024) + b'"}')
            return self.send_raw(200, body, headers=[("Content-Encoding", "gzip")])
        elif k == "gzip_corrupt":
            return self.send_raw(200, b"\x1f\x8b\x08\x00garbage" * 50, headers=[("Content-Encoding", "gzip")])
        elif k == "redirect_302":
            return self.send_raw(302, b"", headers=[("Location", self.h.path)])
        elif k == "redirect_file":
            return self.send_raw(301, b"", headers=[("Location", "file:///etc/passwd")])
        elif k == "slow_drip":
            body = json.dumps(env).encode()
            self.h.send_response(200)
            self.h.send_header("Content-Type", "application/json")
            self.h.send_header("Content-Length", str(len(body)))
            self.h.end_headers()
            for i in range(len(body)):
                self.h.wfile.write(body[i:i + 1])
                self.h.wfile.flush()
                time.sleep(0.25)
            return
        elif k == "reset_midbody":
            body = json.dumps(env).encode()
            self.h.send_response(200)
            self.h.send_header("Content-Type", "application/json")
            self.h.send_header("Content-Length", str(len(body)))
            self.h.end_headers()
            self.h.wfile.write(body[: len(body) // 2])
            self.h.wfile.flush()
            return self.reset()
        elif k == "reset_at_once":
            return self.reset()
        elif k == "retry_after_absurd":
            return self.send_raw(429, b"{}", headers=[("Retry-After", "99999999999999999999")])
        elif k == "retry_after_far_date":
            return self.send_raw(429, b"{}", headers=[("Retry-After", "Fri, 01 Jan 2100 00:00:00 GMT")])
        elif k == "retry_after_negative":
            return self.send_raw(429, b"{}", headers=[("Retry-After", "-5")])
        elif k == "status_204":
            self.h.send_response(204)
            self.h.send_header("Content-Type", "application/json")
            self.h.end_headers()
            return
        elif k == "content_length_lies":
            body = json.dumps(env).encode()
            self.h.send_response(200)
            self.h.send_header("Content-Type", "application/json")
            self.h.send_header("Content-Length", str(len(body) + 1000))
            self.h.end_headers()
            self.h.wfile.write(body)
            self.h.wfile.flush()
            return self.reset()
        elif k == "huge_header":
            return self.send_raw(200, json.dumps(env).encode(), headers=[("X-Filler", "a" * 200000)])
        elif k == "extra_keys":
            env["unknown_top"] = {"nested": [1, {"x": None}]}
            for b in env["data"]:
                b["unknown_bucket"] = "x"
                for r in b["results"]:
                    r["unknown_field"] = {"a": [1, 2, 3]}
                    r["another_new_count"] = 5
        elif k == "gzip_ok":
            return self.send_raw(200, gzip.compress(json.dumps(env).encode()), headers=[("Content-Encoding", "gzip")])
        elif k == "chunked":
            body = json.dumps(env).encode()
            self.h.send_response(200)
            self.h.send_header("Content-Type", "application/json")
            self.h.send_header("Transfer-Encoding", "chunked")
            self.h.end_headers()
            for i in range(0, len(body), 100):
                chunk = body[i:i + 100]
                self.h.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.h.wfile.write(b"0\r\n\r\n")
            return
        elif k == "close_delimited":
            self.send_raw(200, json.dumps(env).encode(), length=False)
            self.h.close_connection = True
            return
        elif k == "pretty_whitespace":
            text = json.dumps(env, indent=4)
        elif k == "null_api_key_id":
            self.result(env)["api_key_id"] = None
        elif k == "absent_optional":
            for b in env["data"]:
                for r in b["results"]:
                    r.pop(self.optional, None)
        elif k == "retry_after_once":
            srv = self.h.server
            if not getattr(srv, "retried_once", set()) >= {self.provider + self.ep}:
                srv.retried_once = getattr(srv, "retried_once", set()) | {self.provider + self.ep}
                return self.send_raw(429, b"{}", headers=[("Retry-After", "1")])
        elif k == "escaped_unicode":
            r, f = self.result(env), self.rng.choice(self.texts)
            r[f] = r[f] + " \u00e9\u4e2d\U0001F600"
        body = (text if text is not None else json.dumps(env)).encode()
        if raw is not None:
            body = body.replace(json.dumps(raw[0]).encode(), raw[1])
        self.send_raw(200, body)


def main():
    portfile = sys.argv[1]
    max_seconds = 3600
    if len(sys.argv) > 3 and sys.argv[2] == "--max-seconds":
        max_seconds = int(sys.argv[3])
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    with open(portfile + ".pid", "w") as f:
        f.write(str(os.getpid()))
    with open(portfile + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(portfile + ".tmp", portfile)
    timer = threading.Timer(max_seconds, server.shutdown)
    timer.daemon = True
    timer.start()
    server.serve_forever()


if __name__ == "__main__":
    main()
