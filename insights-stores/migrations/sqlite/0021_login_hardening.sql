-- Login hardening (issue 13, parts 3 and 4).
--
-- Accounts: `must_change_password` (the first sign-in replaces the
-- password an administrator set), `totp_pending` (a sealed TOTP seed
-- being enrolled by the user, until proven with a code) and
-- `recovery_codes` (JSON array of the SHA-256 hex of each unused
-- single-use recovery code; never the codes).
--
-- `login_throttles`: sign-in attempts counted before any password is
-- checked, per opaque key (a digest of realm and email, whether or not an
-- account exists), shared by every process on this database.
--
-- Append-only: never edit this file once it has landed; add a new one.

ALTER TABLE accounts ADD COLUMN must_change_password INTEGER NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN totp_pending TEXT;
ALTER TABLE accounts ADD COLUMN recovery_codes TEXT NOT NULL DEFAULT '[]';
ALTER TABLE operator_accounts ADD COLUMN must_change_password INTEGER NOT NULL DEFAULT 0;
ALTER TABLE operator_accounts ADD COLUMN totp_pending TEXT;
ALTER TABLE operator_accounts ADD COLUMN recovery_codes TEXT NOT NULL DEFAULT '[]';

CREATE TABLE login_throttles (
    key          TEXT    NOT NULL PRIMARY KEY, -- hex digest, no personal data
    failures     INTEGER NOT NULL,
    locked_until INTEGER,
    updated_at   INTEGER NOT NULL
) STRICT;
CREATE INDEX login_throttles_by_age ON login_throttles (updated_at);
