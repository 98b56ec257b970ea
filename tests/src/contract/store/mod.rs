//! Metadata store contract suite: the behaviour every
//! [`MetadataStore`] backend must show, written once and run against each
//! backend (SQLite, PostgreSQL).
//!
//! # Running it against a backend
//!
//! A backend's test file defines one `async fn` returning a fresh,
//! empty store wrapped in a [`StoreUnderTest`], and invokes the macro:
//!
//! ```text
//! use insights_tests::contract::store::StoreUnderTest;
//!
//! async fn make() -> StoreUnderTest {
//!     let store = PgStore::connect(&insights_tests::fresh_pg_database().await, 5)
//!         .await
//!         .unwrap_or_else(|e| panic!("cannot open the store: {e}"));
//!     StoreUnderTest::new(store)
//! }
//!
//! insights_tests::store_contract_tests!(make);
//! ```
//!
//! The macro expands to one `#[tokio::test]` per contract function (multi
//! thread runtime, 2 workers), each on its own fresh store. Use
//! [`StoreUnderTest::with_guard`] to keep something alive for the test's
//! duration (e.g. the `TempDir` holding a SQLite file).
//!
//! # Readings of the trait docs pinned by this suite
//!
//! Where the trait docs leave a choice, the suite pins one reading so that
//! every backend behaves the same:
//!
//! * "ordered by (kind, created_at, id)" and the like use the Rust `Ord` of
//!   the domain types: [`InsightKind`] in declaration order (summary,
//!   decision, action-item, topic), ids in UUID (byte) order.
//! * Search duration bounds are inclusive (`min <= duration <= max`);
//!   recordings without a duration never match a duration bound.
//! * Participant words must all match the *same* participant (name, email
//!   or URI; prefix match per word, case-insensitive). Emails and URIs are
//!   matched word by word as well as whole: `partner` and `bob jon` find
//!   `frank@partner.example` and `sip:bob.jones@contoso.com`, and so does
//!   the whole address. Digits (with phone punctuation, `+`, `00`
//!   prefixes, `tel:`) are matched as a substring of the participants'
//!   normalised numbers (`425 555 0100` finds `+14255550100`).
//! * Transcript text: every word must occur in one segment, in any order;
//!   case-insensitive. The suite only uses content words (no stopwords),
//!   and does not test stemming, so an English stemmer with a stopword
//!   list (PostgreSQL `english`) and porter (SQLite FTS5) agree.
//! * Snippets are only returned when `transcript_text` is set; each marks
//!   the matched words, one by one, as `[[word]]`.
//! * A participant query with no word or digit in it (`%`, `*`, `"`) matches
//!   nothing (it must not turn into a wildcard).
//! * Sorting is total and deterministic (ties broken by id), so pages of
//!   any size concatenate to the same order as a single page. Where
//!   recordings without a duration go in a duration sort is not pinned.
//! * Listing the transcript or insights of a recording that does not exist
//!   (or exists in another tenant) is `NotFound` or an empty list.
//! * Adding to, or putting a transcript/insights on, a recording that does
//!   not exist (in this tenant) is `NotFound`.

use std::any::Any;
use std::collections::BTreeSet;
use std::fmt::Debug;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use insights_core::crypto::WrappedDataKey;
use insights_core::domain::*;
use insights_core::store::{MetadataStore, StoreError, StoreResult};
use uuid::Uuid;

/// A store under test, plus whatever must outlive it (a temp dir...).
pub struct StoreUnderTest {
    store: Arc<dyn MetadataStore>,
    // Dropped after `store` (fields drop in declaration order).
    _keep_alive: Option<Box<dyn Any + Send + Sync>>,
}

impl StoreUnderTest {
    /// A store that needs nothing else kept alive.
    pub fn new(store: impl MetadataStore) -> Self {
        Self {
            store: Arc::new(store),
            _keep_alive: None,
        }
    }

    /// A store plus a guard dropped after it (e.g. its `TempDir`).
    pub fn with_guard(store: impl MetadataStore, guard: impl Any + Send + Sync) -> Self {
        Self {
            store: Arc::new(store),
            _keep_alive: Some(Box::new(guard)),
        }
    }

    /// The store, shareable across tasks.
    pub fn store(&self) -> &Arc<dyn MetadataStore> {
        &self.store
    }
}

/// Expands to one `#[tokio::test]` per contract function of
/// [`crate::contract::store`]. `$make` is the path of an
/// `async fn() -> StoreUnderTest` returning a fresh, empty store.
#[macro_export]
macro_rules! store_contract_tests {
    ($make:path) => {
        $crate::__store_contract_cases!(
            $make;
            health_and_backend,
            tenants_create_get_list,
            tenant_names_and_directory_ids_are_unique,
            tenant_settings_update,
            directory_users_upsert_get_replace,
            directory_users_list_order,
            directory_user_delete_rules,
            recording_round_trip,
            insert_recording_rules,
            recordings_are_tenant_isolated,
            status_update_sets_duration,
            add_participant_and_stream,
            participant_presence_updates,
            set_recording_media_some_and_none,
            legal_hold_blocks_delete,
            delete_removes_dependents,
            search_filters_individually,
            search_participant_words,
            search_phone_digits,
            search_transcript_text_and_snippets,
            search_combined_filters,
            search_visible_to_users,
            search_sort_orders,
            search_pagination_exact_once,
            search_bad_cursor_is_invalid,
            search_hostile_input_is_harmless,
            transcript_segments_idempotent_and_ordered,
            insights_put_replace_list,
            audit_chain_appends_and_verifies,
            audit_concurrent_appends_are_gap_free,
            audit_filters,
            audit_chains_are_per_tenant,
            retention_policies_crud,
            legal_holds_create_list_lift,
            security_profiles_validate_and_upsert,
            access_requests_four_eyes,
            data_keys_put_get_shred,
            accounts_create_get_list_in_both_realms,
            accounts_are_realm_isolated,
            account_failures_lock_and_success_resets,
            account_totp_steps_are_single_use,
            sessions_create_touch_revoke,
        );
    };
}

/// Implementation detail of [`store_contract_tests!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __store_contract_cases {
    ($make:path; $($name:ident),+ $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let sut: $crate::contract::store::StoreUnderTest = $make().await;
                $crate::contract::store::$name(sut.store()).await;
            }
        )+
    };
}

/// The handle every contract function takes.
pub type Store = Arc<dyn MetadataStore>;

// ---------------------------------------------------------------------
// assertion helpers
// ---------------------------------------------------------------------

#[track_caller]
fn must<T, E: Debug>(r: Result<T, E>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what}: unexpected error {e:?}"),
    }
}

#[track_caller]
fn assert_not_found<T: Debug>(r: StoreResult<T>, what: &str) {
    match r {
        Err(StoreError::NotFound) => {}
        other => panic!("{what}: expected NotFound, got {other:?}"),
    }
}

#[track_caller]
fn assert_conflict<T: Debug>(r: StoreResult<T>, what: &str) {
    match r {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("{what}: expected Conflict, got {other:?}"),
    }
}

#[track_caller]
fn assert_invalid<T: Debug>(r: StoreResult<T>, what: &str) {
    match r {
        Err(StoreError::Invalid(_)) => {}
        other => panic!("{what}: expected Invalid, got {other:?}"),
    }
}

#[track_caller]
fn assert_refused<T: Debug>(r: StoreResult<T>, what: &str) {
    match r {
        Err(StoreError::Refused(_)) => {}
        other => panic!("{what}: expected Refused, got {other:?}"),
    }
}

/// `NotFound` or an empty list: how listing the children of a recording
/// that is missing (or belongs to another tenant) may answer.
#[track_caller]
fn assert_not_found_or_empty<T: Debug>(r: StoreResult<Vec<T>>, what: &str) {
    match r {
        Err(StoreError::NotFound) => {}
        Ok(v) if v.is_empty() => {}
        other => panic!("{what}: expected NotFound or nothing, got {other:?}"),
    }
}

// ---------------------------------------------------------------------
// builders
// ---------------------------------------------------------------------

async fn tenant(s: &Store, name: &str) -> TenantId {
    must(
        s.create_tenant(NewTenant {
            name: name.to_owned(),
            directory_tenant_id: Some(Uuid::new_v4()),
        })
        .await,
        "create tenant",
    )
    .id
}

fn party(role: ParticipantRole) -> Participant {
    Participant {
        id: ParticipantId::new(),
        role,
        display_name: None,
        phone_number: None,
        uri: None,
        email: None,
        directory_user_id: None,
        recorded_user: false,
        joined_ms: Some(0),
        left_ms: None,
    }
}

fn external(role: ParticipantRole, name: &str, phone: &str) -> Participant {
    Participant {
        display_name: Some(name.to_owned()),
        phone_number: Some(phone.to_owned()),
        uri: Some(format!("tel:{phone}")),
        ..party(role)
    }
}

/// An internal (directory) participant whose calls are recorded.
fn internal(role: ParticipantRole, user: UserId, first: &str, last: &str) -> Participant {
    let local = format!("{}.{}", first.to_lowercase(), last.to_lowercase());
    Participant {
        display_name: Some(format!("{first} {last}")),
        email: Some(format!("{local}@contoso.com")),
        uri: Some(format!("sip:{local}@contoso.com")),
        directory_user_id: Some(user),
        recorded_user: true,
        ..party(role)
    }
}

fn stream(track: i32, participant: Option<ParticipantId>) -> MediaStream {
    MediaStream {
        id: StreamId::new(),
        participant_id: participant,
        track,
        media_type: "audio".to_owned(),
        codec: "opus".to_owned(),
        sample_rate: 16_000,
        start_ms: i64::from(track) * 250,
    }
}

fn media(tenant: TenantId, rec: RecordingId) -> MediaObject {
    MediaObject {
        container: Tenant::container_name(tenant),
        key: format!("recordings/{rec}.ins"),
        byte_size: 1_234_567,
        sha256: "ab".repeat(32),
        data_key_id: KeyId::new(),
        content_type: "audio/ogg".to_owned(),
        plaintext_size: 1_200_000,
    }
}

/// A recording with every field set: one participant of every role,
/// three streams and a media object.
fn full_recording(tenant: TenantId, started: DateTime<Utc>) -> Recording {
    let mut r = Recording::new(tenant, RecordingKind::Call, Direction::Inbound, started);
    r.ended_at = Some(started + Duration::milliseconds(90_500));
    r.duration_ms = Some(90_500);
    r.external_call_id = Some(format!("call-{}", Uuid::new_v4()));
    r.call_chain_id = Some(format!("chain-{}", Uuid::new_v4()));
    r.status = RecordingStatus::Stored;
    r.result_code = Some("0".to_owned());
    r.retention_class = "finance".to_owned();
    r.media = Some(media(tenant, r.id));
    for (i, role) in ParticipantRole::ALL.iter().enumerate() {
        let i = i as i64;
        let mut p = external(
            *role,
            &format!("Party{i} Person"),
            &format!("+1425555{:04}", i),
        );
        p.email = Some(format!("party{i}@example.com"));
        p.directory_user_id = (i % 2 == 0).then(UserId::new);
        p.recorded_user = i == 0;
        p.joined_ms = Some(i * 1000);
        p.left_ms = (i % 3 == 0).then_some(80_000 + i);
        r.participants.push(p);
    }
    // Insertion order = track order = id order, so the round trip holds
    // whichever of these a backend keeps streams in.
    r.streams = (0..3)
        .map(|t| stream(t, Some(r.participants[t as usize].id)))
        .collect();
    r
}

fn segment(rec: RecordingId, start_ms: i64, text: &str) -> TranscriptSegment {
    TranscriptSegment {
        id: SegmentId::new(),
        recording_id: rec,
        participant_id: None,
        start_ms,
        end_ms: start_ms + 1500,
        text: text.to_owned(),
        confidence: 0.875,
        language: Some("en".to_owned()),
    }
}

fn insight(rec: RecordingId, kind: InsightKind, text: &str, at: DateTime<Utc>) -> Insight {
    Insight {
        id: InsightId::new(),
        recording_id: rec,
        kind,
        text: text.to_owned(),
        owner_participant_id: None,
        provider: "local:test".to_owned(),
        created_at: at,
        citations: Vec::new(),
    }
}

fn directory_user(tenant: TenantId, first: &str, last: &str) -> DirectoryUser {
    DirectoryUser {
        id: UserId::new(),
        tenant_id: tenant,
        directory_object_id: Some(Uuid::new_v4().to_string()),
        first_name: Some(first.to_owned()),
        last_name: Some(last.to_owned()),
        display_name: Some(format!("{first} {last}")),
        alias: Some(first.to_lowercase()),
        email: Some(format!("{}@contoso.com", first.to_lowercase())),
        upn: Some(format!("{}@contoso.com", first.to_lowercase())),
        phone_numbers: vec!["+14255550100".to_owned(), "+4930123456".to_owned()],
        sip_uri: Some(format!("sip:{}@contoso.com", first.to_lowercase())),
        tel_uri: Some("tel:+14255550100".to_owned()),
        groups: vec!["sales".to_owned(), "emea".to_owned()],
        active: true,
        updated_at: now(),
    }
}

