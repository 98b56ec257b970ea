-- Registered signing keys (issue 14, part 2).
--
-- The public half of every node's Ed25519 key that signs custody
-- manifests and erasure certificates, so evidence signed on one node
-- verifies on any other and after a rotation. `key_id` is derived from
-- the public key (`ed25519:` + 32 hex digits of its SHA-256). Rotated keys
-- keep their row with `valid_until` set. Public keys and node names only:
-- no secret and no personal data.
--
-- A platform table (no tenant): like `login_throttles` it is not granted
-- to `insights_app`, so a tenant session cannot read or write it.
--
-- Append-only: never edit this file once it has landed; add a new one.

CREATE TABLE signing_keys (
    key_id          text        PRIMARY KEY,
    public_key      text        NOT NULL UNIQUE,
    node_name       text        NOT NULL,
    installation_id uuid        NOT NULL,
    valid_from      timestamptz NOT NULL,
    valid_until     timestamptz
);
