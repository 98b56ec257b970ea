-- Insights metadata store, SQLite backend: initial schema.
--
-- Conventions
-- * Every table of tenant data carries `tenant_id` and is keyed by
--   (tenant_id, id); children reference their recording through
--   (tenant_id, recording_id), so a row can never hang off another
--   tenant's recording.
-- * Ids are UUIDs stored as 16-byte BLOBs (byte order = UUID order, so a
--   UUIDv7 id sorts by creation time).
-- * Timestamps are INTEGER microseconds since the Unix epoch: they sort,
--   filter and round-trip exactly (audit hashes depend on that).
-- * Enums are stored as their stable string form; small structured
--   values (settings, scopes, lists) as JSON text.
-- * Tables are STRICT, so a wrongly typed bind is an error, not a
--   silently coerced value.
-- * Tables indexed by FTS5 have an explicit INTEGER PRIMARY KEY (`pk`):
--   an external-content FTS index needs rowids that VACUUM never changes.
--
-- Append-only: never edit this file once it has landed; add a new one.

CREATE TABLE tenants (
    id                  BLOB    NOT NULL PRIMARY KEY,
    name                TEXT    NOT NULL UNIQUE,
    directory_tenant_id BLOB    UNIQUE,
    settings            TEXT    NOT NULL, -- JSON TenantSettings
    created_at          INTEGER NOT NULL
) STRICT;

CREATE TABLE directory_users (
    tenant_id           BLOB    NOT NULL REFERENCES tenants (id),
    id                  BLOB    NOT NULL,
    directory_object_id TEXT,
    first_name          TEXT,
    last_name           TEXT,
    display_name        TEXT,
    alias               TEXT,
    email               TEXT,
    upn                 TEXT,
    phone_numbers       TEXT    NOT NULL, -- JSON array of strings
    sip_uri             TEXT,
    tel_uri             TEXT,
    groups              TEXT    NOT NULL, -- JSON array of strings
    active              INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
) STRICT;
CREATE UNIQUE INDEX directory_users_by_object_id
    ON directory_users (tenant_id, directory_object_id)
    WHERE directory_object_id IS NOT NULL;
CREATE INDEX directory_users_by_name
    ON directory_users (tenant_id, last_name, first_name, id);

CREATE TABLE recordings (
    tenant_id            BLOB    NOT NULL REFERENCES tenants (id),
    id                   BLOB    NOT NULL,
    kind                 TEXT    NOT NULL,
    direction            TEXT    NOT NULL,
    started_at           INTEGER NOT NULL,
    ended_at             INTEGER,
    duration_ms          INTEGER,
    external_call_id     TEXT,
    call_chain_id        TEXT,
    status               TEXT    NOT NULL,
    result_code          TEXT,
    retention_class      TEXT    NOT NULL,
    legal_hold           INTEGER NOT NULL,
    has_transcript       INTEGER NOT NULL,
    -- MediaObject, all NULL when there is none (media_container decides).
    media_container      TEXT,
    media_key            TEXT,
    media_byte_size      INTEGER,
    media_sha256         TEXT,
    media_data_key_id    BLOB,
    media_content_type   TEXT,
    media_plaintext_size INTEGER,
    created_at           INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
) STRICT;
CREATE INDEX recordings_by_start ON recordings (tenant_id, started_at, id);
-- The duration sorts order by these exact expressions (recordings without
-- a duration last in both directions).
CREATE INDEX recordings_by_duration_asc
    ON recordings (tenant_id, COALESCE(duration_ms, 9223372036854775807), id);
CREATE INDEX recordings_by_duration_desc
    ON recordings (tenant_id, COALESCE(duration_ms, -9223372036854775807), id);
CREATE INDEX recordings_by_call_id ON recordings (tenant_id, external_call_id)
    WHERE external_call_id IS NOT NULL;
CREATE INDEX recordings_by_data_key ON recordings (tenant_id, media_data_key_id)
    WHERE media_data_key_id IS NOT NULL;