fn audit_event(actor: &str, action: AuditAction, rec: Option<RecordingId>) -> NewAuditEvent {
    NewAuditEvent {
        actor: actor.to_owned(),
        action,
        recording_id: rec,
        target: Some("target-1".to_owned()),
        reason: Some("case 42".to_owned()),
        source: Some("127.0.0.1".to_owned()),
        details: serde_json::json!({
            "filters": {"b": 1, "a": [1, 2, 3]},
            "ratio": 0.5,
            "note": "ü \"quoted\"",
            "none": null
        }),
    }
}

// ---------------------------------------------------------------------
// health
// ---------------------------------------------------------------------

pub async fn health_and_backend(s: &Store) {
    must(s.health().await, "health");
    assert!(!s.backend().is_empty(), "backend name is empty");
}

// ---------------------------------------------------------------------
// tenants
// ---------------------------------------------------------------------

pub async fn tenants_create_get_list(s: &Store) {
    assert!(must(s.list_tenants().await, "list").is_empty());
    let dir_c = Uuid::new_v4();
    let before = now();
    let c = must(
        s.create_tenant(NewTenant {
            name: "contoso".into(),
            directory_tenant_id: Some(dir_c),
        })
        .await,
        "create contoso",
    );
    let a = must(
        s.create_tenant(NewTenant {
            name: "adatum".into(),
            directory_tenant_id: None,
        })
        .await,
        "create adatum",
    );
    let f = must(
        s.create_tenant(NewTenant {
            name: "fabrikam".into(),
            directory_tenant_id: Some(Uuid::new_v4()),
        })
        .await,
        "create fabrikam",
    );
    assert_eq!(c.name, "contoso");
    assert_eq!(c.directory_tenant_id, Some(dir_c));
    assert_eq!(c.settings, TenantSettings::default());
    assert!(c.created_at >= before && c.created_at <= now());
    assert_ne!(a.id, c.id);

    let listed = must(s.list_tenants().await, "list");
    assert_eq!(
        listed,
        vec![a.clone(), c.clone(), f.clone()],
        "ordered by name"
    );

    assert_eq!(must(s.get_tenant(c.id).await, "get"), c);
    assert_eq!(must(s.tenant_by_name("contoso").await, "by name"), c);
    assert_eq!(must(s.tenant_by_directory_id(dir_c).await, "by dir id"), c);
    assert_not_found(s.get_tenant(TenantId::new()).await, "get missing");
    assert_not_found(s.tenant_by_name("nobody").await, "missing name");
    assert_not_found(
        s.tenant_by_directory_id(Uuid::new_v4()).await,
        "missing dir id",
    );
}

pub async fn tenant_names_and_directory_ids_are_unique(s: &Store) {
    let dir = Uuid::new_v4();
    must(
        s.create_tenant(NewTenant {
            name: "contoso".into(),
            directory_tenant_id: Some(dir),
        })
        .await,
        "first",
    );
    assert_conflict(
        s.create_tenant(NewTenant {
            name: "contoso".into(),
            directory_tenant_id: None,
        })
        .await,
        "duplicate name",
    );
    assert_conflict(
        s.create_tenant(NewTenant {
            name: "other".into(),
            directory_tenant_id: Some(dir),
        })
        .await,
        "duplicate directory tenant id",
    );
    // Tenants without a directory id do not collide with each other.
    for name in ["no-dir-1", "no-dir-2"] {
        must(
            s.create_tenant(NewTenant {
                name: name.into(),
                directory_tenant_id: None,
            })
            .await,
            "tenant without directory id",
        );
    }
    let names: Vec<String> = must(s.list_tenants().await, "list")
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["contoso", "no-dir-1", "no-dir-2"]);
}

pub async fn tenant_settings_update(s: &Store) {
    let t = must(
        s.create_tenant(NewTenant {
            name: "contoso".into(),
            directory_tenant_id: None,
        })
        .await,
        "create",
    );
    let settings = TenantSettings {
        cloud_ai_enabled: true,
        media_deletion_waiver: true,
        require_access_reason: true,
        four_eyes_playback: true,
    };
    must(s.update_tenant_settings(t.id, &settings).await, "update");
    let got = must(s.get_tenant(t.id).await, "get");
    assert_eq!(
        got,
        Tenant {
            settings: settings.clone(),
            ..t.clone()
        }
    );
    let partial = TenantSettings {
        cloud_ai_enabled: false,
        ..settings
    };
    must(s.update_tenant_settings(t.id, &partial).await, "update 2");
    assert_eq!(must(s.get_tenant(t.id).await, "get").settings, partial);
    assert_not_found(
        s.update_tenant_settings(TenantId::new(), &partial).await,
        "missing tenant",
    );
}

// ---------------------------------------------------------------------
// directory users
// ---------------------------------------------------------------------

pub async fn directory_users_upsert_get_replace(s: &Store) {
    let t = tenant(s, "contoso").await;
    let other = tenant(s, "fabrikam").await;
    let u = directory_user(t, "Alice", "Smith");
    must(s.upsert_directory_user(t, &u).await, "insert");
    assert_eq!(must(s.get_directory_user(t, u.id).await, "get"), u);
    let object_id = u.directory_object_id.clone().unwrap_or_default();
    assert_eq!(
        must(s.directory_user_by_object_id(t, &object_id).await, "by oid"),
        u
    );

    let changed = DirectoryUser {
        last_name: Some("Jones".into()),
        display_name: Some("Alice Jones".into()),
        phone_numbers: vec![],
        groups: vec!["support".into()],
        email: None,
        active: false,
        updated_at: now(),
        ..u.clone()
    };
    must(s.upsert_directory_user(t, &changed).await, "replace");
    assert_eq!(must(s.get_directory_user(t, u.id).await, "get"), changed);
    assert_eq!(
        must(s.list_directory_users(t).await, "list"),
        vec![changed.clone()]
    );

    assert_not_found(s.get_directory_user(t, UserId::new()).await, "missing");
    assert_not_found(
        s.directory_user_by_object_id(t, "no-such-object").await,
        "missing oid",
    );
    // Another tenant sees nothing.
    assert_not_found(s.get_directory_user(other, u.id).await, "other tenant");
    assert_not_found(
        s.directory_user_by_object_id(other, &object_id).await,
        "other tenant oid",
    );
    assert!(must(s.list_directory_users(other).await, "list other").is_empty());
}

pub async fn directory_users_list_order(s: &Store) {
    let t = tenant(s, "contoso").await;
    let mut users = vec![
        directory_user(t, "Carl", "Clark"),
        directory_user(t, "Zoe", "Adams"),
        directory_user(t, "Bert", "Baker"),
        directory_user(t, "Carl", "Clark"),
        directory_user(t, "Anna", "Baker"),
    ];
    for u in &users {
        must(s.upsert_directory_user(t, u).await, "upsert");
    }
    users.sort_by(|a, b| {
        (&a.last_name, &a.first_name, a.id).cmp(&(&b.last_name, &b.first_name, b.id))
    });
    assert_eq!(must(s.list_directory_users(t).await, "list"), users);
}

pub async fn directory_user_delete_rules(s: &Store) {
    let t = tenant(s, "contoso").await;
    let other = tenant(s, "fabrikam").await;
    let mut u = directory_user(t, "Alice", "Smith");
    must(s.upsert_directory_user(t, &u).await, "insert");
    assert_refused(s.delete_directory_user(t, u.id).await, "active user");
    assert_eq!(must(s.get_directory_user(t, u.id).await, "still there"), u);

    u.active = false;
    must(s.upsert_directory_user(t, &u).await, "deactivate");
    assert_not_found(s.delete_directory_user(other, u.id).await, "other tenant");
    must(s.get_directory_user(t, u.id).await, "survives other tenant");
    must(s.delete_directory_user(t, u.id).await, "delete inactive");
    assert_not_found(s.get_directory_user(t, u.id).await, "deleted");
    assert_not_found(s.delete_directory_user(t, u.id).await, "delete twice");
}

// ---------------------------------------------------------------------
// recordings
// ---------------------------------------------------------------------

pub async fn recording_round_trip(s: &Store) {
    let t = tenant(s, "contoso").await;
    let r = full_recording(t, now() - Duration::hours(1));
    must(s.insert_recording(t, &r).await, "insert");
    assert_eq!(must(s.get_recording(t, r.id).await, "get"), r);
    let call_id = r.external_call_id.clone().unwrap_or_default();
    assert_eq!(
        must(
            s.recording_by_external_call_id(t, &call_id).await,
            "by call id"
        ),
        r
    );

    // A bare recording: no parties, no media, every option empty.
    let bare = Recording::new(t, RecordingKind::Meeting, Direction::Unknown, now());
    must(s.insert_recording(t, &bare).await, "insert bare");
    assert_eq!(must(s.get_recording(t, bare.id).await, "get bare"), bare);

    assert_not_found(s.get_recording(t, RecordingId::new()).await, "missing");
    assert_not_found(
        s.recording_by_external_call_id(t, "no-such-call").await,
        "missing call id",
    );
}

pub async fn insert_recording_rules(s: &Store) {
    let t = tenant(s, "contoso").await;
    let other = tenant(s, "fabrikam").await;
    // The recording says it belongs to `other`, but is inserted for `t`.
    let r = full_recording(other, now());
    assert_invalid(s.insert_recording(t, &r).await, "tenant mismatch");
    assert_not_found(s.get_recording(t, r.id).await, "nothing stored (t)");
    assert_not_found(s.get_recording(other, r.id).await, "nothing stored (other)");

    let r = full_recording(t, now());
    must(s.insert_recording(t, &r).await, "insert");
    assert_conflict(s.insert_recording(t, &r).await, "same id twice");
    assert_eq!(must(s.get_recording(t, r.id).await, "unchanged"), r);
}

pub async fn recordings_are_tenant_isolated(s: &Store) {
    let t = tenant(s, "contoso").await;
    let other = tenant(s, "fabrikam").await;
    let r = full_recording(t, now() - Duration::minutes(5));
    must(s.insert_recording(t, &r).await, "insert");
    let seg = segment(r.id, 0, "the secret merger");
    must(
        s.put_transcript_segments(t, r.id, std::slice::from_ref(&seg))
            .await,
        "transcript",
    );
    let ins = insight(r.id, InsightKind::Summary, "merger talk", now());
    must(
        s.put_insights(t, r.id, std::slice::from_ref(&ins)).await,
        "insights",
    );
    let r = must(s.get_recording(t, r.id).await, "reload");

    let call_id = r.external_call_id.clone().unwrap_or_default();
    assert_not_found(s.get_recording(other, r.id).await, "get");
    assert_not_found(
        s.recording_by_external_call_id(other, &call_id).await,
        "by call id",
    );
    assert_not_found(
        s.update_recording_status(other, r.id, RecordingStatus::Failed, Some(now()), Some("x"))
            .await,
        "update status",
    );
    assert_not_found(
        s.add_participant(other, r.id, &party(ParticipantRole::Attendee))
            .await,
        "add participant",
    );
    assert_not_found(
        s.add_stream(other, r.id, &stream(9, None)).await,
        "add stream",
    );
    assert_not_found(s.set_recording_media(other, r.id, None).await, "set media");
    assert_not_found(s.set_legal_hold_flag(other, r.id, true).await, "set hold");
    assert_not_found(
        s.put_transcript_segments(other, r.id, &[segment(r.id, 5, "injected")])
            .await,
        "put transcript",
    );
    assert_not_found(
        s.put_insights(
            other,
            r.id,
            &[insight(r.id, InsightKind::Topic, "x", now())],
        )
        .await,
        "put insights",
    );
    assert_not_found_or_empty(s.list_transcript(other, r.id).await, "list transcript");
    assert_not_found_or_empty(s.list_insights(other, r.id).await, "list insights");
    assert_not_found(s.delete_recording(other, r.id).await, "delete");

    for q in [
        RecordingQuery::default(),
        RecordingQuery {
            participant: Some("Party0".into()),
            ..Default::default()
        },
        RecordingQuery {
            transcript_text: Some("merger".into()),
            ..Default::default()
        },
    ] {
        let page = must(s.search_recordings(other, &q).await, "search other");
        assert_eq!(page.total, 0, "other tenant search total for {q:?}");
        assert!(page.items.is_empty());
    }

    // The owner still sees everything, untouched.
    assert_eq!(must(s.get_recording(t, r.id).await, "owner get"), r);
    assert_eq!(
        must(s.list_transcript(t, r.id).await, "owner transcript"),
        vec![seg]
    );
    assert_eq!(
        must(s.list_insights(t, r.id).await, "owner insights"),
        vec![ins]
    );
    let page = must(
        s.search_recordings(t, &RecordingQuery::default()).await,
        "owner search",
    );
    assert_eq!(page.total, 1);
}

