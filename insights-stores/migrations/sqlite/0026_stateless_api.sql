-- Stateless API nodes (issue 15 §2): what one process used to keep in
-- memory, so that any request may reach any node.
--
-- `pending_sign_ins`: OIDC sign-ins started and not yet called back,
-- found by the SHA-256 of their `state`; the nonce, PKCE verifier and
-- return path are sealed (a `SealedSecret` as JSON), so a reader of this
-- table can neither finish nor replay a sign-in. Taken with
-- DELETE … RETURNING (single use); 10 minutes at most.
-- `address_throttles`: failed logins per client address (a digest) in a
-- fixed window, counted with one upsert.
-- `file_jobs`: export and access-bundle jobs of a tenant (state,
-- progress, owner, a lease its process renews, expiry, the recordings the
-- file holds, the sealed file's blob key and wrapped data key).
--
-- Append-only: never edit this file once it has landed; add a new one.

CREATE TABLE pending_sign_ins (
    state_hash  TEXT    PRIMARY KEY,
    sealed      TEXT    NOT NULL,
    client_key  TEXT,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX pending_sign_ins_by_expiry ON pending_sign_ins (expires_at);
CREATE INDEX pending_sign_ins_by_client ON pending_sign_ins (client_key, created_at);

CREATE TABLE address_throttles (
    key         TEXT    PRIMARY KEY,
    started_at  INTEGER NOT NULL,
    failures    INTEGER NOT NULL
) STRICT;
CREATE INDEX address_throttles_by_age ON address_throttles (started_at);

CREATE TABLE file_jobs (
    tenant_id    BLOB    NOT NULL REFERENCES tenants (id),
    id           BLOB    NOT NULL,
    kind         TEXT    NOT NULL CHECK (kind IN ('export', 'access-bundle')),
    owner        TEXT    NOT NULL,
    state        TEXT    NOT NULL CHECK (state IN ('running', 'done', 'failed')),
    error        TEXT,
    done         INTEGER NOT NULL DEFAULT 0,
    total        INTEGER NOT NULL DEFAULT 0,
    details      TEXT    NOT NULL DEFAULT '{}',
    recordings   TEXT    NOT NULL DEFAULT '[]',
    output       TEXT,
    lease_until  INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id),
    CHECK ((state = 'done') = (output IS NOT NULL))
) STRICT;
CREATE INDEX file_jobs_by_expiry ON file_jobs (tenant_id, expires_at);
