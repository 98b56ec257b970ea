-- Local accounts and browser sessions (authentication, issue 4).
--
-- Two realms: `accounts`/`sessions` hold tenant users (tenant_id in every
-- key, row-level security like every tenant table); `operator_accounts`/
-- `operator_sessions` hold platform operators, who belong to no tenant:
-- platform tables, not granted to `insights_app`, so no tenant session
-- can read them. The operator tables carry the same columns minus
-- tenant_id; profile and directory user are always NULL there.
--
-- No secret is stored in clear: passwords as argon2id PHC strings, TOTP
-- seeds sealed (JSON `SealedSecret`), sessions as the SHA-256 (hex) of
-- their opaque token.
--
-- Append-only: never edit this file once it has landed; add a new one.

CREATE TABLE accounts (
    tenant_id           uuid        NOT NULL REFERENCES tenants (id),
    id                  uuid        NOT NULL,
    email               text        NOT NULL, -- normalised: trimmed, lower case
    role                text        NOT NULL,
    security_profile_id uuid,
    directory_user_id   uuid,
    password_hash       text        NOT NULL,
    totp_sealed         text,                 -- JSON SealedSecret
    totp_last_step      bigint,
    failed_logins       integer     NOT NULL,
    locked_until        timestamptz,
    active              boolean     NOT NULL,
    created_at          timestamptz NOT NULL,
    last_login_at       timestamptz,
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT accounts_email_key UNIQUE (tenant_id, email)
);

CREATE TABLE operator_accounts (
    id                  uuid        PRIMARY KEY,
    email               text        NOT NULL,
    role                text        NOT NULL CHECK (role = 'platform-operator'),
    security_profile_id uuid        CHECK (security_profile_id IS NULL),
    directory_user_id   uuid        CHECK (directory_user_id IS NULL),
    password_hash       text        NOT NULL,
    totp_sealed         text,
    totp_last_step      bigint,
    failed_logins       integer     NOT NULL,
    locked_until        timestamptz,
    active              boolean     NOT NULL,
    created_at          timestamptz NOT NULL,
    last_login_at       timestamptz,
    CONSTRAINT operator_accounts_email_key UNIQUE (email)
);

CREATE TABLE sessions (
    tenant_id     uuid        NOT NULL,
    token_hash    text        NOT NULL,
    account_id    uuid        NOT NULL,
    created_at    timestamptz NOT NULL,
    last_seen_at  timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    revoked_at    timestamptz,
    PRIMARY KEY (tenant_id, token_hash),
    FOREIGN KEY (tenant_id, account_id) REFERENCES accounts (tenant_id, id)
);
CREATE INDEX sessions_by_account ON sessions (tenant_id, account_id);

CREATE TABLE operator_sessions (
    token_hash    text        PRIMARY KEY,
    account_id    uuid        NOT NULL REFERENCES operator_accounts (id),
    created_at    timestamptz NOT NULL,
    last_seen_at  timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    revoked_at    timestamptz
);
CREATE INDEX operator_sessions_by_account ON operator_sessions (account_id);

-- Row-level security on the tenant tables, exactly like 0001.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['accounts', 'sessions'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I '
            'USING (tenant_id = NULLIF(current_setting(''app.tenant_id'', true), '''')::uuid) '
            'WITH CHECK (tenant_id = NULLIF(current_setting(''app.tenant_id'', true), '''')::uuid)',
            t);
    END LOOP;
END
$$;

GRANT SELECT, INSERT, UPDATE ON accounts, sessions TO insights_app;