pub async fn status_update_sets_duration(s: &Store) {
    let t = tenant(s, "contoso").await;
    let started = now() - Duration::hours(2);
    let r = Recording::new(t, RecordingKind::Call, Direction::Outbound, started);
    must(s.insert_recording(t, &r).await, "insert");

    let ended = started + Duration::milliseconds(125_000);
    must(
        s.update_recording_status(t, r.id, RecordingStatus::Spooled, Some(ended), Some("ok"))
            .await,
        "spooled",
    );
    let got = must(s.get_recording(t, r.id).await, "get");
    assert_eq!(got.status, RecordingStatus::Spooled);
    assert_eq!(got.ended_at, Some(ended));
    assert_eq!(got.result_code.as_deref(), Some("ok"));
    assert_eq!(got.duration_ms, Some(125_000));

    // `None` keeps what is there.
    must(
        s.update_recording_status(t, r.id, RecordingStatus::Stored, None, None)
            .await,
        "stored",
    );
    let got = must(s.get_recording(t, r.id).await, "get");
    assert_eq!(got.status, RecordingStatus::Stored);
    assert_eq!(got.ended_at, Some(ended));
    assert_eq!(got.result_code.as_deref(), Some("ok"));
    assert_eq!(got.duration_ms, Some(125_000));

    let ended2 = started + Duration::milliseconds(200_000);
    must(
        s.update_recording_status(
            t,
            r.id,
            RecordingStatus::Failed,
            Some(ended2),
            Some("err-7"),
        )
        .await,
        "failed",
    );
    let got = must(s.get_recording(t, r.id).await, "get");
    assert_eq!(
        got,
        Recording {
            status: RecordingStatus::Failed,
            ended_at: Some(ended2),
            result_code: Some("err-7".into()),
            duration_ms: Some(200_000),
            ..r
        }
    );
    assert_not_found(
        s.update_recording_status(t, RecordingId::new(), RecordingStatus::Stored, None, None)
            .await,
        "missing",
    );
}

pub async fn add_participant_and_stream(s: &Store) {
    let t = tenant(s, "contoso").await;
    let mut r = Recording::new(t, RecordingKind::Meeting, Direction::Internal, now());
    r.participants.push(internal(
        ParticipantRole::Organizer,
        UserId::new(),
        "Ann",
        "Lee",
    ));
    r.streams.push(stream(0, Some(r.participants[0].id)));
    must(s.insert_recording(t, &r).await, "insert");

    let p1 = external(ParticipantRole::Attendee, "Bo Dean", "+4930123456");
    let p2 = party(ParticipantRole::Attendee);
    let s1 = stream(1, Some(p1.id));
    must(s.add_participant(t, r.id, &p1).await, "add p1");
    must(s.add_stream(t, r.id, &s1).await, "add s1");
    must(s.add_participant(t, r.id, &p2).await, "add p2");
    r.participants.push(p1);
    r.participants.push(p2);
    r.streams.push(s1);
    assert_eq!(must(s.get_recording(t, r.id).await, "get"), r);

    // Added parties are searchable like inserted ones.
    let page = must(
        s.search_recordings(
            t,
            &RecordingQuery {
                participant: Some("dean".into()),
                ..Default::default()
            },
        )
        .await,
        "search added",
    );
    assert_eq!(page.total, 1);

    let missing = RecordingId::new();
    assert_not_found(
        s.add_participant(t, missing, &party(ParticipantRole::Caller))
            .await,
        "participant on missing recording",
    );
    assert_not_found(
        s.add_stream(t, missing, &stream(3, None)).await,
        "stream on missing recording",
    );
}

pub async fn participant_presence_updates(s: &Store) {
    let t = tenant(s, "contoso").await;
    let other = tenant(s, "fabrikam").await;
    let mut r = Recording::new(t, RecordingKind::Meeting, Direction::Internal, now());
    r.participants.push(party(ParticipantRole::Organizer));
    r.participants.push(party(ParticipantRole::Attendee));
    must(s.insert_recording(t, &r).await, "insert");
    let (a, b) = (r.participants[0].id, r.participants[1].id);
    let get = |id| async move {
        must(s.get_recording(t, r.id).await, "get")
            .participants
            .into_iter()
            .find(|p| p.id == id)
            .unwrap_or_else(|| panic!("participant {id} missing"))
    };

    // A leave, then a rejoin clears it; the other participant is untouched.
    must(
        s.update_participant_presence(t, r.id, b, false, Some(61_000))
            .await,
        "leave",
    );
    assert_eq!(get(b).await.left_ms, Some(61_000));
    assert!(!get(b).await.recorded_user);
    assert_eq!(get(a).await, r.participants[0]);
    must(
        s.update_participant_presence(t, r.id, b, false, None).await,
        "rejoin",
    );
    assert_eq!(get(b).await.left_ms, None);

    // Marked as a recorded user; `false` later never unmarks.
    must(
        s.update_participant_presence(t, r.id, b, true, None).await,
        "mark recorded",
    );
    assert!(get(b).await.recorded_user);
    must(
        s.update_participant_presence(t, r.id, b, false, Some(90_000))
            .await,
        "leave again",
    );
    let after = get(b).await;
    assert!(
        after.recorded_user,
        "the recorded-user flag is never cleared"
    );
    assert_eq!(after.left_ms, Some(90_000));

    // Not found: another tenant, another recording, an unknown participant.
    assert_not_found(
        s.update_participant_presence(other, r.id, b, true, None)
            .await,
        "other tenant",
    );
    assert_not_found(
        s.update_participant_presence(t, RecordingId::new(), b, true, None)
            .await,
        "other recording",
    );
    assert_not_found(
        s.update_participant_presence(t, r.id, ParticipantId::new(), true, None)
            .await,
        "unknown participant",
    );
    assert_eq!(get(b).await, after, "failed updates change nothing");
}

pub async fn set_recording_media_some_and_none(s: &Store) {
    let t = tenant(s, "contoso").await;
    let r = Recording::new(t, RecordingKind::Call, Direction::Inbound, now());
    must(s.insert_recording(t, &r).await, "insert");
    let m = media(t, r.id);
    must(s.set_recording_media(t, r.id, Some(&m)).await, "set");
    assert_eq!(
        must(s.get_recording(t, r.id).await, "get").media,
        Some(m.clone())
    );
    let m2 = MediaObject {
        key: "other/key.ins".into(),
        byte_size: 42,
        ..m
    };
    must(s.set_recording_media(t, r.id, Some(&m2)).await, "replace");
    assert_eq!(must(s.get_recording(t, r.id).await, "get").media, Some(m2));
    must(s.set_recording_media(t, r.id, None).await, "clear");
    assert_eq!(must(s.get_recording(t, r.id).await, "get"), r);
    assert_not_found(
        s.set_recording_media(t, RecordingId::new(), None).await,
        "missing",
    );
}

pub async fn legal_hold_blocks_delete(s: &Store) {
    let t = tenant(s, "contoso").await;
    let r = full_recording(t, now());
    must(s.insert_recording(t, &r).await, "insert");
    let seg = segment(r.id, 0, "keep this");
    must(
        s.put_transcript_segments(t, r.id, std::slice::from_ref(&seg))
            .await,
        "transcript",
    );

    must(s.set_legal_hold_flag(t, r.id, true).await, "hold");
    assert!(must(s.get_recording(t, r.id).await, "get").legal_hold);
    assert_refused(s.delete_recording(t, r.id).await, "delete held");
    let got = must(s.get_recording(t, r.id).await, "survives");
    assert!(got.legal_hold);
    assert_eq!(got.participants, r.participants);
    assert_eq!(
        must(s.list_transcript(t, r.id).await, "transcript survives"),
        vec![seg]
    );

    must(s.set_legal_hold_flag(t, r.id, false).await, "release");
    assert!(!must(s.get_recording(t, r.id).await, "get").legal_hold);
    must(s.delete_recording(t, r.id).await, "delete released");
    assert_not_found(s.get_recording(t, r.id).await, "deleted");
    assert_not_found(
        s.set_legal_hold_flag(t, RecordingId::new(), true).await,
        "missing",
    );
}

pub async fn delete_removes_dependents(s: &Store) {
    let t = tenant(s, "contoso").await;
    let mut r = full_recording(t, now() - Duration::hours(3));
    r.participants.push(external(
        ParticipantRole::Attendee,
        "Zebulon Quartermaine",
        "+61299998888",
    ));
    must(s.insert_recording(t, &r).await, "insert");
    let keep = full_recording(t, now() - Duration::hours(2));
    must(s.insert_recording(t, &keep).await, "insert keep");
    must(
        s.put_transcript_segments(t, r.id, &[segment(r.id, 0, "the xylophone arrived")])
            .await,
        "transcript",
    );
    let keep_seg = segment(keep.id, 0, "the xylophone stays");
    must(
        s.put_transcript_segments(t, keep.id, std::slice::from_ref(&keep_seg))
            .await,
        "transcript keep",
    );
    must(
        s.put_insights(t, r.id, &[insight(r.id, InsightKind::Summary, "x", now())])
            .await,
        "insights",
    );

    let by_name = RecordingQuery {
        participant: Some("zebulon".into()),
        ..Default::default()
    };
    let by_number = RecordingQuery {
        participant: Some("61 2 9999 8888".into()),
        ..Default::default()
    };
    let by_text = RecordingQuery {
        transcript_text: Some("xylophone".into()),
        ..Default::default()
    };
    assert_eq!(must(s.search_recordings(t, &by_name).await, "q").total, 1);
    assert_eq!(must(s.search_recordings(t, &by_number).await, "q").total, 1);
    assert_eq!(must(s.search_recordings(t, &by_text).await, "q").total, 2);

    must(s.delete_recording(t, r.id).await, "delete");
    assert_not_found(s.get_recording(t, r.id).await, "get deleted");
    assert_not_found_or_empty(s.list_transcript(t, r.id).await, "transcript");
    assert_not_found_or_empty(s.list_insights(t, r.id).await, "insights");
    assert_eq!(must(s.search_recordings(t, &by_name).await, "q").total, 0);
    assert_eq!(must(s.search_recordings(t, &by_number).await, "q").total, 0);
    let page = must(s.search_recordings(t, &by_text).await, "q");
    assert_eq!(page.total, 1);
    assert_eq!(page.items[0].recording.id, keep.id);
    assert_not_found(s.delete_recording(t, r.id).await, "delete twice");

    // The other recording is untouched.
    assert_eq!(must(s.get_recording(t, keep.id).await, "keep"), {
        let mut k = keep.clone();
        k.has_transcript = true;
        k
    });
    assert_eq!(
        must(s.list_transcript(t, keep.id).await, "keep transcript"),
        vec![keep_seg]
    );

    // Nothing of the deleted recording lingers: the same recording (same
    // participant and stream ids) can be inserted again.
    must(s.insert_recording(t, &r).await, "re-insert");
    assert_eq!(must(s.get_recording(t, r.id).await, "re-inserted"), r);
    assert!(must(s.list_transcript(t, r.id).await, "fresh transcript").is_empty());
    assert!(must(s.list_insights(t, r.id).await, "fresh insights").is_empty());
}

// ---------------------------------------------------------------------
// search
// ---------------------------------------------------------------------

/// Seven recordings in one tenant (plus a look-alike in another tenant
/// that must never show up):
///
/// | # | kind    | direction | start | duration  | parties                             | transcript words              | hold |
/// |---|---------|-----------|-------|-----------|-------------------------------------|-------------------------------|------|
/// | 0 | call    | inbound   | +0h   | 60 000    | Carol Danvers +14255550100, Alice   | project invoice               |      |
/// | 1 | call    | outbound  | +1h   | 120 000   | Alice, Dieter Mueller +4930123456   |                               |      |
/// | 2 | meeting | internal  | +2h   | 1 800 000 | Bob, Alice                          | quarterly budget; project     | yes  |
/// | 3 | call    | inbound   | +3h   | 60 000    | Eve Adams +14255550199, Bob         | signed project contract       |      |
/// | 4 | call    | unknown   | +4h   | none      | +442079460958 (no name), Bob        |                               |      |
/// | 5 | meeting | internal  | +4h   | 300 000   | Frank Castle (email, sip), Alice    |                               |      |
/// | 6 | call    | outbound  | +6h   | 45 000    | Bob, Grace Hopper 030123456         |                               |      |
///
/// Alice and Bob are directory users (`alice`, `bob`) with
/// `alice.smith@contoso.com` / `sip:alice.smith@contoso.com` and the like.
struct SearchFixture {
    t: TenantId,
    recs: Vec<Recording>,
    alice: UserId,
    bob: UserId,
    base: DateTime<Utc>,
}

impl SearchFixture {
    fn ids(&self, idx: &[usize]) -> BTreeSet<RecordingId> {
        idx.iter().map(|i| self.recs[*i].id).collect()
    }
}

