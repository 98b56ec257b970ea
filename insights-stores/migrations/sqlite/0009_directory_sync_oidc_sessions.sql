-- Directory sync state (issue 7, part 7): the Graph delta link of the
-- last complete run per tenant; and browser sessions of directory
-- principals signed in through OIDC (issue 5, part 2), which have no
-- local account behind them.
--
-- Append-only: never edit this file once it has landed; add a new one.

CREATE TABLE directory_sync_state (
    tenant_id         BLOB    NOT NULL PRIMARY KEY REFERENCES tenants (id),
    delta_link        TEXT,
    last_sync_at      INTEGER NOT NULL,
    last_full_sync_at INTEGER
) STRICT;

CREATE TABLE oidc_sessions (
    tenant_id         BLOB    NOT NULL REFERENCES tenants (id),
    token_hash        TEXT    NOT NULL,
    subject           TEXT    NOT NULL,
    role              TEXT    NOT NULL,
    directory_user_id BLOB,
    created_at        INTEGER NOT NULL,
    last_seen_at      INTEGER NOT NULL,
    expires_at        INTEGER NOT NULL,
    revoked_at        INTEGER,
    PRIMARY KEY (tenant_id, token_hash)
) STRICT;
CREATE INDEX oidc_sessions_by_expiry ON oidc_sessions (tenant_id, expires_at);
