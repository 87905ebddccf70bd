#!/usr/bin/env bash
# t_worker_delivery: the worker delivers alerts by webhook, signed with
# HMAC-SHA256, and by e-mail through SMTP to every configured recipient.
# A failed attempt is retried in later cycles with a doubling backoff, and
# recorded as failed after llm_usage.alert_delivery_attempts; a pass of
# deliveries to a receiver that hangs is bounded in time, so a collection
# queued meanwhile starts within seconds; SMTP with a password refuses to
# log in without TLS except to a loopback address.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/worker_lib.sh"
wq -c "CREATE EXTENSION IF NOT EXISTS llm_usage" -c "ALTER EXTENSION llm_usage UPDATE" >/dev/null 2>&1

PUBLIC_HOST=$(hostname -I 2>/dev/null | tr ' ' '\n' | grep -E '^[0-9]+(\.[0-9]+){3}$' | grep -v '^127\.' | head -1 || true)
start_sinks "$PUBLIC_HOST"
start_sim
use_sim
SECRET=whsec_delivery_test_secret

wq -c "ALTER SYSTEM SET llm_usage.alert_webhook_url = '$HOOK/hooks/llm'" \
   -c "ALTER SYSTEM SET llm_usage.alert_webhook_secret = '$SECRET'" \
   -c "ALTER SYSTEM SET llm_usage.alert_smtp_url = 'smtp://127.0.0.1:$SMTP_PORT'" \
   -c "ALTER SYSTEM SET llm_usage.alert_email_from = 'llm-usage@example.test'" \
   -c "ALTER SYSTEM SET llm_usage.alert_email_to = 'ops@example.test, oncall@example.test'" \
   -c "ALTER SYSTEM SET llm_usage.alert_retry_delay = '1s'" \
   -c "ALTER SYSTEM SET llm_usage.alert_delivery_attempts = 4" \
   -c "SELECT pg_reload_conf()" >/dev/null
sleep 1
[[ $(wq -c "SHOW llm_usage.alert_webhook_url") == "$HOOK/hooks/llm" ]] || fail "settings not reloaded"
for _ in $(seq 1 100); do [[ -n "$(worker_pid)" ]] && break; sleep 0.2; done

alert_for() {   # alert_for TENANT MODEL: raise an unpriced_usage alert, print its id
    # (a tenant of its own for each alert: unpriced_usage is throttled per tenant)
    wq -o /dev/null -c "SELECT llm_usage.create_tenant('$1', 'pro') WHERE NOT EXISTS (SELECT 1 FROM llm_usage.tenants WHERE tenant_id = '$1')"
    wq -o /dev/null -c "SELECT llm_usage.track_usage('$1', 'chat', '$2', 10, 10)"
    wq -o /dev/null -c "SELECT llm_usage.check_alerts()"
    # one alert per tenant and check, naming its models (throttled per tenant)
    wq -c "SELECT id FROM llm_usage.alerts WHERE tenant_id = '$1' AND kind = 'unpriced_usage' AND subject = 'unpriced models'
             AND details->'models' @> '[{\"model\": \"$2\"}]'"
}
wait_delivery() {   # wait_delivery ID [SECONDS]: until neither channel is pending
    for _ in $(seq 1 $((${2:-30} * 5))); do
        [[ $(wq -c "SELECT coalesce(webhook_status, '') <> 'pending' AND coalesce(email_status, '') <> 'pending' FROM llm_usage.alerts WHERE id = $1") == t ]] && return 0
        sleep 0.2
    done
    fail "alert $1 was not delivered in ${2:-30} s"
}
arrivals() {    # arrivals ID: the webhook POSTs of an alert, "status at" per line
    curl -sf "$HOOK/_received" | python3 -c "
import json, sys
for r in json.load(sys.stdin):
    if json.loads(r['body']).get('id') == int(sys.argv[1]):
        print(r['status'], r['at'])" "$1"
}

