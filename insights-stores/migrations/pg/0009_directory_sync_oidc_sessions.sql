-- Directory sync state (issue 7, part 7): the Graph delta link of the
-- last complete run per tenant; and browser sessions of directory
-- principals signed in through OIDC (issue 5, part 2), which have no
-- local account behind them. Row-level security like every tenant table.
--
-- Append-only: never edit this file once it has landed; add a new one.

CREATE TABLE directory_sync_state (
    tenant_id         uuid        NOT NULL PRIMARY KEY REFERENCES tenants (id),
    delta_link        text,
    last_sync_at      timestamptz NOT NULL,
    last_full_sync_at timestamptz
);

ALTER TABLE directory_sync_state ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON directory_sync_state
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
GRANT SELECT, INSERT, UPDATE ON directory_sync_state TO insights_app;

CREATE TABLE oidc_sessions (
    tenant_id         uuid        NOT NULL REFERENCES tenants (id),
    token_hash        text        NOT NULL,
    subject           text        NOT NULL,
    role              text        NOT NULL,
    directory_user_id uuid,
    created_at        timestamptz NOT NULL,
    last_seen_at      timestamptz NOT NULL,
    expires_at        timestamptz NOT NULL,
    revoked_at        timestamptz,
    PRIMARY KEY (tenant_id, token_hash)
);
CREATE INDEX oidc_sessions_by_expiry ON oidc_sessions (tenant_id, expires_at);

ALTER TABLE oidc_sessions ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON oidc_sessions
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
GRANT SELECT, INSERT, UPDATE ON oidc_sessions TO insights_app;
