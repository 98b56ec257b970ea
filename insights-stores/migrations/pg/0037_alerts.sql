-- Alerts (issue 17 §4): raised alerts, the channels that carry them, and
-- the nodes' heartbeats the node-down and spool rules read.
--
-- `alerts` and `alert_channels` belong to a tenant, or to the
-- installation: those rows carry the nil UUID as tenant_id (no tenant
-- ever has it) and are reached only outside tenant sessions, by
-- platform operators and the scheduler. Row-level security like every
-- tenant table, so a tenant session sees its own rows only (never the
-- installation's). An alert's details hold ids, counts and codes only;
-- a channel's secret (a webhook's HMAC key, a Teams webhook URL) is
-- sealed under the owner's key-encryption key.
--
-- `node_heartbeats` is platform scope (no tenant, not granted to
-- insights_app), like scheduler_leases.
--
-- Append-only: never edit this file once it has landed; add a new one.

CREATE TABLE alerts (
    tenant_id        uuid        NOT NULL,
    id               uuid        NOT NULL,
    kind             text        NOT NULL,
    key              text        NOT NULL,
    details          jsonb       NOT NULL,
    occurrences      bigint      NOT NULL,
    first_at         timestamptz NOT NULL,
    last_at          timestamptz NOT NULL,
    delivery         text        NOT NULL,
    deliveries       jsonb       NOT NULL,
    attempts         bigint      NOT NULL,
    acknowledged_at  timestamptz,
    acknowledged_by  text,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX alerts_open ON alerts (tenant_id, kind, key, first_at) WHERE acknowledged_at IS NULL;
CREATE INDEX alerts_pending ON alerts (tenant_id, first_at) WHERE delivery = 'pending';

CREATE TABLE alert_channels (
    tenant_id   uuid        NOT NULL,
    id          uuid        NOT NULL,
    kind        text        NOT NULL,
    name        text        NOT NULL,
    target      text        NOT NULL,
    secret      jsonb,
    enabled     boolean     NOT NULL,
    created_at  timestamptz NOT NULL,
    created_by  text        NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

ALTER TABLE alerts ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON alerts
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
GRANT SELECT, INSERT, UPDATE ON alerts TO insights_app;

ALTER TABLE alert_channels ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON alert_channels
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
GRANT SELECT, INSERT, UPDATE, DELETE ON alert_channels TO insights_app;

CREATE TABLE node_heartbeats (
    node               text        PRIMARY KEY,
    roles              text        NOT NULL,
    at                 timestamptz NOT NULL,
    spool_used         bigint,
    spool_quota        bigint,
    oldest_pending_at  timestamptz
);