wq -c "SELECT llm_usage.create_tenant('wd', 'pro')" -c "SELECT llm_usage.create_tenant('wd2', 'pro')" >/dev/null
# one 500, then delivered at the next attempt, a retry delay later
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
gap = mine[1]["at"] - mine[0]["at"]
assert gap >= 0.95, "second attempt only %.2f s after the first (retry delay 1 s)" % gap
r = mine[-1]
assert r["path"] == "/hooks/llm" and r["headers"]["content-type"] == "application/json", r
ts, sig = r["headers"]["x-llm-usage-timestamp"], r["headers"]["x-llm-usage-signature"]
want = "sha256=" + hmac.new(secret, (ts + "." + r["body"]).encode(), hashlib.sha256).hexdigest()
assert hmac.compare_digest(sig, want), (sig, want)
body = json.loads(r["body"])
assert body["kind"] == "unpriced_usage" and body["tenant_id"] == "wd" and body["details"]["models"][0]["model"] == "delivery-model-1", body
print("webhook: 500, then 200 %.1f s later in a later cycle; signature %s... verifies; body %s" % (gap, sig[:20], {k: body[k] for k in ("id", "kind", "tenant_id")}))
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

# a webhook that keeps failing: 4 attempts in all, 1, 2 and 4 s apart (each
# in a later cycle), then failed; the e-mail is delivered meanwhile
curl -sf -X POST "$HOOK/_fail" -d '{"count": 100}' >/dev/null
id=$(alert_for wd2 delivery-model-2)
for _ in $(seq 1 60); do
    [[ $(wq -c "SELECT webhook_status FROM llm_usage.alerts WHERE id = $id") == pending &&
       $(wq -c "SELECT webhook_attempts FROM llm_usage.alerts WHERE id = $id") -ge 1 ]] && break
    sleep 0.1
