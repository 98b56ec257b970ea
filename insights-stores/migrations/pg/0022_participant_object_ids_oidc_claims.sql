-- Directory identity (issue 13, parts 1 and 8).
--
-- `participants.directory_object_id`: the Entra object id of a participant
-- who is a user of the tenant's directory, stored at capture, so that a
-- directory sync can link a participant recorded before their user was
-- synchronised (e-mail or UPN, SIP URI, directory user id); a
-- data-subject request by e-mail or UPN then finds them. Erasure clears
-- it with the other identifiers.
--
-- `oidc_sessions`: the id token's `roles` and `groups` claims (JSON arrays)
-- that map a browser session to a security profile, and when the
-- directory user was last confirmed active.
--
-- Both tables keep their row-level-security policies (columns only).
--
-- Append-only: never edit this file once it has landed; add a new one.

ALTER TABLE participants ADD COLUMN directory_object_id text;
-- Stored lower-case. Only participants a sync may still link are indexed.
CREATE INDEX participants_unlinked_object_id_idx
    ON participants (tenant_id, directory_object_id)
    WHERE directory_object_id IS NOT NULL AND (email IS NULL OR directory_user_id IS NULL);

ALTER TABLE oidc_sessions ADD COLUMN claim_roles jsonb NOT NULL DEFAULT '[]';
ALTER TABLE oidc_sessions ADD COLUMN claim_groups jsonb NOT NULL DEFAULT '[]';
ALTER TABLE oidc_sessions ADD COLUMN active_confirmed_at timestamptz;