async fn search_fixture(s: &Store) -> SearchFixture {
    use ParticipantRole::*;
    let t = tenant(s, "contoso").await;
    let other = tenant(s, "fabrikam").await;
    let alice = UserId::new();
    let bob = UserId::new();
    let base = now() - Duration::days(10);
    let alice_p = |role| internal(role, alice, "Alice", "Smith");
    let bob_p = |role| internal(role, bob, "Bob", "Jones");
    let mk = |kind, dir, hours: i64, dur: Option<i64>, parts: Vec<Participant>| {
        let started = base + Duration::hours(hours);
        let mut r = Recording::new(t, kind, dir, started);
        r.duration_ms = dur;
        r.ended_at = dur.map(|d| started + Duration::milliseconds(d));
        r.status = if dur.is_some() {
            RecordingStatus::Stored
        } else {
            RecordingStatus::Recording
        };
        r.participants = parts;
        r
    };
    use Direction::*;
    use RecordingKind::*;
    let mut recs = vec![
        mk(
            Call,
            Inbound,
            0,
            Some(60_000),
            vec![
                external(Caller, "Carol Danvers", "+14255550100"),
                alice_p(Callee),
            ],
        ),
        mk(
            Call,
            Outbound,
            1,
            Some(120_000),
            vec![
                alice_p(Caller),
                external(Callee, "Dieter Mueller", "+4930123456"),
            ],
        ),
        mk(
            Meeting,
            Internal,
            2,
            Some(1_800_000),
            vec![bob_p(Organizer), alice_p(Attendee)],
        ),
        mk(
            Call,
            Inbound,
            3,
            Some(60_000),
            vec![external(Caller, "Eve Adams", "+14255550199"), bob_p(Callee)],
        ),
        mk(
            Call,
            Unknown,
            4,
            None,
            vec![
                Participant {
                    phone_number: Some("+442079460958".into()),
                    uri: Some("tel:+442079460958".into()),
                    ..party(Caller)
                },
                bob_p(Callee),
            ],
        ),
        mk(
            Meeting,
            Internal,
            4,
            Some(300_000),
            vec![
                Participant {
                    display_name: Some("Frank Castle".into()),
                    email: Some("frank@partner.example".into()),
                    uri: Some("sip:frank@partner.example".into()),
                    ..party(Organizer)
                },
                alice_p(Attendee),
            ],
        ),
        mk(
            Call,
            Outbound,
            6,
            Some(45_000),
            vec![bob_p(Caller), external(Callee, "Grace Hopper", "030123456")],
        ),
    ];
    recs[2].legal_hold = true;
    for r in &recs {
        must(s.insert_recording(t, r).await, "insert fixture");
    }
    let transcripts: [(usize, &[&str]); 3] = [
        (
            0,
            &["hello this is carol calling about the project invoice"],
        ),
        (
            2,
            &[
                "let us review the quarterly budget",
                "the project budget looks fine to me",
            ],
        ),
        (3, &["please send the signed project contract today"]),
    ];
    for (i, lines) in transcripts {
        let id = recs[i].id;
        let segs: Vec<_> = lines
            .iter()
            .enumerate()
            .map(|(n, l)| segment(id, n as i64 * 2000, l))
            .collect();
        must(s.put_transcript_segments(t, id, &segs).await, "transcript");
        recs[i].has_transcript = true;
    }

    // A look-alike of everything in another tenant (even the same user id).
    let mut decoy = Recording::new(other, Call, Inbound, base);
    decoy.duration_ms = Some(60_000);
    decoy.participants = vec![
        external(Caller, "Carol Danvers", "+14255550100"),
        internal(Callee, alice, "Alice", "Smith"),
        internal(Attendee, bob, "Bob", "Jones"),
    ];
    must(s.insert_recording(other, &decoy).await, "decoy");
    must(
        s.put_transcript_segments(
            other,
            decoy.id,
            &[segment(
                decoy.id,
                0,
                "quarterly budget invoice signed contract",
            )],
        )
        .await,
        "decoy transcript",
    );

    SearchFixture {
        t,
        recs,
        alice,
        bob,
        base,
    }
}

/// Runs a one-page search and returns the page, checking its total.
async fn search_all(s: &Store, t: TenantId, q: RecordingQuery) -> SearchPage {
    let q = RecordingQuery { limit: 500, ..q };
    let page = must(s.search_recordings(t, &q).await, "search");
    assert_eq!(
        page.total,
        page.items.len() as u64,
        "total of a single page for {q:?}"
    );
    assert!(page.next_cursor.is_none(), "no next page for {q:?}");
    page
}

async fn hit_set(s: &Store, t: TenantId, q: RecordingQuery) -> BTreeSet<RecordingId> {
    let page = search_all(s, t, q.clone()).await;
    let set: BTreeSet<_> = page.items.iter().map(|i| i.recording.id).collect();
    assert_eq!(set.len(), page.items.len(), "duplicates in {q:?}");
    set
}

#[track_caller]
fn assert_hits(fx: &SearchFixture, got: BTreeSet<RecordingId>, want: &[usize], what: &str) {
    let want_set = fx.ids(want);
    if got != want_set {
        let names: Vec<usize> = (0..fx.recs.len())
            .filter(|i| got.contains(&fx.recs[*i].id))
            .collect();
        panic!("{what}: expected recordings {want:?}, got {names:?}");
    }
}

pub async fn search_filters_individually(s: &Store) {
    let fx = search_fixture(s).await;
    let t = fx.t;
    let h = Duration::hours;

    // No filter: everything, as full recordings, without snippets.
    let page = search_all(s, t, RecordingQuery::default()).await;
    assert_eq!(page.total, 7);
    for item in &page.items {
        let want = fx
            .recs
            .iter()
            .find(|r| r.id == item.recording.id)
            .unwrap_or_else(|| panic!("unknown recording in results"));
        assert_eq!(&item.recording, want, "search returns the full recording");
        assert!(
            item.snippets.is_empty(),
            "no snippets without transcript_text"
        );
    }

    let cases: Vec<(&str, RecordingQuery, &[usize])> = vec![
        (
            "from (inclusive)",
            RecordingQuery {
                from: Some(fx.base + h(2)),
                ..Default::default()
            },
            &[2, 3, 4, 5, 6],
        ),
        (
            "to (exclusive)",
            RecordingQuery {
                to: Some(fx.base + h(4)),
                ..Default::default()
            },
            &[0, 1, 2, 3],
        ),
        (
            "from..to",
            RecordingQuery {
                from: Some(fx.base + h(1)),
                to: Some(fx.base + h(3)),
                ..Default::default()
            },
            &[1, 2],
        ),
        (
            "direction inbound",
            RecordingQuery {
                direction: Some(Direction::Inbound),
                ..Default::default()
            },
            &[0, 3],
        ),
        (
            "direction outbound",
            RecordingQuery {
                direction: Some(Direction::Outbound),
                ..Default::default()
            },
            &[1, 6],
        ),
        (
            "direction internal",
            RecordingQuery {
                direction: Some(Direction::Internal),
                ..Default::default()
            },
            &[2, 5],
        ),
        (
            "kind meeting",
            RecordingQuery {
                kind: Some(RecordingKind::Meeting),
                ..Default::default()
            },
            &[2, 5],
        ),
        (
            "kind call",
            RecordingQuery {
                kind: Some(RecordingKind::Call),
                ..Default::default()
            },
            &[0, 1, 3, 4, 6],
        ),
        (
            "min duration (inclusive)",
            RecordingQuery {
                min_duration_ms: Some(60_000),
                ..Default::default()
            },
            &[0, 1, 2, 3, 5],
        ),
        (
            "max duration (inclusive)",
            RecordingQuery {
                max_duration_ms: Some(60_000),
                ..Default::default()
            },
            &[0, 3, 6],
        ),
        (
            "duration range",
            RecordingQuery {
                min_duration_ms: Some(60_000),
                max_duration_ms: Some(120_000),
                ..Default::default()
            },
            &[0, 1, 3],
        ),
        (
            "has transcript",
            RecordingQuery {
                has_transcript: Some(true),
                ..Default::default()
            },
            &[0, 2, 3],
        ),
        (
            "has no transcript",
            RecordingQuery {
                has_transcript: Some(false),
                ..Default::default()
            },
            &[1, 4, 5, 6],
        ),
        (
            "legal hold",
            RecordingQuery {
                legal_hold: Some(true),
                ..Default::default()
            },
            &[2],
        ),
        (
            "no legal hold",
            RecordingQuery {
                legal_hold: Some(false),
                ..Default::default()
            },
            &[0, 1, 3, 4, 5, 6],
        ),
        (
            "user alice",
            RecordingQuery {
                user_id: Some(fx.alice),
                ..Default::default()
            },
            &[0, 1, 2, 5],
        ),
        (
            "user bob",
            RecordingQuery {
                user_id: Some(fx.bob),
                ..Default::default()
            },
            &[2, 3, 4, 6],
        ),
        (
            "unknown user",
            RecordingQuery {
                user_id: Some(UserId::new()),
                ..Default::default()
            },
            &[],
        ),
        (
            "participant",
            RecordingQuery {
                participant: Some("danvers".into()),
                ..Default::default()
            },
            &[0],
        ),
        (
            "transcript text",
            RecordingQuery {
                transcript_text: Some("invoice".into()),
                ..Default::default()
            },
            &[0],
        ),
    ];
    for (what, q, want) in cases {
        let got = hit_set(s, t, q).await;
        assert_hits(&fx, got, want, what);
    }
}

pub async fn search_participant_words(s: &Store) {
    let fx = search_fixture(s).await;
    let cases: &[(&str, &[usize])] = &[
        ("carol", &[0]),
        ("CAROL", &[0]),
        ("car", &[0]),
        ("danv", &[0]),
        ("carol danvers", &[0]),
        ("Danvers Carol", &[0]),
        ("alice", &[0, 1, 2, 5]),
        ("smi", &[0, 1, 2, 5]),
        ("alice.smith@contoso.com", &[0, 1, 2, 5]),
        ("sip:bob.jones@contoso.com", &[2, 3, 4, 6]),
        ("bob jon", &[2, 3, 4, 6]),
        ("frank@partner.example", &[5]),
        ("sip:frank@partner.example", &[5]),
        ("partner", &[5]),
        ("hopper grace", &[6]),
        ("mueller", &[1]),
        ("zed", &[]),
        ("carol zed", &[]),
    ];
    for (words, want) in cases {
        let got = hit_set(
            s,
            fx.t,
            RecordingQuery {
                participant: Some((*words).to_owned()),
                ..Default::default()
            },
        )
        .await;
        assert_hits(&fx, got, want, &format!("participant {words:?}"));
    }
}

pub async fn search_phone_digits(s: &Store) {
    let fx = search_fixture(s).await;
    let cases: &[(&str, &[usize])] = &[
        ("+14255550100", &[0]),
        ("4255550100", &[0]),
        ("425 555 0100", &[0]),
        ("+1 (425) 555-0100", &[0]),
        ("001 425 555 0100", &[0]),
        ("tel:+14255550100", &[0]),
        ("555 01", &[0, 3]),
        ("0199", &[3]),
        ("+44 20 7946 0958", &[4]),
        ("0044 20 7946 0958", &[4]),
        ("7946", &[4]),
        ("(030) 123456", &[6]),
        ("30123456", &[1, 6]),
        ("+49 30 123456", &[1]),
        ("999999", &[]),
    ];
    for (number, want) in cases {
        let got = hit_set(
            s,
            fx.t,
            RecordingQuery {
                participant: Some((*number).to_owned()),
                ..Default::default()
            },
        )
        .await;
        assert_hits(&fx, got, want, &format!("number {number:?}"));
    }
}

pub async fn search_transcript_text_and_snippets(s: &Store) {
    let fx = search_fixture(s).await;
    let cases: &[(&str, &[usize])] = &[
        ("budget", &[2]),
        ("Budget", &[2]),
        ("quarterly budget", &[2]),
        ("invoice", &[0]),
        ("contract", &[3]),
        ("signed contract", &[3]),
        ("project", &[0, 2, 3]),
        // Both words exist, but in different recordings.
        ("invoice contract", &[]),
        ("elephant", &[]),
    ];
    for (text, want) in cases {
        let got = hit_set(
            s,
            fx.t,
            RecordingQuery {
                transcript_text: Some((*text).to_owned()),
                ..Default::default()
            },
        )
        .await;
        assert_hits(&fx, got, want, &format!("transcript {text:?}"));
    }

    let page = search_all(
        s,
        fx.t,
        RecordingQuery {
            transcript_text: Some("budget".into()),
            ..Default::default()
        },
    )
    .await;
    let item = &page.items[0];
    assert!(!item.snippets.is_empty(), "snippets for a transcript match");
    assert!(
        item.snippets.iter().any(|s| s.contains("[[budget]]")),
        "a snippet marks the match: {:?}",
        item.snippets
    );
    for snip in &item.snippets {
        assert!(
            snip.contains("[[") && snip.contains("]]"),
            "every snippet marks a match: {snip:?}"
        );
    }

    let page = search_all(
        s,
        fx.t,
        RecordingQuery {
            transcript_text: Some("signed contract".into()),
            ..Default::default()
        },
    )
    .await;
    let snips = &page.items[0].snippets;
    assert!(
        snips
            .iter()
            .any(|s| s.contains("[[signed]]") && s.contains("[[contract]]")),
        "every matched word is marked: {snips:?}"
    );
}

