//! What every area of the suite shares: the imports (re-exported, so an
//! area file needs only `use super::fixtures::*;`), assertion helpers and
//! builders of test data.

pub(super) use std::collections::BTreeSet;
pub(super) use std::fmt::Debug;
pub(super) use std::sync::Arc;

pub(super) use chrono::{DateTime, Duration, Utc};
pub(super) use insights_core::crypto::{WrappedDataKey, WrappedKek};
pub(super) use insights_core::domain::*;
pub(super) use insights_core::store::{StoreError, StoreResult};
pub(super) use uuid::Uuid;

pub(super) use super::Store;

// ---------------------------------------------------------------------
// assertion helpers
// ---------------------------------------------------------------------

#[track_caller]
pub(super) fn must<T, E: Debug>(r: Result<T, E>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what}: unexpected error {e:?}"),
    }
}

#[track_caller]
pub(super) fn assert_not_found<T: Debug>(r: StoreResult<T>, what: &str) {
    match r {
        Err(StoreError::NotFound) => {}
        other => panic!("{what}: expected NotFound, got {other:?}"),
    }
}

#[track_caller]
pub(super) fn assert_conflict<T: Debug>(r: StoreResult<T>, what: &str) {
    match r {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("{what}: expected Conflict, got {other:?}"),
    }
}

#[track_caller]
pub(super) fn assert_invalid<T: Debug>(r: StoreResult<T>, what: &str) {
    match r {
        Err(StoreError::Invalid(_)) => {}
        other => panic!("{what}: expected Invalid, got {other:?}"),
    }
}

#[track_caller]
pub(super) fn assert_refused<T: Debug>(r: StoreResult<T>, what: &str) {
    match r {
        Err(StoreError::Refused(_)) => {}
        other => panic!("{what}: expected Refused, got {other:?}"),
    }
}

/// `NotFound` or an empty list: how listing the children of a recording
/// that is missing (or belongs to another tenant) may answer.
#[track_caller]
pub(super) fn assert_not_found_or_empty<T: Debug>(r: StoreResult<Vec<T>>, what: &str) {
    match r {
        Err(StoreError::NotFound) => {}
        Ok(v) if v.is_empty() => {}
        other => panic!("{what}: expected NotFound or nothing, got {other:?}"),
    }
}

// ---------------------------------------------------------------------
// builders
// ---------------------------------------------------------------------

pub(super) async fn tenant(s: &Store, name: &str) -> TenantId {
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

pub(super) fn party(role: ParticipantRole) -> Participant {
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

pub(super) fn external(role: ParticipantRole, name: &str, phone: &str) -> Participant {
    Participant {
        display_name: Some(name.to_owned()),
        phone_number: Some(phone.to_owned()),
        uri: Some(format!("tel:{phone}")),
        ..party(role)
    }
}

/// An internal (directory) participant whose calls are recorded.
pub(super) fn internal(
    role: ParticipantRole,
    user: UserId,
    first: &str,
    last: &str,
) -> Participant {
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

pub(super) fn stream(track: i32, participant: Option<ParticipantId>) -> MediaStream {
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

pub(super) fn media(tenant: TenantId, rec: RecordingId) -> MediaObject {
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
pub(super) fn full_recording(tenant: TenantId, started: DateTime<Utc>) -> Recording {
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

pub(super) fn segment(rec: RecordingId, start_ms: i64, text: &str) -> TranscriptSegment {
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

pub(super) fn insight(
    rec: RecordingId,
    kind: InsightKind,
    text: &str,
    at: DateTime<Utc>,
) -> Insight {
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

pub(super) fn directory_user(tenant: TenantId, first: &str, last: &str) -> DirectoryUser {
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

pub(super) fn audit_event(
    actor: &str,
    action: AuditAction,
    rec: Option<RecordingId>,
) -> NewAuditEvent {
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
