-- Recording policy per tenant (issue 17 §1, §2): which calls the gateway
-- records (mode record-all or include-only, plus include and
-- never-record rules) and what it does when recording cannot proceed
-- (failure_mode required or best-effort). One row per tenant; a tenant
-- without a row records all calls and fails closed. `rules` is a JSON
-- array of {id, list, kind, value, label} in evaluation order; values
-- name users, groups, numbers and domains (personal data of the tenant,
-- read only by its admins and the gateway).
--
-- Append-only: never edit this file once it has landed; add a new one.

CREATE TABLE recording_policies (
    tenant_id     BLOB    NOT NULL PRIMARY KEY REFERENCES tenants (id),
    mode          TEXT    NOT NULL,
    failure_mode  TEXT    NOT NULL,
    rules         TEXT    NOT NULL,
    updated_at    INTEGER NOT NULL,
    updated_by    TEXT    NOT NULL
) STRICT;
