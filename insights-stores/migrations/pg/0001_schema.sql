-- Insights metadata schema for PostgreSQL.
--
-- Migrations are append-only: never edit this file once it has landed;
-- add a new numbered file instead.
--
-- Tenant isolation has two walls:
--
-- 1. every tenant table carries `tenant_id` (part of every primary key) and
--    every query of the store filters on it;
-- 2. row-level security: every tenant table has RLS enabled and one policy
--    that only shows (and only accepts) rows of the tenant named by the
--    transaction-local setting `app.tenant_id`. Tenant-scoped work runs as
--    the NOLOGIN role `insights_app` (no BYPASSRLS, not an owner), switched
--    to with `SET LOCAL ROLE` inside the transaction. With no tenant set the
--    policy compares with NULL and shows nothing (default deny).
--
-- A new tenant table MUST: carry `tenant_id uuid NOT NULL`, enable RLS,
-- create the `tenant_isolation` policy below and grant its privileges to
-- `insights_app` (tests/tests/pg_rls.rs fails for a table that does not).

-- The application role. Roles are global to the cluster while many
-- databases (one per test) migrate concurrently: create it only if
-- missing and treat losing the race as success.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'insights_app') THEN
        CREATE ROLE insights_app NOLOGIN NOSUPERUSER NOBYPASSRLS;
    END IF;
EXCEPTION
    WHEN duplicate_object OR unique_violation THEN
        NULL;
END
$$;

-- A non-superuser needs membership to `SET ROLE insights_app`.
DO $$
BEGIN
    IF NOT (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user)
       AND NOT pg_has_role(current_user, 'insights_app', 'MEMBER') THEN
        EXECUTE format('GRANT insights_app TO %I', current_user);
    END IF;
END
$$;

-- ---- platform scope ----------------------------------------------------

CREATE TABLE tenants (
    id                      uuid PRIMARY KEY,
    name                    text NOT NULL,
    directory_tenant_id     uuid,
    cloud_ai_enabled        boolean NOT NULL DEFAULT false,
    media_deletion_waiver   boolean NOT NULL DEFAULT false,
    require_access_reason   boolean NOT NULL DEFAULT false,
    four_eyes_playback      boolean NOT NULL DEFAULT false,
    created_at              timestamptz NOT NULL,
    CONSTRAINT tenants_name_key UNIQUE (name),
    CONSTRAINT tenants_directory_tenant_id_key UNIQUE (directory_tenant_id)
);

-- ---- directory -----------------------------------------------------------

