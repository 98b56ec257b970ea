-- Recording policy per tenant (issue 17 §1, §2): which calls the gateway
-- records (mode record-all or include-only, plus include and
-- never-record rules) and what it does when recording cannot proceed
-- (failure_mode required or best-effort). One row per tenant; a tenant
-- without a row records all calls and fails closed. `rules` is a JSON
-- array of {id, list, kind, value, label} in evaluation order; values
-- name users, groups, numbers and domains (personal data of the tenant,
-- read only by its admins and the gateway). Row-level security like
-- every tenant table.
--
-- Append-only: never edit this file once it has landed; add a new one.

CREATE TABLE recording_policies (
    tenant_id     uuid        NOT NULL PRIMARY KEY REFERENCES tenants (id),
    mode          text        NOT NULL,
    failure_mode  text        NOT NULL,
    rules         jsonb       NOT NULL,
    updated_at    timestamptz NOT NULL,
    updated_by    text        NOT NULL
);

ALTER TABLE recording_policies ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON recording_policies
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
GRANT SELECT, INSERT, UPDATE, DELETE ON recording_policies TO insights_app;
