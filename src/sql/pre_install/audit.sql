/*
 * src/sql/pre_install/audit.sql — the audit log (install only)
 *
 * Append-only: the triggers in src/sql/audit.sql refuse UPDATE, DELETE and
 * TRUNCATE.
 */

CREATE TABLE llm_usage.audit_events (
    tenant_id  text NOT NULL,
    audit_id   bigint GENERATED ALWAYS AS IDENTITY,
    event_type text NOT NULL,
    action     text NOT NULL,
    result     text NOT NULL DEFAULT 'success'
               CONSTRAINT audit_events_result_check CHECK (result IN ('success', 'failure', 'denied')),
    actor      text NOT NULL DEFAULT session_user,
    role_name  text NOT NULL DEFAULT current_user,
    details    jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, audit_id),
    origin     text NOT NULL DEFAULT 'llm_usage'
               CONSTRAINT audit_events_origin_check CHECK (origin IN ('llm_usage', 'application', 'unknown'))
);
CREATE INDEX audit_events_created_idx ON llm_usage.audit_events (tenant_id, created_at);
COMMENT ON TABLE llm_usage.audit_events IS
'Append-only audit log: what was done to or for a tenant, by whom, with what result.  Rows cannot be updated or deleted.';
COMMENT ON COLUMN llm_usage.audit_events.actor IS 'session_user of the session that caused the event.';
COMMENT ON COLUMN llm_usage.audit_events.role_name IS 'The role the action was checked for: the current user when the llm_usage API was entered (llm_usage._caller()).';
COMMENT ON COLUMN llm_usage.audit_events.origin IS
'Who wrote the event: llm_usage (the extension itself; the only events alerts are derived from), application (through llm_usage.audit(), as the role in role_name), unknown (written before 1.3, when this was not recorded).';