pub async fn search_combined_filters(s: &Store) {
    let fx = search_fixture(s).await;
    let h = Duration::hours;
    let cases: Vec<(&str, RecordingQuery, &[usize])> = vec![
        (
            "inbound, >= 60s, transcribed",
            RecordingQuery {
                direction: Some(Direction::Inbound),
                min_duration_ms: Some(60_000),
                has_transcript: Some(true),
                ..Default::default()
            },
            &[0, 3],
        ),
        (
            "... and participant eve",
            RecordingQuery {
                direction: Some(Direction::Inbound),
                min_duration_ms: Some(60_000),
                has_transcript: Some(true),
                participant: Some("eve".into()),
                ..Default::default()
            },
            &[3],
        ),
        (
            "alice's meetings from +1h",
            RecordingQuery {
                from: Some(fx.base + h(1)),
                user_id: Some(fx.alice),
                kind: Some(RecordingKind::Meeting),
                ..Default::default()
            },
            &[2, 5],
        ),
        (
            "... not on hold",
            RecordingQuery {
                from: Some(fx.base + h(1)),
                user_id: Some(fx.alice),
                kind: Some(RecordingKind::Meeting),
                legal_hold: Some(false),
                ..Default::default()
            },
            &[5],
        ),
        (
            "bob + text",
            RecordingQuery {
                user_id: Some(fx.bob),
                transcript_text: Some("project".into()),
                ..Default::default()
            },
            &[2, 3],
        ),
        (
            "number + visible to bob + before +4h",
            RecordingQuery {
                participant: Some("425 555".into()),
                visible_to_users: Some(vec![fx.bob]),
                to: Some(fx.base + h(4)),
                ..Default::default()
            },
            &[3],
        ),
        (
            "participant + text in different recordings",
            RecordingQuery {
                participant: Some("carol".into()),
                transcript_text: Some("budget".into()),
                ..Default::default()
            },
            &[],
        ),
    ];
    for (what, q, want) in cases {
        let got = hit_set(s, fx.t, q).await;
        assert_hits(&fx, got, want, what);
    }
}

pub async fn search_visible_to_users(s: &Store) {
    let fx = search_fixture(s).await;
    type Case<'a> = (&'a str, Option<Vec<UserId>>, &'a [usize]);
    let cases: Vec<Case> = vec![
        ("no restriction", None, &[0, 1, 2, 3, 4, 5, 6]),
        ("empty list matches nothing", Some(vec![]), &[]),
        ("alice", Some(vec![fx.alice]), &[0, 1, 2, 5]),
        ("bob", Some(vec![fx.bob]), &[2, 3, 4, 6]),
        (
            "alice or bob",
            Some(vec![fx.alice, fx.bob]),
            &[0, 1, 2, 3, 4, 5, 6],
        ),
        ("unknown user", Some(vec![UserId::new()]), &[]),
    ];
    for (what, users, want) in cases {
        let got = hit_set(
            s,
            fx.t,
            RecordingQuery {
                visible_to_users: users,
                ..Default::default()
            },
        )
        .await;
        assert_hits(&fx, got, want, what);
    }
    // Combined with user_id: both must hold.
    let got = hit_set(
        s,
        fx.t,
        RecordingQuery {
            user_id: Some(fx.alice),
            visible_to_users: Some(vec![fx.bob]),
            ..Default::default()
        },
    )
    .await;
    assert_hits(&fx, got, &[2], "user alice visible to bob");
}

fn assert_sorted(items: &[RecordingSummary], sort: SortKey) {
    let keys: Vec<(DateTime<Utc>, Option<i64>)> = items
        .iter()
        .map(|i| (i.recording.started_at, i.recording.duration_ms))
        .collect();
    let ok = |ok: bool, w: &[(DateTime<Utc>, Option<i64>)]| {
        assert!(ok, "{sort}: {:?} out of order", w);
    };
    match sort {
        SortKey::StartedDesc => keys.windows(2).for_each(|w| ok(w[0].0 >= w[1].0, w)),
        SortKey::StartedAsc => keys.windows(2).for_each(|w| ok(w[0].0 <= w[1].0, w)),
        SortKey::DurationDesc | SortKey::DurationAsc => {
            let durations: Vec<i64> = keys.iter().filter_map(|k| k.1).collect();
            for w in durations.windows(2) {
                let in_order = if sort == SortKey::DurationDesc {
                    w[0] >= w[1]
                } else {
                    w[0] <= w[1]
                };
                assert!(in_order, "{sort}: durations {durations:?} out of order");
            }
            // Recordings without a duration are kept together (first or
            // last; not pinned).
            let none_at: Vec<usize> = keys
                .iter()
                .enumerate()
                .filter(|(_, k)| k.1.is_none())
                .map(|(i, _)| i)
                .collect();
            if let (Some(first), Some(last)) = (none_at.first(), none_at.last()) {
                assert!(
                    *first == 0 || *last == keys.len() - 1,
                    "{sort}: recordings without duration at {none_at:?}"
                );
            }
        }
    }
}

pub async fn search_sort_orders(s: &Store) {
    let fx = search_fixture(s).await;
    let all = fx.ids(&[0, 1, 2, 3, 4, 5, 6]);
    for sort in SortKey::ALL {
        let q = RecordingQuery {
            sort: *sort,
            ..Default::default()
        };
        let page = search_all(s, fx.t, q.clone()).await;
        let got: BTreeSet<_> = page.items.iter().map(|i| i.recording.id).collect();
        assert_eq!(got, all, "{sort}: every recording");
        assert_sorted(&page.items, *sort);
        // Deterministic: the same query gives the same order.
        let again = search_all(s, fx.t, q).await;
        let ids = |p: &SearchPage| p.items.iter().map(|i| i.recording.id).collect::<Vec<_>>();
        assert_eq!(ids(&page), ids(&again), "{sort}: deterministic order");
    }
    // The exact order where keys differ.
    let order = |p: &SearchPage| p.items.iter().map(|i| i.recording.id).collect::<Vec<_>>();
    let started_desc = order(
        &search_all(
            s,
            fx.t,
            RecordingQuery {
                sort: SortKey::StartedDesc,
                ..Default::default()
            },
        )
        .await,
    );
    assert_eq!(started_desc[0], fx.recs[6].id);
    assert_eq!(started_desc[3..], [3, 2, 1, 0].map(|i| fx.recs[i].id));
    let started_asc = order(
        &search_all(
            s,
            fx.t,
            RecordingQuery {
                sort: SortKey::StartedAsc,
                ..Default::default()
            },
        )
        .await,
    );
    assert_eq!(started_asc[..4], [0, 1, 2, 3].map(|i| fx.recs[i].id));
    assert_eq!(started_asc[6], fx.recs[6].id);
    let duration_desc = order(
        &search_all(
            s,
            fx.t,
            RecordingQuery {
                sort: SortKey::DurationDesc,
                legal_hold: Some(false),
                max_duration_ms: Some(1_000_000),
                ..Default::default()
            },
        )
        .await,
    );
    assert_eq!(duration_desc[..2], [5, 1].map(|i| fx.recs[i].id));
    assert_eq!(duration_desc[4], fx.recs[6].id);
}

pub async fn search_pagination_exact_once(s: &Store) {
    let fx = search_fixture(s).await;
    let cases: Vec<(RecordingQuery, u64)> = SortKey::ALL
        .iter()
        .map(|sort| {
            (
                RecordingQuery {
                    sort: *sort,
                    limit: 2,
                    ..Default::default()
                },
                7,
            )
        })
        .chain([
            (
                RecordingQuery {
                    sort: SortKey::StartedAsc,
                    user_id: Some(fx.bob),
                    limit: 1,
                    ..Default::default()
                },
                4,
            ),
            (
                RecordingQuery {
                    sort: SortKey::DurationAsc,
                    participant: Some("alice".into()),
                    limit: 3,
                    ..Default::default()
                },
                4,
            ),
            (
                RecordingQuery {
                    sort: SortKey::StartedDesc,
                    transcript_text: Some("project".into()),
                    limit: 2,
                    ..Default::default()
                },
                3,
            ),
        ])
        .collect();
    for (q, total) in cases {
        let single = search_all(s, fx.t, q.clone()).await;
        let want: Vec<RecordingId> = single.items.iter().map(|i| i.recording.id).collect();
        assert_eq!(want.len() as u64, total, "{q:?}: matches");

        let mut got: Vec<RecordingId> = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            pages += 1;
            assert!(pages <= 10, "{q:?}: pagination does not end");
            let page = must(
                s.search_recordings(
                    fx.t,
                    &RecordingQuery {
                        cursor: cursor.clone(),
                        ..q.clone()
                    },
                )
                .await,
                "page",
            );
            assert_eq!(page.total, total, "{q:?}: total on page {pages}");
            assert!(page.items.len() <= q.limit as usize, "page size");
            got.extend(page.items.iter().map(|i| i.recording.id));
            match page.next_cursor {
                Some(c) => {
                    assert_eq!(page.items.len(), q.limit as usize, "only full pages go on");
                    cursor = Some(c);
                }
                None => break,
            }
        }
        let unique: BTreeSet<_> = got.iter().copied().collect();
        assert_eq!(unique.len(), got.len(), "{q:?}: duplicates across pages");
        assert_eq!(
            got, want,
            "{q:?}: pages concatenate to the single-page order"
        );
        assert_eq!(
            pages as u64,
            total.div_ceil(u64::from(q.limit)),
            "{q:?}: page count"
        );
    }

    // `limit` is clamped: 0 behaves as 1.
    let page = must(
        s.search_recordings(
            fx.t,
            &RecordingQuery {
                limit: 0,
                ..Default::default()
            },
        )
        .await,
        "limit 0",
    );
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.total, 7);
    assert!(page.next_cursor.is_some());
}

pub async fn search_bad_cursor_is_invalid(s: &Store) {
    let fx = search_fixture(s).await;
    for bad in [
        "definitely not a cursor",
        "!!!",
        "AAAA",
        "eyJ9",
        "' OR 1=1 --",
        "\"",
    ] {
        assert_invalid(
            s.search_recordings(
                fx.t,
                &RecordingQuery {
                    cursor: Some(bad.to_owned()),
                    ..Default::default()
                },
            )
            .await,
            &format!("cursor {bad:?}"),
        );
    }
}

pub async fn search_hostile_input_is_harmless(s: &Store) {
    let fx = search_fixture(s).await;
    let long = "budget ".repeat(300);
    let inputs: Vec<&str> = vec![
        "\"",
        "\"\"",
        "'",
        "AND (",
        "OR",
        "NOT",
        "NEAR(a b)",
        "budget*\"",
        "text:budget",
        "a\" OR \"1\"=\"1",
        "'; DROP TABLE recordings; --",
        "\\",
        "^",
        "-budget",
        "+",
        "()",
        "{}",
        "[[",
        "📞 ☎",
        "budget AND",
        "!budget | budget & (",
        ":*",
        "%",
        "_",
        "*",
        &long,
    ];
    for input in &inputs {
        for q in [
            RecordingQuery {
                participant: Some((*input).to_owned()),
                ..Default::default()
            },
            RecordingQuery {
                transcript_text: Some((*input).to_owned()),
                ..Default::default()
            },
        ] {
            let page = must(s.search_recordings(fx.t, &q).await, &format!("{q:?}"));
            assert!(page.total <= 7, "{q:?}: at most the tenant's recordings");
        }
    }
    // Wildcard characters are not wildcards.
    for input in ["%", "_", "*", "\"", "%%%%"] {
        let page = must(
            s.search_recordings(
                fx.t,
                &RecordingQuery {
                    participant: Some(input.to_owned()),
                    ..Default::default()
                },
            )
            .await,
            "wildcard",
        );
        assert_eq!(page.total, 0, "participant {input:?} matches nothing");
    }
    // Quotes around a word do not stop it from matching.
    let got = hit_set(
        s,
        fx.t,
        RecordingQuery {
            transcript_text: Some("\"budget\"".into()),
            ..Default::default()
        },
    )
    .await;
    assert_hits(&fx, got, &[2], "quoted word");
    // Everything is still there.
    assert_eq!(
        search_all(s, fx.t, RecordingQuery::default()).await.total,
        7
    );
}

// ---------------------------------------------------------------------
// transcripts and insights
// ---------------------------------------------------------------------