CREATE TABLE participants (
    pk                INTEGER PRIMARY KEY,
    tenant_id         BLOB    NOT NULL,
    recording_id      BLOB    NOT NULL,
    id                BLOB    NOT NULL,
    ord               INTEGER NOT NULL, -- insertion order within the recording
    role              TEXT    NOT NULL,
    display_name      TEXT,
    phone_number      TEXT,
    uri               TEXT,
    email             TEXT,
    directory_user_id BLOB,
    recorded_user     INTEGER NOT NULL,
    joined_ms         INTEGER,
    left_ms           INTEGER,
    -- Digits of the normalised phone number and of a tel: URI, separated
    -- by a space: number search is a substring match on it.
    phone_digits      TEXT    NOT NULL,
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, recording_id)
        REFERENCES recordings (tenant_id, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX participants_by_recording ON participants (tenant_id, recording_id, ord);
CREATE INDEX participants_by_user ON participants (tenant_id, directory_user_id)
    WHERE directory_user_id IS NOT NULL;

-- Participant words: names are not stemmed; diacritics are folded.
CREATE VIRTUAL TABLE participants_fts USING fts5 (
    display_name, email, uri,
    content = 'participants', content_rowid = 'pk',
    tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER participants_fts_insert AFTER INSERT ON participants BEGIN
    INSERT INTO participants_fts (rowid, display_name, email, uri)
    VALUES (new.pk, new.display_name, new.email, new.uri);
END;
CREATE TRIGGER participants_fts_delete AFTER DELETE ON participants BEGIN
    INSERT INTO participants_fts (participants_fts, rowid, display_name, email, uri)
    VALUES ('delete', old.pk, old.display_name, old.email, old.uri);
END;
CREATE TRIGGER participants_fts_update AFTER UPDATE ON participants BEGIN
    INSERT INTO participants_fts (participants_fts, rowid, display_name, email, uri)
    VALUES ('delete', old.pk, old.display_name, old.email, old.uri);
    INSERT INTO participants_fts (rowid, display_name, email, uri)
    VALUES (new.pk, new.display_name, new.email, new.uri);
END;

CREATE TABLE media_streams (
    tenant_id      BLOB    NOT NULL,
    recording_id   BLOB    NOT NULL,
    id             BLOB    NOT NULL,
    ord            INTEGER NOT NULL, -- insertion order within the recording
    participant_id BLOB,
    track          INTEGER NOT NULL,
    media_type     TEXT    NOT NULL,
    codec          TEXT    NOT NULL,
    sample_rate    INTEGER NOT NULL,
    start_ms       INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, recording_id)
        REFERENCES recordings (tenant_id, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX media_streams_by_recording ON media_streams (tenant_id, recording_id, ord);

CREATE TABLE transcript_segments (
    pk             INTEGER PRIMARY KEY,
    tenant_id      BLOB    NOT NULL,
    recording_id   BLOB    NOT NULL,
    id             BLOB    NOT NULL,
    participant_id BLOB,
    start_ms       INTEGER NOT NULL,
    end_ms         INTEGER NOT NULL,
    text           TEXT    NOT NULL,
    confidence     REAL    NOT NULL,
    language       TEXT,
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, recording_id)
        REFERENCES recordings (tenant_id, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX transcript_segments_by_recording
    ON transcript_segments (tenant_id, recording_id, start_ms, id);

-- Spoken words: English stemming (porter) over unicode61.
CREATE VIRTUAL TABLE transcript_fts USING fts5 (
    text,
    content = 'transcript_segments', content_rowid = 'pk',
    tokenize = 'porter unicode61 remove_diacritics 2'
);
CREATE TRIGGER transcript_fts_insert AFTER INSERT ON transcript_segments BEGIN
    INSERT INTO transcript_fts (rowid, text) VALUES (new.pk, new.text);
END;
CREATE TRIGGER transcript_fts_delete AFTER DELETE ON transcript_segments BEGIN
    INSERT INTO transcript_fts (transcript_fts, rowid, text) VALUES ('delete', old.pk, old.text);
END;
CREATE TRIGGER transcript_fts_update AFTER UPDATE ON transcript_segments BEGIN
    INSERT INTO transcript_fts (transcript_fts, rowid, text) VALUES ('delete', old.pk, old.text);
    INSERT INTO transcript_fts (rowid, text) VALUES (new.pk, new.text);
END;

CREATE TABLE insights (
    tenant_id            BLOB    NOT NULL,
    recording_id         BLOB    NOT NULL,
    id                   BLOB    NOT NULL,
    kind                 TEXT    NOT NULL,
    text                 TEXT    NOT NULL,
    owner_participant_id BLOB,
    provider             TEXT    NOT NULL,
    created_at           INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, recording_id)
        REFERENCES recordings (tenant_id, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX insights_by_recording ON insights (tenant_id, recording_id);

CREATE TABLE audit_events (
    tenant_id    BLOB    NOT NULL REFERENCES tenants (id),
    seq          INTEGER NOT NULL,
    id           BLOB    NOT NULL,
    at           INTEGER NOT NULL,
    actor        TEXT    NOT NULL,
    action       TEXT    NOT NULL,
    recording_id BLOB,
    target       TEXT,
    reason       TEXT,
    source       TEXT,
    details      TEXT    NOT NULL, -- JSON, exactly as hashed
    prev_hash    TEXT    NOT NULL,
    hash         TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, seq),
    UNIQUE (tenant_id, id)
) STRICT;
CREATE INDEX audit_events_by_action ON audit_events (tenant_id, action, seq);
CREATE INDEX audit_events_by_recording ON audit_events (tenant_id, recording_id, seq)
    WHERE recording_id IS NOT NULL;
-- The chain is append-only. (Tampering below the application is still
-- detected by the hash chain; this stops accidents through the app.)
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;

-- The recorded head of each tenant's chain, kept apart from the events so
-- that deleting events from the end is detected.
CREATE TABLE audit_heads (
    tenant_id BLOB    NOT NULL PRIMARY KEY REFERENCES tenants (id),
    seq       INTEGER NOT NULL,
    hash      TEXT    NOT NULL
) STRICT;

CREATE TABLE retention_policies (
    tenant_id   BLOB    NOT NULL REFERENCES tenants (id),
    id          BLOB    NOT NULL,
    name        TEXT    NOT NULL,
    scope       TEXT    NOT NULL, -- JSON RetentionScope
    retain_days INTEGER NOT NULL,
    action      TEXT    NOT NULL,
    enabled     INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
) STRICT;

CREATE TABLE legal_holds (
    tenant_id BLOB    NOT NULL REFERENCES tenants (id),
    id        BLOB    NOT NULL,
    case_name TEXT    NOT NULL,
    reason    TEXT,
    scope     TEXT    NOT NULL, -- JSON HoldScope
    placed_by TEXT    NOT NULL,
    placed_at INTEGER NOT NULL,
    lifted_by TEXT,
    lifted_at INTEGER,
    PRIMARY KEY (tenant_id, id)
) STRICT;
CREATE INDEX legal_holds_by_placed ON legal_holds (tenant_id, placed_at, id);

CREATE TABLE security_profiles (
    tenant_id   BLOB NOT NULL REFERENCES tenants (id),
    id          BLOB NOT NULL,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL,
    permissions TEXT NOT NULL, -- JSON array of permission strings
    scope       TEXT NOT NULL, -- JSON VisibilityScope
    PRIMARY KEY (tenant_id, id)
) STRICT;

-- Wrapped data keys. Shredding deletes the row; `secure_delete` (set on
-- every connection) overwrites the freed bytes in the database file.
CREATE TABLE data_keys (
    tenant_id  BLOB    NOT NULL REFERENCES tenants (id),
    id         BLOB    NOT NULL,
    kek_id     TEXT    NOT NULL,
    wrapped    BLOB    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
) STRICT;
