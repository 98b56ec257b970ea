-- Completeness reconciliation (issue 17 §3): the outcome per call of the
-- reconciliation of Microsoft's call records against the recordings, the
-- runs that produced them, and the tenant's alert threshold. `detail` is
-- the JSON form of the domain value (ids, times, counts and rule names:
-- no names, numbers or addresses); the other columns are what queries
-- filter and order by. Row-level security like every tenant table.
--
-- Append-only: never edit this file once it has landed; add a new one.

CREATE TABLE completeness_calls (
    tenant_id   uuid        NOT NULL REFERENCES tenants (id),
    call_id     text        NOT NULL,
    started_at  timestamptz NOT NULL,
    status      text        NOT NULL,
    detail      jsonb       NOT NULL,
    run_id      uuid        NOT NULL,
    PRIMARY KEY (tenant_id, call_id)
);

CREATE INDEX completeness_calls_started ON completeness_calls (tenant_id, started_at);

CREATE TABLE completeness_runs (
    tenant_id   uuid        NOT NULL REFERENCES tenants (id),
    id          uuid        NOT NULL,
    started_at  timestamptz NOT NULL,
    detail      jsonb       NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE INDEX completeness_runs_started ON completeness_runs (tenant_id, started_at);

CREATE TABLE completeness_settings (
    tenant_id           uuid        NOT NULL PRIMARY KEY REFERENCES tenants (id),
    threshold_permille  integer     NOT NULL,
    updated_at          timestamptz NOT NULL,
    updated_by          text        NOT NULL
);

ALTER TABLE completeness_calls ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON completeness_calls
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
GRANT SELECT, INSERT, UPDATE, DELETE ON completeness_calls TO insights_app;

ALTER TABLE completeness_runs ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON completeness_runs
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
GRANT SELECT, INSERT, UPDATE, DELETE ON completeness_runs TO insights_app;

ALTER TABLE completeness_settings ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON completeness_settings
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
GRANT SELECT, INSERT, UPDATE, DELETE ON completeness_settings TO insights_app;