done
mid=$(wq -c "SELECT webhook_status || '/' || webhook_attempts || '/' || coalesce(webhook_error, '') || '/' || (webhook_next_at > now()) FROM llm_usage.alerts WHERE id = $id")
echo "after the first failed attempt: $mid"
[[ $mid == pending/*/HTTP\ 500/true ]] || fail "a failed attempt is not left pending with a later retry time"
wait_delivery "$id" 30
row=$(wq -c "SELECT webhook_status || '/' || webhook_attempts || '/' || webhook_error || '/' || email_status FROM llm_usage.alerts WHERE id = $id")
echo "always 500: $row"
[[ $row == "failed/4/HTTP 500/delivered" ]] || fail "expected failed after 4 attempts"
arrivals "$id" | python3 -c "
import sys
at = [float(l.split()[1]) for l in sys.stdin]
gaps = [b - a for a, b in zip(at, at[1:])]
print('attempts at +' + ', +'.join('%.1f' % (t - at[0]) for t in at) + ' s; gaps ' + ', '.join('%.1f' % g for g in gaps))
assert len(at) == 4, at
for g, want in zip(gaps, [1, 2, 4]):
    assert g >= want - 0.05, (gaps, 'backoff not doubling from 1 s')" || fail "the retries were not spaced by a doubling backoff"
curl -sf -X POST "$HOOK/_fail" -d '{"count": 0}' >/dev/null

# a receiver that hangs: a pass of deliveries is bounded, so a collection
# queued meanwhile starts within seconds (not after 12 alerts x 30 s)
wq -c "ALTER SYSTEM SET llm_usage.http_timeout_ms = 30000" -c "SELECT pg_reload_conf()" >/dev/null
sleep 1
curl -sf -X POST "$HOOK/_hang" -d '{"seconds": 120}' >/dev/null
for i in $(seq 1 12); do alert_for "wdh$i" "hang-model-$i" >/dev/null; done
sleep 1
key=$(wq -c "SELECT llm_usage.add_provider_key('wd', 'openai', 'sk-admin-delivery-collect-1')")
r=$(wq -c "SELECT llm_usage.collect_now($key, '2026-10-01', '2026-10-01')")
[[ $(wait_run "$r" 40) == succeeded ]] || fail "the collection did not run while deliveries hang"
lag=$(wq -c "SELECT round(extract(epoch FROM started_at - queued_at)::numeric, 1) FROM llm_usage.collector_runs WHERE run_id = $r")
pend=$(wq -c "SELECT count(*) FROM llm_usage.alerts WHERE tenant_id LIKE 'wdh%' AND kind = 'unpriced_usage' AND webhook_status = 'pending'")
echo "webhook receiver hanging, 12 alerts pending: the run started ${lag} s after it was queued ($pend webhooks still pending)"
[[ $(wq -c "SELECT $lag < 13") == t ]] || fail "deliveries starved the collection (${lag} s)"
errs=$(wq -c "SELECT string_agg(DISTINCT webhook_error, '; ') FROM llm_usage.alerts WHERE tenant_id LIKE 'wdh%' AND kind = 'unpriced_usage' AND webhook_attempts > 0")
echo "attempts against the hanging receiver ended with: $errs"
[[ $errs == *"timed out"* ]] || fail "the attempts against the hanging receiver did not time out"
curl -sf -X POST "$HOOK/_hang" -d '{"seconds": 0}' >/dev/null
wq -c "ALTER SYSTEM RESET llm_usage.http_timeout_ms" \
   -c "ALTER SYSTEM SET llm_usage.alert_webhook_url = ''" -c "SELECT pg_reload_conf()" >/dev/null
retire_keys wd

# SMTP with a password: plain text only to a loopback relay
smtp_case() {   # smtp_case URL MODEL: print the alert's email status|error after one attempt
    local id
    wq -c "ALTER SYSTEM SET llm_usage.alert_smtp_url = '$1'" -c "SELECT pg_reload_conf()" >/dev/null
    sleep 1
    id=$(alert_for "wd-$2" "$2")
    for _ in $(seq 1 100); do
        [[ $(wq -c "SELECT email_attempts FROM llm_usage.alerts WHERE id = $id") -ge 1 ]] && break
        sleep 0.1
    done
    wq -c "SELECT email_status || '|' || coalesce(email_error, '') FROM llm_usage.alerts WHERE id = $id"
}
auth_from() { curl -sf "$HOOK/_auth" | python3 -c "import json, sys; print(sum(1 for a in json.load(sys.stdin) if a['peer'] == sys.argv[1]))" "$1"; }
mail_from_peer() { curl -sf "$HOOK/_mail" | python3 -c "import json, sys; print(sum(1 for m in json.load(sys.stdin) if m['peer'] == sys.argv[1]))" "$1"; }

res=$(smtp_case "smtp://alerts:smtp-pw-loopback@127.0.0.1:$SMTP_PORT" smtp-loopback)
echo "password, loopback relay without TLS: $res; logins seen from 127.0.0.1: $(auth_from 127.0.0.1)"
[[ $res == delivered\|* && $(auth_from 127.0.0.1) -ge 1 ]] || fail "a loopback relay with a password was refused"
[[ -n $PUBLIC_HOST && $PUBLIC_SMTP_PORT != 0 ]] || fail "no non-loopback address to test SMTP TLS enforcement on"
res=$(smtp_case "smtp://alerts:smtp-pw-remote@$PUBLIC_HOST:$PUBLIC_SMTP_PORT" smtp-remote-password)
echo "password, $PUBLIC_HOST without STARTTLS: $res; logins seen: $(auth_from "$PUBLIC_HOST"), mails: $(mail_from_peer "$PUBLIC_HOST")"
[[ $res == pending\|*STARTTLS* ]] || fail "a password was about to be sent without TLS, or the error does not say why"
[[ $(auth_from "$PUBLIC_HOST") == 0 && $(mail_from_peer "$PUBLIC_HOST") == 0 ]] || fail "the remote server received a login or a mail without TLS"
res=$(smtp_case "smtp://$PUBLIC_HOST:$PUBLIC_SMTP_PORT" smtp-remote-nopassword)
echo "no password, $PUBLIC_HOST without STARTTLS: $res"
[[ $res == delivered\|* ]] || fail "mail without a password to a server without STARTTLS should still go"
# (PostgreSQL itself logs the new value of a reloaded setting; nothing else may show it)
grep 'smtp-pw-' "$WORK/server.log" | grep -qv 'parameter "llm_usage.alert_smtp_url" changed to' \
    && fail "an SMTP password reached the server log"

wq -c "ALTER SYSTEM RESET llm_usage.alert_webhook_url" -c "ALTER SYSTEM RESET llm_usage.alert_webhook_secret" \
   -c "ALTER SYSTEM RESET llm_usage.alert_smtp_url" -c "ALTER SYSTEM RESET llm_usage.alert_email_from" \
   -c "ALTER SYSTEM RESET llm_usage.alert_email_to" -c "ALTER SYSTEM RESET llm_usage.alert_retry_delay" \
   -c "ALTER SYSTEM RESET llm_usage.alert_delivery_attempts" -c "SELECT pg_reload_conf()" >/dev/null
# nothing left pending for the suites after this one
wq -c "UPDATE llm_usage.alerts SET webhook_status = 'failed' WHERE webhook_status = 'pending'" \
   -c "UPDATE llm_usage.alerts SET email_status = 'failed' WHERE email_status = 'pending'" >/dev/null
echo "PASS"