CREATE TABLE directory_users (
    tenant_id            uuid NOT NULL REFERENCES tenants (id),
    id                   uuid NOT NULL,
    directory_object_id  text,
    first_name           text,
    last_name            text,
    display_name         text,
    alias                text,
    email                text,
    upn                  text,
    phone_numbers        text[] NOT NULL,
    sip_uri              text,
    tel_uri              text,
    groups               text[] NOT NULL,
    active               boolean NOT NULL,
    updated_at           timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX directory_users_object_id_idx ON directory_users (tenant_id, directory_object_id);
CREATE INDEX directory_users_name_idx
    ON directory_users (tenant_id, last_name COLLATE "C", first_name COLLATE "C", id);

-- ---- recordings ----------------------------------------------------------

CREATE TABLE recordings (
    tenant_id               uuid NOT NULL REFERENCES tenants (id),
    id                      uuid NOT NULL,
    kind                    text NOT NULL,
    direction               text NOT NULL,
    started_at              timestamptz NOT NULL,
    ended_at                timestamptz,
    duration_ms             bigint,
    external_call_id        text,
    call_chain_id           text,
    status                  text NOT NULL,
    result_code             text,
    retention_class         text NOT NULL,
    legal_hold              boolean NOT NULL,
    has_transcript          boolean NOT NULL,
    -- Where the encrypted media lives: all set or all NULL.
    media_container         text,
    media_key               text,
    media_byte_size         bigint,
    media_sha256            text,
    media_data_key_id       uuid,
    media_content_type      text,
    media_plaintext_size    bigint,
    created_at              timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT recordings_media_all_or_none CHECK (
        num_nulls(media_container, media_key, media_byte_size, media_sha256,
                  media_data_key_id, media_content_type, media_plaintext_size) IN (0, 7)
    )
);
-- Keyset pagination for the four sort orders (a missing duration sorts
-- as the smallest value, like NULL in SQLite and `None` in Rust).
CREATE INDEX recordings_started_idx ON recordings (tenant_id, started_at, id);
CREATE INDEX recordings_duration_idx
    ON recordings (tenant_id, (COALESCE(duration_ms, -9223372036854775808)), id);
CREATE INDEX recordings_external_call_idx ON recordings (tenant_id, external_call_id);
CREATE INDEX recordings_data_key_idx ON recordings (tenant_id, media_data_key_id);

CREATE TABLE participants (
    tenant_id           uuid NOT NULL,
    recording_id        uuid NOT NULL,
    id                  uuid NOT NULL,
    -- Insertion order inside the recording.
    position            integer NOT NULL,
    role                text NOT NULL,
    display_name        text,
    phone_number        text,
    uri                 text,
    email               text,
    directory_user_id   uuid,
    recorded_user       boolean NOT NULL,
    joined_ms           bigint,
    left_ms             bigint,
    -- Name, email and URI words for prefix search; emails and URIs are
    -- indexed whole and split at punctuation (`alice`, `contoso`, `com`).
    search              tsvector GENERATED ALWAYS AS (
        to_tsvector('simple'::regconfig,
            coalesce(display_name, '') || ' ' || coalesce(email, '') || ' ' || coalesce(uri, '')
            || ' ' || regexp_replace(coalesce(email, '') || ' ' || coalesce(uri, ''),
                                     '[^[:alnum:]]+', ' ', 'g'))
    ) STORED,
    -- Digits of the phone number and of a `tel:` URI, separated so that a
    -- substring match never spans both.
    phone_digits        text GENERATED ALWAYS AS (
        regexp_replace(coalesce(phone_number, ''), '[^0-9]', '', 'g') || '|' ||
        CASE WHEN uri ~* '^tel:'
             THEN regexp_replace(split_part(uri, ';', 1), '[^0-9]', '', 'g')
             ELSE '' END
    ) STORED,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, recording_id) REFERENCES recordings (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX participants_recording_idx ON participants (tenant_id, recording_id, position);
CREATE INDEX participants_user_idx ON participants (tenant_id, directory_user_id);
CREATE INDEX participants_search_idx ON participants USING gin (search);

CREATE TABLE media_streams (
    tenant_id       uuid NOT NULL,
    recording_id    uuid NOT NULL,
    id              uuid NOT NULL,
    position        integer NOT NULL,
    participant_id  uuid,
    track           integer NOT NULL,
    media_type      text NOT NULL,
    codec           text NOT NULL,
    sample_rate     integer NOT NULL,
    start_ms        bigint NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, recording_id) REFERENCES recordings (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX media_streams_recording_idx ON media_streams (tenant_id, recording_id, position);

-- ---- transcripts and insights -------------------------------------------

-- Transcript search: English stemming without the stop-word list, so that
-- every spoken word, `the` included, can be searched for.
CREATE TEXT SEARCH DICTIONARY insights_english_stem (TEMPLATE = snowball, LANGUAGE = english);
CREATE TEXT SEARCH CONFIGURATION insights_english (COPY = pg_catalog.english);
ALTER TEXT SEARCH CONFIGURATION insights_english
    ALTER MAPPING FOR asciiword, asciihword, hword_asciipart, word, hword, hword_part
    WITH insights_english_stem;

CREATE TABLE transcript_segments (
    tenant_id       uuid NOT NULL,
    recording_id    uuid NOT NULL,
    id              uuid NOT NULL,
    participant_id  uuid,
    start_ms        bigint NOT NULL,
    end_ms          bigint NOT NULL,
    text            text NOT NULL,
    confidence      real NOT NULL,
    language        text,
    search          tsvector GENERATED ALWAYS AS (to_tsvector('insights_english'::regconfig, text)) STORED,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, recording_id) REFERENCES recordings (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX transcript_segments_recording_idx
    ON transcript_segments (tenant_id, recording_id, start_ms, id);
CREATE INDEX transcript_segments_search_idx ON transcript_segments USING gin (search);

CREATE TABLE insights (
    tenant_id               uuid NOT NULL,
    recording_id            uuid NOT NULL,
    id                      uuid NOT NULL,
    kind                    text NOT NULL,
    text                    text NOT NULL,
    owner_participant_id    uuid,
    provider                text NOT NULL,
    created_at              timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, recording_id) REFERENCES recordings (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX insights_recording_idx ON insights (tenant_id, recording_id);

-- ---- audit chain ---------------------------------------------------------

-- Events outlive the recordings they mention: no foreign key to recordings.
CREATE TABLE audit_events (
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    seq             bigint NOT NULL,
    id              uuid NOT NULL,
    at              timestamptz NOT NULL,
    actor           text NOT NULL,
    action          text NOT NULL,
    recording_id    uuid,
    target          text,
    reason          text,
    source          text,
    -- `json`, not `jsonb`: the text is kept exactly as hashed.
    details         json NOT NULL,
    prev_hash       text NOT NULL,
    hash            text NOT NULL,
    PRIMARY KEY (tenant_id, seq),
    CONSTRAINT audit_events_id_key UNIQUE (tenant_id, id)
);
CREATE INDEX audit_events_recording_idx ON audit_events (tenant_id, recording_id);
CREATE INDEX audit_events_at_idx ON audit_events (tenant_id, at);

-- The head of each tenant's chain, kept apart from the events so that
-- deleting events at the end is detected. Appenders lock this row, which
-- serialises appends per tenant. `seq` 0 means "no event yet".
CREATE TABLE audit_heads (
    tenant_id   uuid PRIMARY KEY REFERENCES tenants (id),
    seq         bigint NOT NULL,
    hash        text NOT NULL
);

-- ---- retention, holds, profiles, keys ------------------------------------

CREATE TABLE retention_policies (
    tenant_id               uuid NOT NULL REFERENCES tenants (id),
    id                      uuid NOT NULL,
    name                    text NOT NULL,
    scope_kind              text,
    scope_direction         text,
    scope_group             text,
    scope_retention_class   text,
    retain_days             integer NOT NULL,
    action                  text NOT NULL,
    enabled                 boolean NOT NULL,
    updated_at              timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE legal_holds (
    tenant_id                       uuid NOT NULL REFERENCES tenants (id),
    id                              uuid NOT NULL,
    case_name                       text NOT NULL,
    reason                          text,
    scope_user_id                   uuid,
    scope_participant_identifier    text,
    scope_from                      timestamptz,
    scope_to                        timestamptz,
    scope_recording_ids             uuid[] NOT NULL,
    placed_by                       text NOT NULL,
    placed_at                       timestamptz NOT NULL,
    lifted_by                       text,
    lifted_at                       timestamptz,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX legal_holds_placed_idx ON legal_holds (tenant_id, placed_at, id);

CREATE TABLE security_profiles (
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    id              uuid NOT NULL,
    name            text NOT NULL,
    role            text NOT NULL,
    permissions     text[] NOT NULL,
    -- `VisibilityScope` in its serde form (`{"type": "users", "value": [...]}`).
    scope           jsonb NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

-- Only wrapped keys are stored. Shredding deletes the row; autovacuum is
-- told to reclaim dead rows of this table early so that the old tuple
-- does not linger in the heap longer than needed.
CREATE TABLE data_keys (
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    id          uuid NOT NULL,
    kek_id      text NOT NULL,
    wrapped     bytea NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1);

-- ---- phone substring search (optional trigram index) ---------------------

-- `pg_trgm` is a trusted extension (PostgreSQL 13+), so a database owner
-- may create it; where it is not installed, phone search still works
-- (sequential scan of the tenant's participants).
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_available_extensions WHERE name = 'pg_trgm') THEN
        CREATE EXTENSION IF NOT EXISTS pg_trgm;
        EXECUTE 'CREATE INDEX participants_phone_trgm_idx ON participants '
                'USING gin (phone_digits gin_trgm_ops)';
    END IF;
EXCEPTION
    WHEN insufficient_privilege THEN
        RAISE NOTICE 'pg_trgm not available to this user: phone search without trigram index';
END
$$;

-- ---- row-level security --------------------------------------------------

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY[
        'directory_users', 'recordings', 'participants', 'media_streams',
        'transcript_segments', 'insights', 'audit_events', 'audit_heads',
        'retention_policies', 'legal_holds', 'security_profiles', 'data_keys'
    ] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I '
            'USING (tenant_id = NULLIF(current_setting(''app.tenant_id'', true), '''')::uuid) '
            'WITH CHECK (tenant_id = NULLIF(current_setting(''app.tenant_id'', true), '''')::uuid)',
            t);
    END LOOP;
END
$$;

GRANT USAGE ON SCHEMA public TO insights_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON
    directory_users, recordings, participants, media_streams,
    transcript_segments, insights, audit_heads,
    retention_policies, legal_holds, security_profiles, data_keys
    TO insights_app;
-- The audit log is append-only for the application: no UPDATE, no DELETE.
GRANT SELECT, INSERT ON audit_events TO insights_app;
