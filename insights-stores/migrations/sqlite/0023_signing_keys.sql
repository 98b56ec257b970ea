-- Registered signing keys (issue 14, part 2).
--
-- The public half of every node's Ed25519 key that signs custody
-- manifests and erasure certificates, so evidence signed on one node
-- verifies on any other and after a rotation. `key_id` is derived from
-- the public key (`ed25519:` + 32 hex digits of its SHA-256). Rotated keys
-- keep their row with `valid_until` set. Public keys and node names only:
-- no secret and no personal data. Platform scope (no tenant).
--
-- Append-only: never edit this file once it has landed; add a new one.

CREATE TABLE signing_keys (
    key_id          TEXT    NOT NULL PRIMARY KEY,
    public_key      TEXT    NOT NULL UNIQUE,
    node_name       TEXT    NOT NULL,
    installation_id BLOB    NOT NULL,
    valid_from      INTEGER NOT NULL,
    valid_until     INTEGER
) STRICT;
