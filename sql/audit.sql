--
-- audit: append-only log, trail, failures, security events, report
--
SELECT llm_usage.create_tenant('au', 'pro');
SELECT llm_usage.audit('au', 'usage', 'export_report') > 0 AS written;
SELECT llm_usage.audit('au', 'security', 'login', 'failure', '{"ip": "192.0.2.1"}') > 0 AS written;
SELECT llm_usage.audit('au', 'security.key', 'rotate_key', 'success', '{"key": 7}') > 0 AS written;
SELECT llm_usage.audit('au', 'billing', 'charge', 'denied') > 0 AS written;
SELECT event_type, action, result, actor, role_name, details, origin
  FROM llm_usage.audit_events WHERE tenant_id = 'au' ORDER BY audit_id;

SELECT event_type, action, result FROM llm_usage.audit_trail('au');
SELECT event_type, action, result FROM llm_usage.failed_operations('au');
SELECT event_type, action, result FROM llm_usage.security_events('au');
SELECT count(*) FROM llm_usage.audit_trail('au', 1);
SELECT r - 'from' - 'to' - 'failures' AS report, jsonb_path_query_array(r->'failures', '$[*].action') AS failures
  FROM llm_usage.audit_report('au', now() - interval '1 day', now() + interval '1 day') r;
SELECT r->'total' AS total FROM llm_usage.audit_report('au', now() + interval '1 day', now() + interval '2 days') r;

-- append-only, even for the owner
SELECT try($$UPDATE llm_usage.audit_events SET action = 'x' WHERE tenant_id = 'au'$$);
SELECT try($$DELETE FROM llm_usage.audit_events WHERE tenant_id = 'au'$$);
SELECT try($$TRUNCATE llm_usage.audit_events$$);
SELECT count(*) FROM llm_usage.audit_events WHERE tenant_id = 'au';

-- bad input, nothing written
SELECT try($$SELECT llm_usage.audit(NULL, 'usage', 'x')$$);
SELECT try($$SELECT llm_usage.audit('nobody', 'usage', 'x')$$);
SELECT try($$SELECT llm_usage.audit('au', NULL, 'x')$$);
SELECT try($$SELECT llm_usage.audit('au', 'Bad Type', 'x')$$);
SELECT try($$SELECT llm_usage.audit('au', 'usage', NULL)$$);
SELECT try($$SELECT llm_usage.audit('au', 'usage', '  ')$$);
SELECT try($$SELECT llm_usage.audit('au', 'usage', 'x', 'maybe')$$);
SELECT try($$SELECT llm_usage.audit('au', 'usage', 'x', NULL)$$);
SELECT try($$SELECT llm_usage.audit('au', 'usage', 'x', 'success', '"text"')$$);
SELECT try($$SELECT llm_usage.audit('au', 'usage', 'x', 'success', NULL)$$);
SELECT try($$SELECT llm_usage.audit('au', 'usage', E'two\nlines')$$);
SELECT try($$SELECT llm_usage.audit('au', 'usage', 'x', 'success', jsonb_build_object('x', repeat('y', 8200)))$$);
SELECT try($$SELECT * FROM llm_usage.audit_trail('au', 0)$$);
SELECT try($$SELECT * FROM llm_usage.audit_trail('au', NULL)$$);
SELECT try($$SELECT * FROM llm_usage.failed_operations('nobody')$$);
SELECT try($$SELECT * FROM llm_usage.security_events('au', -1)$$);
SELECT try($$SELECT llm_usage.audit_report('au', '2026-02-01 00:00+00', '2026-01-01 00:00+00')$$);
SELECT try($$SELECT llm_usage.audit_report(NULL, now(), now())$$);
SELECT count(*) FROM llm_usage.audit_events WHERE tenant_id = 'au';

-- what an application writes is marked as its own; the extension never
-- trusts it: odd or forged quota denials raise no alert and break nothing
SELECT llm_usage.audit('au', 'quota', 'quota_exceeded', 'denied', d) > 0 AS written
  FROM unnest(ARRAY['{"denied": 1}', '{"denied": {"quota_type": "tokens"}}', '{"denied": null}', '{"denied": [null, 1, "x"]}',
                    '{"denied": [{"quota_type": null, "period": null}]}',
                    '{"denied": [{"quota_type": "tokens", "period": "day", "quota_limit": "lots"}]}',
                    '{"denied": [{"quota_type": "forged", "period": "day", "quota_limit": 1}]}',
                    '{"denied": [{"quota_type": "tokens", "period": "day", "quota_limit": 1}]}']::jsonb[]) d;
SELECT count(*) AS app_written, count(*) FILTER (WHERE origin = 'application') AS marked
  FROM llm_usage.audit_events WHERE tenant_id = 'au' AND action = 'quota_exceeded';
SELECT llm_usage.check_alerts() >= 0 AS checked;
SELECT count(*) AS alerts_from_forged_denials FROM llm_usage.alerts WHERE tenant_id = 'au';
SELECT count(*) AS failed_rules FROM llm_usage.alerts WHERE tenant_id = '*' AND kind = 'maintenance_failed';
