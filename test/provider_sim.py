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
    partial        the last bucket of each response holds half its values
    none           back to normal
  GET  /_sim/requests        every request seen: method, path, query, auth ok, status
  POST /_sim/reset           forget modes and the request log
  GET  /_sim/expected?key=K&from=YYYY-MM-DD&to=YYYY-MM-DD
                             exact totals the API serves for those days

Usage: provider_sim.py PORTFILE  (binds an ephemeral port, writes it to PORTFILE and
its pid to PORTFILE.pid)
Stops on SIGTERM, or by itself after --max-seconds (default 3600).
"""
import base64
import os
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
REQUESTS = []       # request log

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
                                          "seconds": float(body.get("seconds", 1))}
                return self.send(200, "{}")
            if path == "/_sim/reset":
                MODES.clear()
                REQUESTS.clear()
                return self.send(200, "{}")
        self.send(404, '{"error": "unknown control path"}')

    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(u.query, keep_blank_values=True)
        if u.path == "/_sim/requests":
            with STATE_LOCK:
                return self.send(200, json.dumps(REQUESTS))
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

    def finish_body(self, key, envelope):
        with STATE_LOCK:
            m = MODES.get(key)
            mode = m["mode"] if m else None
        if mode == "malformed":
            text = json.dumps(envelope)
            return self.send(200, text[: len(text) // 2])
        if mode == "wrong_type":
            return self.send(200, "<html><body>maintenance</body></html>", ctype="text/html")
        if mode == "oversized":
            envelope["filler"] = "x" * (2 * 1024 * 1024)
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
        pg = self.paginate(start, end, limit, q.get("page", [None])[0])
        if pg is None:
            return self.bad_request("openai", "invalid page cursor")
        days, more, cursor = pg
        data = [{"object": "bucket", "start_time": d, "end_time": d + DAY,
                 "results": GENERATORS[("openai", ep)](key, d // DAY)} for d in days]
        self.log_request_seen(200, True)
        self.finish_body(key, {"object": "page", "data": data, "has_more": more, "next_page": cursor})

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
        pg = self.paginate(start, end, limit, q.get("page", [None])[0])
        if pg is None:
            return self.bad_request("anthropic", "invalid page cursor")
        days, more, cursor = pg
        data = [{"starting_at": rfc3339(d), "ending_at": rfc3339(d + DAY),
                 "results": GENERATORS[("anthropic", ep)](key, d // DAY)} for d in days]
        self.log_request_seen(200, True)
        self.finish_body(key, {"data": data, "has_more": more, "next_page": cursor})


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