pub async fn transcript_segments_idempotent_and_ordered(s: &Store) {
    let t = tenant(s, "contoso").await;
    let r = full_recording(t, now());
    must(s.insert_recording(t, &r).await, "insert");
    assert!(must(s.list_transcript(t, r.id).await, "empty").is_empty());

    let a = segment(r.id, 4000, "third in time");
    let b = TranscriptSegment {
        participant_id: Some(r.participants[0].id),
        ..segment(r.id, 0, "first in time")
    };
    // Same start as `b`: ordered after it by id (created later).
    let c = TranscriptSegment {
        language: None,
        confidence: 0.1,
        ..segment(r.id, 0, "second in time")
    };
    must(
        s.put_transcript_segments(t, r.id, &[a.clone(), c.clone(), b.clone()])
            .await,
        "put",
    );
    assert!(must(s.get_recording(t, r.id).await, "get").has_transcript);
    let by_start_then_id = |mut v: Vec<TranscriptSegment>| {
        v.sort_by_key(|x| (x.start_ms, x.id));
        v
    };
    let mut want = by_start_then_id(vec![a.clone(), b.clone(), c.clone()]);
    assert_eq!(want, [b.clone(), c.clone(), a.clone()]);
    assert_eq!(must(s.list_transcript(t, r.id).await, "list"), want);

    // A retried job puts the same segments again: no duplicates.
    must(
        s.put_transcript_segments(t, r.id, &[a.clone(), b.clone(), c.clone()])
            .await,
        "put again",
    );
    assert_eq!(must(s.list_transcript(t, r.id).await, "list again"), want);

    // Same id, new content: replaced (and the search index follows).
    let a2 = TranscriptSegment {
        text: "corrected walrus words".into(),
        confidence: 0.5,
        ..a.clone()
    };
    let d = segment(r.id, 2000, "a new segment");
    must(
        s.put_transcript_segments(t, r.id, &[a2.clone(), d.clone()])
            .await,
        "replace + add",
    );
    want = by_start_then_id(vec![a2, b, c, d]);
    assert_eq!(
        must(s.list_transcript(t, r.id).await, "list replaced"),
        want
    );
    let q = |w: &str| RecordingQuery {
        transcript_text: Some(w.into()),
        ..Default::default()
    };
    assert_eq!(
        must(s.search_recordings(t, &q("walrus")).await, "q").total,
        1
    );
    assert_eq!(
        must(s.search_recordings(t, &q("third")).await, "q").total,
        0
    );

    let missing = RecordingId::new();
    assert_not_found(
        s.put_transcript_segments(t, missing, &[segment(missing, 0, "x")])
            .await,
        "missing recording",
    );
    assert_not_found_or_empty(
        s.list_transcript(t, RecordingId::new()).await,
        "list missing",
    );
}

pub async fn insights_put_replace_list(s: &Store) {
    let t = tenant(s, "contoso").await;
    let r = full_recording(t, now());
    must(s.insert_recording(t, &r).await, "insert");
    assert!(must(s.list_insights(t, r.id).await, "empty").is_empty());

    let t0 = now() - Duration::minutes(10);
    let at = |m: i64| t0 + Duration::minutes(m);
    let items = vec![
        insight(r.id, InsightKind::Topic, "pricing", at(1)),
        insight(r.id, InsightKind::ActionItem, "send offer", at(3)),
        Insight {
            owner_participant_id: Some(r.participants[1].id),
            ..insight(r.id, InsightKind::ActionItem, "call back", at(2))
        },
        insight(r.id, InsightKind::Summary, "they agreed", at(5)),
        insight(r.id, InsightKind::Decision, "go ahead", at(4)),
        // Same kind and time as the previous decision: ordered by id.
        insight(r.id, InsightKind::Decision, "ship friday", at(4)),
    ];
    must(s.put_insights(t, r.id, &items).await, "put");
    let sorted = |mut v: Vec<Insight>| {
        v.sort_by_key(|i| (i.kind, i.created_at, i.id));
        v
    };
    let want = sorted(items.clone());
    assert_eq!(
        want[0].kind,
        InsightKind::Summary,
        "declaration order of kinds"
    );
    assert_eq!(must(s.list_insights(t, r.id).await, "list"), want);

    // Replaced by id, no duplicates.
    let mut changed = items.clone();
    changed[0].text = "pricing and discounts".into();
    changed[0].provider = "azure-openai:gpt".into();
    must(s.put_insights(t, r.id, &changed).await, "put again");
    assert_eq!(
        must(s.list_insights(t, r.id).await, "list"),
        sorted(changed)
    );

    let missing = RecordingId::new();
    assert_not_found(
        s.put_insights(
            t,
            missing,
            &[insight(missing, InsightKind::Topic, "x", now())],
        )
        .await,
        "missing recording",
    );
}

// ---------------------------------------------------------------------
// audit chain
// ---------------------------------------------------------------------

pub async fn audit_chain_appends_and_verifies(s: &Store) {
    let t = tenant(s, "contoso").await;
    assert_eq!(must(s.audit_head(t).await, "empty head"), None);
    assert!(must(s.list_audit(t, &AuditQuery::default()).await, "empty").is_empty());
    assert_eq!(verify_chain(&[], None), ChainVerdict::Intact { events: 0 });

    let rec = RecordingId::new();
    let news = [
        audit_event("cli", AuditAction::TenantCreate, None),
        audit_event("acc-1", AuditAction::Login, None),
        audit_event("acc-1", AuditAction::Search, None),
        audit_event("acc-1", AuditAction::Play, Some(rec)),
        NewAuditEvent {
            target: None,
            reason: None,
            source: None,
            details: serde_json::Value::Null,
            ..audit_event("oidc:sub-9", AuditAction::Download, Some(rec))
        },
    ];
    let mut stored: Vec<AuditEvent> = Vec::new();
    for (i, n) in news.iter().enumerate() {
        let before = now();
        let ev = must(s.append_audit(t, n.clone()).await, "append");
        assert_eq!(ev.seq, i as i64 + 1, "seq");
        assert_eq!(ev.tenant_id, t);
        assert_eq!(ev.actor, n.actor);
        assert_eq!(ev.action, n.action);
        assert_eq!(ev.recording_id, n.recording_id);
        assert_eq!(ev.target, n.target);
        assert_eq!(ev.reason, n.reason);
        assert_eq!(ev.source, n.source);
        assert_eq!(ev.details, n.details);
        assert!(ev.at >= before && ev.at <= now(), "time of the append");
        let want_prev = stored
            .last()
            .map(|e| e.hash.clone())
            .unwrap_or_else(|| "0".repeat(64));
        assert_eq!(ev.prev_hash, want_prev, "linked to the previous event");
        assert_eq!(ev.hash, ev.compute_hash(), "hash over the stored fields");
        assert_eq!(
            must(s.audit_head(t).await, "head"),
            Some((ev.seq, ev.hash.clone()))
        );
        stored.push(ev);
    }
    let listed = must(s.list_audit(t, &AuditQuery::default()).await, "list");
    assert_eq!(listed, stored, "events read back exactly as appended");
    let head = must(s.audit_head(t).await, "head");
    assert_eq!(
        verify_chain(&listed, head.as_ref().map(|(q, h)| (*q, h.as_str()))),
        ChainVerdict::Intact { events: 5 }
    );
}

pub async fn audit_concurrent_appends_are_gap_free(s: &Store) {
    let t = tenant(s, "contoso").await;
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let s = Arc::clone(s);
            tokio::spawn(async move {
                s.append_audit(t, audit_event(&format!("acc-{i}"), AuditAction::Play, None))
                    .await
            })
        })
        .collect();
    let mut seqs = BTreeSet::new();
    for r in futures::future::join_all(tasks).await {
        let ev = must(must(r, "task"), "append");
        assert!(seqs.insert(ev.seq), "seq {} handed out twice", ev.seq);
    }
    assert_eq!(seqs, (1..=20).collect::<BTreeSet<i64>>(), "no gaps");
    let listed = must(s.list_audit(t, &AuditQuery::default()).await, "list");
    assert_eq!(listed.len(), 20);
    let actors: BTreeSet<_> = listed.iter().map(|e| e.actor.clone()).collect();
    assert_eq!(actors.len(), 20, "every append stored once");
    let head = must(s.audit_head(t).await, "head");
    assert_eq!(
        verify_chain(&listed, head.as_ref().map(|(q, h)| (*q, h.as_str()))),
        ChainVerdict::Intact { events: 20 }
    );
}

