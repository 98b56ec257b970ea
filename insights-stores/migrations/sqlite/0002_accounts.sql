-- Local accounts and browser sessions (authentication, issue 4).
--
-- Two realms: `accounts`/`sessions` hold tenant users (tenant_id first,
-- like every tenant table); `operator_accounts`/`operator_sessions` hold
-- platform operators, who belong to no tenant. The operator tables carry
-- the same columns minus tenant_id; profile and directory user are
-- always NULL there.
--
-- No secret is stored in clear: passwords as argon2id PHC strings, TOTP
-- seeds sealed (JSON `SealedSecret`: a data key wrapped by the tenant's
-- KEK and the AES-256-GCM ciphertext), sessions as the SHA-256 (hex) of
-- their opaque token.
--
-- Append-only: never edit this file once it has landed; add a new one.

CREATE TABLE accounts (
    tenant_id           BLOB    NOT NULL REFERENCES tenants (id),
    id                  BLOB    NOT NULL,
    email               TEXT    NOT NULL, -- normalised: trimmed, lower case
    role                TEXT    NOT NULL,
    security_profile_id BLOB,
    directory_user_id   BLOB,
    password_hash       TEXT    NOT NULL,
    totp_sealed         TEXT,             -- JSON SealedSecret
    totp_last_step      INTEGER,
    failed_logins       INTEGER NOT NULL,
    locked_until        INTEGER,
    active              INTEGER NOT NULL,
    created_at          INTEGER NOT NULL,
    last_login_at       INTEGER,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, email)
) STRICT;

CREATE TABLE operator_accounts (
    id                  BLOB    NOT NULL PRIMARY KEY,
    email               TEXT    NOT NULL UNIQUE,
    role                TEXT    NOT NULL CHECK (role = 'platform-operator'),
    security_profile_id BLOB    CHECK (security_profile_id IS NULL),
    directory_user_id   BLOB    CHECK (directory_user_id IS NULL),
    password_hash       TEXT    NOT NULL,
    totp_sealed         TEXT,
    totp_last_step      INTEGER,
    failed_logins       INTEGER NOT NULL,
    locked_until        INTEGER,
    active              INTEGER NOT NULL,
    created_at          INTEGER NOT NULL,
    last_login_at       INTEGER
) STRICT;

CREATE TABLE sessions (
    tenant_id     BLOB    NOT NULL,
    token_hash    TEXT    NOT NULL,
    account_id    BLOB    NOT NULL,
    created_at    INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    revoked_at    INTEGER,
    PRIMARY KEY (tenant_id, token_hash),
    FOREIGN KEY (tenant_id, account_id) REFERENCES accounts (tenant_id, id)
) STRICT;
CREATE INDEX sessions_by_account ON sessions (tenant_id, account_id);

CREATE TABLE operator_sessions (
    token_hash    TEXT    NOT NULL PRIMARY KEY,
    account_id    BLOB    NOT NULL REFERENCES operator_accounts (id),
    created_at    INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    revoked_at    INTEGER
) STRICT;
CREATE INDEX operator_sessions_by_account ON operator_sessions (account_id);
