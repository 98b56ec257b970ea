-- Alerts (issue 17 §4): raised alerts, the channels that carry them, and
-- the nodes' heartbeats the node-down and spool rules read.
--
-- `alerts` and `alert_channels` belong to a tenant, or to the
-- installation: those rows carry the nil UUID as tenant_id (no tenant
-- ever has it). An alert's details hold ids, counts and codes only; a
-- channel's secret (a webhook's HMAC key, a Teams webhook URL) is sealed
-- under the owner's key-encryption key. `node_heartbeats` is platform
-- scope.
--
-- Append-only: never edit this file once it has landed; add a new one.

CREATE TABLE alerts (
    tenant_id        BLOB    NOT NULL,
    id               BLOB    NOT NULL,
    kind             TEXT    NOT NULL,
    key              TEXT    NOT NULL,
    details          TEXT    NOT NULL,
    occurrences      INTEGER NOT NULL,
    first_at         INTEGER NOT NULL,
    last_at          INTEGER NOT NULL,
    delivery         TEXT    NOT NULL,
    deliveries       TEXT    NOT NULL,
    attempts         INTEGER NOT NULL,
    acknowledged_at  INTEGER,
    acknowledged_by  TEXT,
    PRIMARY KEY (tenant_id, id)
) STRICT;
CREATE INDEX alerts_open ON alerts (tenant_id, kind, key, first_at) WHERE acknowledged_at IS NULL;
CREATE INDEX alerts_pending ON alerts (tenant_id, first_at) WHERE delivery = 'pending';

CREATE TABLE alert_channels (
    tenant_id   BLOB    NOT NULL,
    id          BLOB    NOT NULL,
    kind        TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    target      TEXT    NOT NULL,
    secret      TEXT,
    enabled     INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    created_by  TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, id)
) STRICT;

CREATE TABLE node_heartbeats (
    node               TEXT    PRIMARY KEY,
    roles              TEXT    NOT NULL,
    at                 INTEGER NOT NULL,
    spool_used         INTEGER,
    spool_quota        INTEGER,
    oldest_pending_at  INTEGER
) STRICT;