pub async fn audit_filters(s: &Store) {
    let t = tenant(s, "contoso").await;
    let r1 = RecordingId::new();
    let r2 = RecordingId::new();
    let plan = [
        ("acc-1", AuditAction::Login, None),
        ("acc-1", AuditAction::Play, Some(r1)),
        ("acc-2", AuditAction::Play, Some(r2)),
        ("acc-2", AuditAction::Download, Some(r1)),
        ("acc-1", AuditAction::Search, None),
        ("acc-3", AuditAction::Play, Some(r1)),
        ("acc-1", AuditAction::Logout, None),
    ];
    let mut all = Vec::new();
    for (actor, action, rec) in plan {
        all.push(must(
            s.append_audit(t, audit_event(actor, action, rec)).await,
            "append",
        ));
        // Spread the events in time so `from`/`to` can split them.
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let seqs = |v: Vec<AuditEvent>| v.into_iter().map(|e| e.seq).collect::<Vec<_>>();
    let list = |q: AuditQuery| {
        let s = Arc::clone(s);
        async move { seqs(must(s.list_audit(t, &q).await, "list")) }
    };
    assert_eq!(
        list(AuditQuery {
            action: Some(AuditAction::Play),
            ..Default::default()
        })
        .await,
        [2, 3, 6]
    );
    assert_eq!(
        list(AuditQuery {
            recording_id: Some(r1),
            ..Default::default()
        })
        .await,
        [2, 4, 6]
    );
    assert_eq!(
        list(AuditQuery {
            actor: Some("acc-1".into()),
            ..Default::default()
        })
        .await,
        [1, 2, 5, 7]
    );
    assert_eq!(
        list(AuditQuery {
            action: Some(AuditAction::Play),
            recording_id: Some(r1),
            actor: Some("acc-3".into()),
            ..Default::default()
        })
        .await,
        [6]
    );
    assert_eq!(
        list(AuditQuery {
            after_seq: Some(2),
            limit: 2,
            ..Default::default()
        })
        .await,
        [3, 4]
    );
    assert_eq!(
        list(AuditQuery {
            after_seq: Some(5),
            ..Default::default()
        })
        .await,
        [6, 7]
    );
    assert_eq!(
        list(AuditQuery {
            limit: 3,
            ..Default::default()
        })
        .await,
        [1, 2, 3]
    );
    assert_eq!(
        list(AuditQuery {
            after_seq: Some(7),
            ..Default::default()
        })
        .await,
        Vec::<i64>::new()
    );
    // Paging with after_seq + limit walks the whole chain once.
    let mut walked = Vec::new();
    let mut after = None;
    loop {
        let page = list(AuditQuery {
            after_seq: after,
            limit: 3,
            ..Default::default()
        })
        .await;
        let Some(last) = page.last().copied() else {
            break;
        };
        walked.extend(page);
        after = Some(last);
    }
    assert_eq!(walked, (1..=7).collect::<Vec<i64>>());

    // Time window: from inclusive, to exclusive.
    let from = all[2].at;
    let to = all[5].at;
    let want: Vec<i64> = all
        .iter()
        .filter(|e| e.at >= from && e.at < to)
        .map(|e| e.seq)
        .collect();
    assert!(want.contains(&3) && !want.contains(&6));
    assert_eq!(
        list(AuditQuery {
            from: Some(from),
            to: Some(to),
            ..Default::default()
        })
        .await,
        want
    );
}

pub async fn audit_chains_are_per_tenant(s: &Store) {
    let a = tenant(s, "contoso").await;
    let b = tenant(s, "fabrikam").await;
    for i in 0..3 {
        must(
            s.append_audit(a, audit_event(&format!("a-{i}"), AuditAction::Login, None))
                .await,
            "append a",
        );
    }
    let first_b = must(
        s.append_audit(b, audit_event("b-0", AuditAction::Login, None))
            .await,
        "append b",
    );
    assert_eq!(first_b.seq, 1, "every tenant's chain starts at 1");
    assert_eq!(first_b.prev_hash, "0".repeat(64));
    assert_eq!(first_b.tenant_id, b);
    let c = tenant(s, "northwind").await;
    assert_eq!(must(s.audit_head(c).await, "no head"), None);
    assert!(must(s.list_audit(c, &AuditQuery::default()).await, "none").is_empty());

    for (t, n) in [(a, 3), (b, 1)] {
        let listed = must(s.list_audit(t, &AuditQuery::default()).await, "list");
        assert_eq!(listed.len(), n);
        assert!(listed.iter().all(|e| e.tenant_id == t), "only own events");
        let head = must(s.audit_head(t).await, "head");
        assert_eq!(
            verify_chain(&listed, head.as_ref().map(|(q, h)| (*q, h.as_str()))),
            ChainVerdict::Intact { events: n as u64 }
        );
    }
}

// ---------------------------------------------------------------------
// retention, holds, profiles, keys
// ---------------------------------------------------------------------

fn policy(t: TenantId, name: &str, days: i32) -> RetentionPolicy {
    RetentionPolicy {
        id: RetentionPolicyId::new(),
        tenant_id: t,
        name: name.to_owned(),
        scope: RetentionScope {
            kind: Some(RecordingKind::Call),
            direction: Some(Direction::Inbound),
            group: Some("sales".into()),
            retention_class: Some("finance".into()),
        },
        retain_days: days,
        action: RetentionAction::DeleteMedia,
        enabled: true,
        updated_at: now(),
    }
}

pub async fn retention_policies_crud(s: &Store) {
    let t = tenant(s, "contoso").await;
    let other = tenant(s, "fabrikam").await;
    let by_id = |mut v: Vec<RetentionPolicy>| {
        v.sort_by_key(|p| p.id);
        v
    };
    let a = policy(t, "calls 90 days", 90);
    let b = RetentionPolicy {
        scope: RetentionScope::default(),
        action: RetentionAction::DeleteRecording,
        enabled: false,
        ..policy(t, "everything 10 years", 3650)
    };
    must(s.upsert_retention_policy(t, &a).await, "a");
    must(s.upsert_retention_policy(t, &b).await, "b");
    assert_eq!(
        by_id(must(s.list_retention_policies(t).await, "list")),
        by_id(vec![a.clone(), b.clone()])
    );

    let a2 = RetentionPolicy {
        retain_days: 30,
        name: "calls 30 days".into(),
        updated_at: now(),
        ..a.clone()
    };
    must(s.upsert_retention_policy(t, &a2).await, "replace a");
    assert_eq!(
        by_id(must(s.list_retention_policies(t).await, "list")),
        by_id(vec![a2.clone(), b.clone()])
    );

    assert!(must(s.list_retention_policies(other).await, "other").is_empty());
    assert_not_found(s.delete_retention_policy(other, a.id).await, "other delete");
    must(s.delete_retention_policy(t, a.id).await, "delete");
    assert_eq!(must(s.list_retention_policies(t).await, "list"), vec![b]);
    assert_not_found(s.delete_retention_policy(t, a.id).await, "delete twice");
}

pub async fn legal_holds_create_list_lift(s: &Store) {
    let t = tenant(s, "contoso").await;
    let other = tenant(s, "fabrikam").await;
    let t0 = now() - Duration::days(3);
    let h1 = LegalHold {
        id: LegalHoldId::new(),
        tenant_id: t,
        case_name: "Case A v. B".into(),
        reason: Some("litigation".into()),
        scope: HoldScope {
            user_id: Some(UserId::new()),
            participant_identifier: Some("+14255550100".into()),
            from: Some(t0 - Duration::days(30)),
            to: Some(t0),
            recording_ids: vec![RecordingId::new(), RecordingId::new()],
        },
        placed_by: "acc-1".into(),
        placed_at: t0 + Duration::hours(2),
        lifted_by: None,
        lifted_at: None,
    };
    let h2 = LegalHold {
        id: LegalHoldId::new(),
        case_name: "Regulator inquiry".into(),
        reason: None,
        scope: HoldScope::default(),
        placed_at: t0,
        ..h1.clone()
    };
    must(s.create_legal_hold(t, &h1).await, "h1");
    must(s.create_legal_hold(t, &h2).await, "h2");
    assert_eq!(
        must(s.list_legal_holds(t, false).await, "all"),
        vec![h2.clone(), h1.clone()],
        "ordered by placed_at"
    );
    assert_eq!(
        must(s.list_legal_holds(t, true).await, "active"),
        vec![h2.clone(), h1.clone()]
    );

    let before = now();
    must(s.lift_legal_hold(t, h2.id, "acc-2").await, "lift");
    let all = must(s.list_legal_holds(t, false).await, "all");
    assert_eq!(all.len(), 2);
    let lifted = &all[0];
    assert_eq!(lifted.id, h2.id);
    assert_eq!(lifted.lifted_by.as_deref(), Some("acc-2"));
    let lifted_at = lifted
        .lifted_at
        .unwrap_or_else(|| panic!("lifted_at is set"));
    assert!(lifted_at >= before && lifted_at <= now());
    assert!(!lifted.is_active());
    assert_eq!(
        LegalHold {
            lifted_by: None,
            lifted_at: None,
            ..lifted.clone()
        },
        h2,
        "lifting changes nothing else"
    );
    assert_eq!(all[1], h1);
    assert_eq!(
        must(s.list_legal_holds(t, true).await, "active"),
        vec![h1.clone()]
    );

    assert_not_found(
        s.lift_legal_hold(t, LegalHoldId::new(), "acc-2").await,
        "missing",
    );
    assert_not_found(
        s.lift_legal_hold(other, h1.id, "acc-9").await,
        "other tenant",
    );
    assert!(must(s.list_legal_holds(other, false).await, "other").is_empty());
    assert_eq!(
        must(s.list_legal_holds(t, true).await, "still active"),
        vec![h1]
    );
}

pub async fn security_profiles_validate_and_upsert(s: &Store) {
    let t = tenant(s, "contoso").await;
    let other = tenant(s, "fabrikam").await;
    let by_id = |mut v: Vec<SecurityProfile>| {
        v.sort_by_key(|p| p.id);
        v
    };
    let profile = |name: &str, role: Role| SecurityProfile {
        id: SecurityProfileId::new(),
        tenant_id: t,
        name: name.to_owned(),
        role,
        permissions: role.default_permissions(),
        scope: role.default_scope(),
    };
    let ops = profile("operators", Role::PlatformOperator);
    let sup = SecurityProfile {
        scope: VisibilityScope::Groups(vec!["team-a".into(), "team-b".into()]),
        ..profile("supervisors", Role::Supervisor)
    };
    let users = SecurityProfile {
        scope: VisibilityScope::Users(vec![UserId::new(), UserId::new()]),
        ..profile("named users", Role::User)
    };
    for p in [&ops, &sup, &users] {
        must(s.upsert_security_profile(t, p).await, "upsert");
    }
    assert_eq!(
        by_id(must(s.list_security_profiles(t).await, "list")),
        by_id(vec![ops.clone(), sup.clone(), users.clone()])
    );

    // Invariants are checked: an operator can never see content.
    let mut bad = ops.clone();
    bad.permissions.push(Permission::Play);
    assert_invalid(s.upsert_security_profile(t, &bad).await, "operator + play");
    let bad = SecurityProfile {
        scope: VisibilityScope::All,
        ..ops.clone()
    };
    assert_invalid(s.upsert_security_profile(t, &bad).await, "operator + all");
    let bad = SecurityProfile {
        id: SecurityProfileId::new(),
        name: "  ".into(),
        ..sup.clone()
    };
    assert_invalid(s.upsert_security_profile(t, &bad).await, "blank name");
    assert_eq!(
        by_id(must(s.list_security_profiles(t).await, "unchanged")),
        by_id(vec![ops.clone(), sup.clone(), users.clone()])
    );

    // Replace by id.
    let sup2 = SecurityProfile {
        name: "team leads".into(),
        permissions: vec![Permission::Search, Permission::ViewTranscript],
        scope: VisibilityScope::OwnRecordings,
        ..sup.clone()
    };
    must(s.upsert_security_profile(t, &sup2).await, "replace");
    assert_eq!(
        by_id(must(s.list_security_profiles(t).await, "list")),
        by_id(vec![ops, sup2, users])
    );
    assert!(must(s.list_security_profiles(other).await, "other").is_empty());
}

pub async fn access_requests_four_eyes(s: &Store) {
    let t = tenant(s, "contoso").await;
    let other = tenant(s, "fabrikam").await;
    let rec = full_recording(t, now() - Duration::hours(1));
    must(s.insert_recording(t, &rec).await, "recording");

    let r1 = AccessRequest::new(
        t,
        rec.id,
        "account:sup".into(),
        "case 42".into(),
        now() - Duration::minutes(5),
    );
    let r2 = AccessRequest::new(t, rec.id, "account:sup2".into(), "QA sample".into(), now());
    must(s.create_access_request(t, &r1).await, "r1");
    must(s.create_access_request(t, &r2).await, "r2");
    assert_eq!(must(s.get_access_request(t, r1.id).await, "get"), r1);
    assert_eq!(
        must(s.list_access_requests(t, None, None).await, "all"),
        vec![r2.clone(), r1.clone()],
        "newest first"
    );
    assert_eq!(
        must(
            s.list_access_requests(t, None, Some("account:sup")).await,
            "mine"
        ),
        vec![r1.clone()]
    );

    // Another tenant sees nothing, cannot decide, cannot file against
    // this tenant's recording.
    assert_not_found(s.get_access_request(other, r1.id).await, "other tenant get");
    assert!(must(s.list_access_requests(other, None, None).await, "other").is_empty());
    let stray = AccessRequest::new(other, rec.id, "account:x".into(), "r".into(), now());
    assert_not_found(
        s.create_access_request(other, &stray).await,
        "other tenant's recording",
    );
    let missing = AccessRequest::new(t, RecordingId::new(), "account:x".into(), "r".into(), now());
    assert_not_found(
        s.create_access_request(t, &missing).await,
        "no such recording",
    );

    let at = now();
    let approve = AccessDecision {
        approve: true,
        by: "account:officer".into(),
        note: Some("ok".into()),
        at,
        expires_at: at + Duration::minutes(60),
    };
    assert_not_found(
        s.decide_access_request(other, r1.id, &approve).await,
        "other tenant decide",
    );
    // Nobody approves their own request.
    assert_invalid(
        s.decide_access_request(
            t,
            r1.id,
            &AccessDecision {
                by: "account:sup".into(),
                ..approve.clone()
            },
        )
        .await,
        "self-approval",
    );
    let decided = must(s.decide_access_request(t, r1.id, &approve).await, "approve");
    assert_eq!(decided.status, AccessRequestStatus::Approved);
    assert_eq!(decided.decided_by.as_deref(), Some("account:officer"));
    assert_eq!(decided.decided_at, Some(at));
    assert_eq!(decided.expires_at, Some(at + Duration::minutes(60)));
    assert_eq!(decided.decision_note.as_deref(), Some("ok"));
    assert!(decided.grants("account:sup", rec.id, at));
    assert_eq!(
        must(s.get_access_request(t, r1.id).await, "reread"),
        decided
    );
    // A decision is final.
    assert_conflict(
        s.decide_access_request(
            t,
            r1.id,
            &AccessDecision {
                approve: false,
                ..approve.clone()
            },
        )
        .await,
        "decided twice",
    );
    let denied = must(
        s.decide_access_request(
            t,
            r2.id,
            &AccessDecision {
                approve: false,
                ..approve.clone()
            },
        )
        .await,
        "deny",
    );
    assert_eq!(denied.status, AccessRequestStatus::Denied);
    assert_eq!(denied.expires_at, None, "a denial grants no window");
    assert_eq!(
        must(
            s.list_access_requests(t, Some(AccessRequestStatus::Approved), None)
                .await,
            "approved"
        ),
        vec![decided]
    );
    assert!(
        must(
            s.list_access_requests(t, Some(AccessRequestStatus::Pending), None)
                .await,
            "pending"
        )
        .is_empty()
    );

    // Requests go with their recording.
    must(s.delete_recording(t, rec.id).await, "delete recording");
    assert_not_found(
        s.get_access_request(t, r1.id).await,
        "gone with the recording",
    );
}

pub async fn data_keys_put_get_shred(s: &Store) {
    let t = tenant(s, "contoso").await;
    let other = tenant(s, "fabrikam").await;
    let key = WrappedDataKey {
        id: KeyId::new(),
        tenant_id: t,
        kek_id: "kek-2026-01".into(),
        wrapped: (0u8..=255).chain(0..60).collect(),
        created_at: now(),
    };
    let key2 = WrappedDataKey {
        id: KeyId::new(),
        wrapped: vec![7; 60],
        ..key.clone()
    };
    must(s.put_data_key(t, &key).await, "put");
    must(s.put_data_key(t, &key2).await, "put 2");
    assert_eq!(must(s.get_data_key(t, key.id).await, "get"), key);
    assert_not_found(s.get_data_key(t, KeyId::new()).await, "missing");

    // Another tenant can neither read nor destroy it.
    assert_not_found(s.get_data_key(other, key.id).await, "other get");
    assert!(
        !must(s.shred_data_key(other, key.id).await, "other shred"),
        "other tenant shreds nothing"
    );
    assert_eq!(must(s.get_data_key(t, key.id).await, "still there"), key);

    assert!(must(s.shred_data_key(t, key.id).await, "shred"));
    assert_not_found(s.get_data_key(t, key.id).await, "shredded");
    assert!(
        !must(s.shred_data_key(t, key.id).await, "shred twice"),
        "second shred destroys nothing"
    );
    assert_eq!(must(s.get_data_key(t, key2.id).await, "sibling"), key2);
}

// ---------------------------------------------------------------------
// local accounts and sessions
// ---------------------------------------------------------------------

/// A stand-in argon2id PHC string (stores check the prefix only).
const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo";

fn account(realm: Realm, email: &str, role: Role) -> LocalAccount {
    LocalAccount {
        id: AccountId::new(),
        tenant_id: realm.tenant(),
        email: normalize_email(email),
        role,
        security_profile_id: None,
        directory_user_id: None,
        password_hash: HASH.into(),
        totp: None,
        totp_last_step: None,
        failed_logins: 0,
        locked_until: None,
        active: true,
        created_at: now(),
        last_login_at: None,
    }
}

fn sealed(tenant: TenantId) -> insights_core::crypto::SealedSecret {
    insights_core::crypto::SealedSecret {
        key: WrappedDataKey {
            id: KeyId::new(),
            tenant_id: tenant,
            kek_id: "local:kek".into(),
            wrapped: vec![9; 60],
            created_at: now(),
        },
        sealed: (0u8..48).collect(),
    }
}

fn session(realm: Realm, account: AccountId, n: u8) -> LoginSession {
    let at = now();
    LoginSession {
        token_hash: hex::encode([n; 32]),
        tenant_id: realm.tenant(),
        account_id: account,
        created_at: at,
        last_seen_at: at,
        expires_at: at + Duration::hours(8),
        revoked_at: None,
    }
}

pub async fn accounts_create_get_list_in_both_realms(s: &Store) {
    let t = tenant(s, "contoso").await;
    for realm in [Realm::Tenant(t), Realm::Platform] {
        let role = match realm {
            Realm::Platform => Role::PlatformOperator,
            Realm::Tenant(_) => Role::TenantAdmin,
        };
        let mut admin = account(realm, "Zed.Admin@Contoso.com", role);
        admin.totp = Some(sealed(
            realm
                .tenant()
                .unwrap_or(insights_core::crypto::PLATFORM_KEY_OWNER),
        ));
        admin.totp_last_step = Some(12);
        admin.last_login_at = Some(now() - Duration::days(1));
        admin.locked_until = Some(now() + Duration::minutes(3));
        admin.failed_logins = 2;
        let mut other = account(realm, "ann@contoso.com", role);
        if let Realm::Tenant(_) = realm {
            other.role = Role::User;
            other.directory_user_id = Some(UserId::new());
            other.security_profile_id = Some(SecurityProfileId::new());
            other.active = false;
        }
        must(s.create_account(realm, &admin).await, "create admin");
        must(s.create_account(realm, &other).await, "create other");
        assert_eq!(must(s.get_account(realm, admin.id).await, "get"), admin);
        // Emails match case-insensitively, ignoring surrounding blanks.
        assert_eq!(
            must(
                s.account_by_email(realm, "  ZED.admin@contoso.COM ").await,
                "by email"
            ),
            admin
        );
        assert_not_found(
            s.account_by_email(realm, "nobody@contoso.com").await,
            "unknown",
        );
        assert_not_found(s.get_account(realm, AccountId::new()).await, "missing id");
        // Ordered by email.
        assert_eq!(
            must(s.list_accounts(realm).await, "list"),
            vec![other.clone(), admin.clone()]
        );
        // An email is unique in its realm, whatever its case.
        let dup = account(realm, "ANN@contoso.com", role);
        assert_conflict(s.create_account(realm, &dup).await, "duplicate email");
        assert_conflict(
            s.create_account(
                realm,
                &LocalAccount {
                    email: "x@y".into(),
                    ..admin.clone()
                },
            )
            .await,
            "duplicate id",
        );
    }

    // Invariants: operators have no tenant, tenant accounts are never
    // operators, emails are normalised, passwords hashed; the realm must
    // match the account.
    let bad = account(Realm::Tenant(t), "op@contoso.com", Role::PlatformOperator);
    assert_invalid(
        s.create_account(Realm::Tenant(t), &bad).await,
        "tenant operator",
    );
    let bad = account(Realm::Platform, "u@contoso.com", Role::User);
    assert_invalid(
        s.create_account(Realm::Platform, &bad).await,
        "platform user",
    );
    let mut bad = account(Realm::Tenant(t), "x@contoso.com", Role::User);
    bad.email = "X@contoso.com".into();
    assert_invalid(
        s.create_account(Realm::Tenant(t), &bad).await,
        "unnormalised email",
    );
    let mut bad = account(Realm::Tenant(t), "y@contoso.com", Role::User);
    bad.password_hash = "hunter2".into();
    assert_invalid(
        s.create_account(Realm::Tenant(t), &bad).await,
        "clear password",
    );
    let good = account(Realm::Tenant(t), "z@contoso.com", Role::User);
    assert_invalid(
        s.create_account(Realm::Platform, &good).await,
        "realm mismatch",
    );
    assert_eq!(
        must(s.list_accounts(Realm::Tenant(t)).await, "unchanged").len(),
        2
    );
}

pub async fn accounts_are_realm_isolated(s: &Store) {
    let t = tenant(s, "contoso").await;
    let other = tenant(s, "fabrikam").await;
    let a = account(Realm::Tenant(t), "ann@contoso.com", Role::ComplianceOfficer);
    let op = account(Realm::Platform, "ann@contoso.com", Role::PlatformOperator);
    must(s.create_account(Realm::Tenant(t), &a).await, "create");
    // The same email may exist in another tenant and among operators.
    let b = account(Realm::Tenant(other), "ann@contoso.com", Role::User);
    must(
        s.create_account(Realm::Tenant(other), &b).await,
        "other tenant",
    );
    must(s.create_account(Realm::Platform, &op).await, "operator");

    assert_not_found(
        s.get_account(Realm::Tenant(other), a.id).await,
        "other tenant by id",
    );
    assert_not_found(s.get_account(Realm::Platform, a.id).await, "platform by id");
    assert_not_found(
        s.get_account(Realm::Tenant(t), op.id).await,
        "operator in tenant",
    );
    assert_eq!(
        must(
            s.account_by_email(Realm::Tenant(other), "ann@contoso.com")
                .await,
            "other"
        )
        .id,
        b.id
    );
    assert_eq!(
        must(s.list_accounts(Realm::Tenant(t)).await, "t"),
        vec![a.clone()]
    );
    assert_eq!(
        must(s.list_accounts(Realm::Platform).await, "ops"),
        vec![op.clone()]
    );
    assert_not_found(
        s.record_login_failure(Realm::Tenant(other), a.id, now(), 5, Duration::minutes(1))
            .await,
        "failure in other tenant",
    );
    assert_not_found(
        s.record_login_success(Realm::Tenant(other), a.id, now(), None)
            .await,
        "success in other tenant",
    );
    // Sessions of an account only in its own realm.
    assert_not_found(
        s.create_session(
            Realm::Tenant(other),
            &session(Realm::Tenant(other), a.id, 1),
        )
        .await,
        "session for another tenant's account",
    );
    must(
        s.create_session(Realm::Tenant(t), &session(Realm::Tenant(t), a.id, 1))
            .await,
        "session",
    );
    let h = hex::encode([1u8; 32]);
    assert_not_found(
        s.get_session(Realm::Tenant(other), &h).await,
        "other tenant session",
    );
    assert_not_found(s.get_session(Realm::Platform, &h).await, "platform session");
    assert_not_found(
        s.revoke_session(Realm::Tenant(other), &h, now()).await,
        "revoke from other tenant",
    );
    assert!(
        must(s.get_session(Realm::Tenant(t), &h).await, "still live")
            .revoked_at
            .is_none()
    );
}

pub async fn account_failures_lock_and_success_resets(s: &Store) {
    let t = tenant(s, "contoso").await;
    for realm in [Realm::Tenant(t), Realm::Platform] {
        let role = if realm == Realm::Platform {
            Role::PlatformOperator
        } else {
            Role::Dpo
        };
        let a = account(realm, "dpo@contoso.com", role);
        must(s.create_account(realm, &a).await, "create");
        let at = now();
        for n in 1..=2u32 {
            let f = must(
                s.record_login_failure(realm, a.id, at, 3, Duration::minutes(15))
                    .await,
                "failure",
            );
            assert_eq!(
                f,
                LoginFailure {
                    failed_logins: n,
                    locked_until: None
                }
            );
        }
        // The third consecutive failure locks and restarts the count.
        let f = must(
            s.record_login_failure(realm, a.id, at, 3, Duration::minutes(15))
                .await,
            "locking failure",
        );
        assert_eq!(f.failed_logins, 0);
        assert_eq!(f.locked_until, Some(at + Duration::minutes(15)));
        let stored = must(s.get_account(realm, a.id).await, "get");
        assert!(stored.is_locked(at + Duration::minutes(14)));
        assert!(!stored.is_locked(at + Duration::minutes(16)));
        // A failure while locked keeps the lock.
        let f = must(
            s.record_login_failure(
                realm,
                a.id,
                at + Duration::minutes(1),
                3,
                Duration::minutes(15),
            )
            .await,
            "failure while locked",
        );
        assert_eq!(f.locked_until, Some(at + Duration::minutes(15)));
        // After the lock ran out, a failure clears the stale lock time.
        let later = at + Duration::minutes(20);
        let f = must(
            s.record_login_failure(realm, a.id, later, 3, Duration::minutes(15))
                .await,
            "failure after lock",
        );
        assert_eq!(
            f,
            LoginFailure {
                failed_logins: 2,
                locked_until: None
            }
        );

        // Concurrent failures are all counted.
        let b = account(realm, "b@contoso.com", role);
        must(s.create_account(realm, &b).await, "create b");
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move {
                    s.record_login_failure(realm, b.id, now(), 100, Duration::minutes(1))
                        .await
                })
            })
            .collect();
        for task in tasks {
            must(must(task.await, "join"), "concurrent failure");
        }
        assert_eq!(must(s.get_account(realm, b.id).await, "b").failed_logins, 8);

        // Success resets failures and lockout and records the time.
        let at2 = now();
        assert!(must(
            s.record_login_success(realm, b.id, at2, None).await,
            "success"
        ));
        let stored = must(s.get_account(realm, b.id).await, "after success");
        assert_eq!(stored.failed_logins, 0);
        assert_eq!(stored.locked_until, None);
        assert_eq!(stored.last_login_at, Some(at2));
        assert_not_found(
            s.record_login_failure(realm, AccountId::new(), now(), 3, Duration::minutes(1))
                .await,
            "missing account",
        );
    }
}

