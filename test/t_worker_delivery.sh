#!/usr/bin/env bash
# t_worker_delivery: the worker delivers alerts by webhook, signed with
# HMAC-SHA256 and retried after a 500, and by e-mail through SMTP to every
# configured recipient; a webhook that keeps failing is recorded as failed.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/worker_lib.sh"
wq -c "CREATE EXTENSION IF NOT EXISTS llm_usage" -c "ALTER EXTENSION llm_usage UPDATE" >/dev/null 2>&1

cp "$(dirname "$0")/alert_sinks.py" "$WORK/alert_sinks.py"
chown "$TEST_USER" "$WORK/alert_sinks.py"
ports="$WORK/sinks.$$.port"
as_user /usr/bin/python3 "$WORK/alert_sinks.py" "$ports" --max-seconds 600 >"$WORK/sinks.$$.log" 2>&1 &
for _ in $(seq 1 100); do [[ -s "$ports" ]] && break; sleep 0.1; done
[[ -s "$ports" ]] || fail "the alert sinks did not start"
read -r HTTP_PORT SMTP_PORT <"$ports" || true   # no trailing newline
SINKS_PID=$(cat "$ports.pid")
trap 'kill $SINKS_PID 2>/dev/null' EXIT
HOOK="http://127.0.0.1:$HTTP_PORT"
SECRET=whsec_delivery_test_secret

wq -c "ALTER SYSTEM SET llm_usage.alert_webhook_url = '$HOOK/hooks/llm'" \
   -c "ALTER SYSTEM SET llm_usage.alert_webhook_secret = '$SECRET'" \
   -c "ALTER SYSTEM SET llm_usage.alert_smtp_url = 'smtp://127.0.0.1:$SMTP_PORT'" \
   -c "ALTER SYSTEM SET llm_usage.alert_email_from = 'llm-usage@example.test'" \
   -c "ALTER SYSTEM SET llm_usage.alert_email_to = 'ops@example.test, oncall@example.test'" \
   -c "ALTER SYSTEM SET llm_usage.max_retries = 3" \
   -c "SELECT pg_reload_conf()" >/dev/null
sleep 1
[[ $(wq -c "SHOW llm_usage.alert_webhook_url") == "$HOOK/hooks/llm" ]] || fail "settings not reloaded"
for _ in $(seq 1 100); do [[ -n "$(worker_pid)" ]] && break; sleep 0.2; done

alert_for() {   # alert_for TENANT MODEL: raise an unpriced_usage alert, print its id
    wq -o /dev/null -c "SELECT llm_usage.track_usage('$1', 'chat', '$2', 10, 10)"
    wq -o /dev/null -c "SELECT llm_usage.check_alerts()"
    # one alert per tenant and check, naming its models (throttled per tenant)
    wq -c "SELECT id FROM llm_usage.alerts WHERE tenant_id = '$1' AND kind = 'unpriced_usage' AND subject = 'unpriced models'
             AND details->'models' @> '[{\"model\": \"$2\"}]'"
}
wait_delivery() {   # wait_delivery ID: until neither channel is pending
    for _ in $(seq 1 150); do
        [[ $(wq -c "SELECT webhook_status <> 'pending' AND email_status <> 'pending' FROM llm_usage.alerts WHERE id = $1") == t ]] && return 0
        sleep 0.2
    done
    fail "alert $1 was not delivered in 30 s"
}

wq -c "SELECT llm_usage.create_tenant('wd', 'pro')" -c "SELECT llm_usage.create_tenant('wd2', 'pro')" >/dev/null
curl -sf -X POST "$HOOK/_fail" -d '{"count": 1}' >/dev/null
id=$(alert_for wd delivery-model-1)
[[ -n $id ]] || fail "no alert raised"
wait_delivery "$id"
wq -c "SELECT id, kind, webhook_status, webhook_attempts, email_status, email_attempts, coalesce(webhook_error, '') FROM llm_usage.alerts WHERE id = $id"
[[ $(wq -c "SELECT webhook_status || '/' || webhook_attempts || '/' || email_status FROM llm_usage.alerts WHERE id = $id") == "delivered/2/delivered" ]] \
    || fail "expected the webhook delivered on the second attempt and the e-mail delivered"

python3 - "$(curl -sf "$HOOK/_received")" "$SECRET" "$id" <<'PY' || fail "webhook check"
import hashlib, hmac, json, sys
got, secret, alert_id = json.loads(sys.argv[1]), sys.argv[2].encode(), int(sys.argv[3])
mine = [r for r in got if json.loads(r["body"]).get("id") == alert_id]
assert [r["status"] for r in mine] == [500, 200], [r["status"] for r in mine]
r = mine[-1]
assert r["path"] == "/hooks/llm" and r["headers"]["content-type"] == "application/json", r
ts, sig = r["headers"]["x-llm-usage-timestamp"], r["headers"]["x-llm-usage-signature"]
want = "sha256=" + hmac.new(secret, (ts + "." + r["body"]).encode(), hashlib.sha256).hexdigest()
assert hmac.compare_digest(sig, want), (sig, want)
body = json.loads(r["body"])
assert body["kind"] == "unpriced_usage" and body["tenant_id"] == "wd" and body["details"]["models"][0]["model"] == "delivery-model-1", body
print("webhook: 500 then 200; signature %s... verifies; body %s" % (sig[:20], {k: body[k] for k in ("id", "kind", "tenant_id")}))
PY
python3 - "$(curl -sf "$HOOK/_mail")" "$id" <<'PY' || fail "e-mail check"
import json, sys
mail = json.loads(sys.argv[1])
mine = [m for m in mail if '"id": %s,' % sys.argv[2] in m["data"]]
assert len(mine) == 1, len(mine)
m = mine[0]
assert m["from"] == "llm-usage@example.test", m["from"]
assert sorted(m["rcpt"]) == ["oncall@example.test", "ops@example.test"], m["rcpt"]
subject = [l for l in m["data"].splitlines() if l.startswith("Subject:")][0]
assert subject == "Subject: [llm_usage] warning unpriced_usage: tenant wd", subject
print("e-mail: from %s to %s, %s" % (m["from"], ", ".join(m["rcpt"]), subject))
PY

# a webhook that keeps failing: retried, then recorded as failed (the e-mail still goes)
curl -sf -X POST "$HOOK/_fail" -d '{"count": 100}' >/dev/null
id=$(alert_for wd2 delivery-model-2)
wait_delivery "$id"
row=$(wq -c "SELECT webhook_status || '/' || webhook_attempts || '/' || webhook_error || '/' || email_status FROM llm_usage.alerts WHERE id = $id")
echo "always 500: $row"
[[ $row == "failed/4/HTTP 500/delivered" ]] || fail "expected failed after 4 attempts"
curl -sf -X POST "$HOOK/_fail" -d '{"count": 0}' >/dev/null

wq -c "ALTER SYSTEM RESET llm_usage.alert_webhook_url" -c "ALTER SYSTEM RESET llm_usage.alert_webhook_secret" \
   -c "ALTER SYSTEM RESET llm_usage.alert_smtp_url" -c "ALTER SYSTEM RESET llm_usage.alert_email_from" \
   -c "ALTER SYSTEM RESET llm_usage.alert_email_to" -c "ALTER SYSTEM RESET llm_usage.max_retries" \
   -c "SELECT pg_reload_conf()" >/dev/null
echo "PASS"
