-- Stateless API nodes (issue 15 §2): what one process used to keep in
-- memory, so that any request may reach any node.
--
-- `pending_sign_ins`: OIDC sign-ins started and not yet called back,
-- found by the SHA-256 of their `state`; the nonce, PKCE verifier and
-- return path are sealed (a `SealedSecret` as JSON, under the platform
-- key owner's KEK, bound to the state hash), so a reader of this table
-- can neither finish nor replay a sign-in. Taken with DELETE … RETURNING
-- (single use across nodes); 10 minutes at most.
-- `address_throttles`: failed logins per client address (a digest) in a
-- fixed window, counted with one upsert.
-- Both are platform tables (counted before a tenant is known), like
-- `login_throttles`: not granted to `insights_app`.
--
-- `file_jobs`: export and access-bundle jobs of a tenant: state,
-- progress, owner, a lease its node renews (a job past its lease is
-- lost: reported failed, never running forever), expiry, the recordings
-- the file holds (erasure deletes the file) and, once done, the sealed
-- file's blob key and wrapped data key (the only copy: deleting the row
-- shreds the file). Row-level security like every tenant table.
--
-- Append-only: never edit this file once it has landed; add a new one.

CREATE TABLE pending_sign_ins (
    state_hash  text        PRIMARY KEY,
    sealed      text        NOT NULL,
    client_key  text,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX pending_sign_ins_by_expiry ON pending_sign_ins (expires_at);
CREATE INDEX pending_sign_ins_by_client ON pending_sign_ins (client_key, created_at);

CREATE TABLE address_throttles (
    key         text        PRIMARY KEY, -- hex digest, no address in clear
    started_at  timestamptz NOT NULL,
    failures    integer     NOT NULL
);
CREATE INDEX address_throttles_by_age ON address_throttles (started_at);

CREATE TABLE file_jobs (
    tenant_id    uuid        NOT NULL REFERENCES tenants (id),
    id           uuid        NOT NULL,
    kind         text        NOT NULL CHECK (kind IN ('export', 'access-bundle')),
    owner        text        NOT NULL,
    state        text        NOT NULL CHECK (state IN ('running', 'done', 'failed')),
    error        text,
    done         bigint      NOT NULL DEFAULT 0,
    total        bigint      NOT NULL DEFAULT 0,
    details      jsonb       NOT NULL DEFAULT '{}',
    recordings   jsonb       NOT NULL DEFAULT '[]',
    output       jsonb,
    lease_until  timestamptz NOT NULL,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    CHECK ((state = 'done') = (output IS NOT NULL))
);
CREATE INDEX file_jobs_by_expiry ON file_jobs (tenant_id, expires_at);

ALTER TABLE file_jobs ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON file_jobs
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
GRANT SELECT, INSERT, UPDATE, DELETE ON file_jobs TO insights_app;