pub async fn account_totp_steps_are_single_use(s: &Store) {
    let t = tenant(s, "contoso").await;
    for realm in [Realm::Tenant(t), Realm::Platform] {
        let role = if realm == Realm::Platform {
            Role::PlatformOperator
        } else {
            Role::TenantAdmin
        };
        let a = account(realm, "admin@contoso.com", role);
        must(s.create_account(realm, &a).await, "create");
        assert!(must(
            s.record_login_success(realm, a.id, now(), Some(100)).await,
            "first"
        ));
        assert_eq!(
            must(s.get_account(realm, a.id).await, "get").totp_last_step,
            Some(100)
        );
        // The same step, or an earlier one, is a replay: nothing changes.
        must(
            s.record_login_failure(realm, a.id, now(), 10, Duration::minutes(1))
                .await,
            "fail",
        );
        assert!(!must(
            s.record_login_success(realm, a.id, now(), Some(100)).await,
            "replay"
        ));
        assert!(!must(
            s.record_login_success(realm, a.id, now(), Some(99)).await,
            "older"
        ));
        let stored = must(s.get_account(realm, a.id).await, "get");
        assert_eq!(stored.failed_logins, 1, "a refused replay resets nothing");
        assert!(must(
            s.record_login_success(realm, a.id, now(), Some(101)).await,
            "next"
        ));
        // A login without a code keeps the last step.
        assert!(must(
            s.record_login_success(realm, a.id, now(), None).await,
            "no code"
        ));
        assert_eq!(
            must(s.get_account(realm, a.id).await, "get").totp_last_step,
            Some(101)
        );
        assert_not_found(
            s.record_login_success(realm, AccountId::new(), now(), Some(5))
                .await,
            "missing",
        );
    }
}

pub async fn sessions_create_touch_revoke(s: &Store) {
    let t = tenant(s, "contoso").await;
    for realm in [Realm::Tenant(t), Realm::Platform] {
        let role = if realm == Realm::Platform {
            Role::PlatformOperator
        } else {
            Role::User
        };
        let a = account(realm, "ann@contoso.com", role);
        must(s.create_account(realm, &a).await, "create");
        let x = session(realm, a.id, 7);
        must(s.create_session(realm, &x).await, "create session");
        assert_eq!(must(s.get_session(realm, &x.token_hash).await, "get"), x);
        assert_conflict(s.create_session(realm, &x).await, "same token twice");
        assert_not_found(
            s.get_session(realm, &hex::encode([8u8; 32])).await,
            "unknown",
        );
        assert_not_found(
            s.create_session(realm, &session(realm, AccountId::new(), 9))
                .await,
            "unknown account",
        );
        assert_invalid(
            s.create_session(
                realm,
                &LoginSession {
                    tenant_id: match realm {
                        Realm::Platform => Some(t),
                        Realm::Tenant(_) => None,
                    },
                    ..session(realm, a.id, 10)
                },
            )
            .await,
            "realm mismatch",
        );

        // Touch moves last_seen forward, never back.
        let later = x.last_seen_at + Duration::minutes(5);
        must(s.touch_session(realm, &x.token_hash, later).await, "touch");
        must(
            s.touch_session(realm, &x.token_hash, x.last_seen_at).await,
            "touch earlier",
        );
        assert_eq!(
            must(s.get_session(realm, &x.token_hash).await, "get").last_seen_at,
            later
        );
        assert_not_found(
            s.touch_session(realm, &hex::encode([8u8; 32]), later).await,
            "touch unknown",
        );

        // Revocation is final and reported once.
        let at = now();
        assert!(must(
            s.revoke_session(realm, &x.token_hash, at).await,
            "revoke"
        ));
        assert!(!must(
            s.revoke_session(realm, &x.token_hash, now()).await,
            "revoke twice"
        ));
        let got = must(s.get_session(realm, &x.token_hash).await, "revoked");
        assert_eq!(got.revoked_at, Some(at));
        assert!(!got.is_live(at, Duration::hours(1)));
        assert_not_found(
            s.revoke_session(realm, &hex::encode([8u8; 32]), now())
                .await,
            "revoke unknown",
        );
    }
}
