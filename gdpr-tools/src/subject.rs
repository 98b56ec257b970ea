//! Finding a data subject (GDPR Art. 15–17): by any mix of phone number,
//! email, UPN, SIP/Tel URI, directory id and name, across every
//! participant role, the directory and the audit trail. Each match says
//! why it matched (which field, in which role, what value).
//!
//! Identifiers are normalised once ([`SubjectIdentifiers::normalize`]:
//! phone numbers to E.164 with `phonenumber`, emails/URIs lower-cased),
//! expanded with the identifiers of the directory users they name, and
//! then compared for *equality* in the store
//! ([`SubjectStore::find_subject_participants`](insights_core::store::SubjectStore::find_subject_participants), one index probe per
//! kind), so a lookup costs the same at a thousand or a million
//! recordings. Fuzzy matching is deliberately absent: a DPO acting on a
//! data-subject request must not sweep up other people.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use insights_core::domain::{
    AuditEvent, AuditQuery, DirectoryUser, Participant, ParticipantId, Realm, Recording,
    RecordingId, SubjectKeys, TenantId, UserId,
};
use insights_core::store::{MetadataStore, StoreError};
use serde::{Deserialize, Serialize};

/// Errors of the data-subject tools.
#[derive(Debug, thiserror::Error)]
pub enum SubjectError {
    /// No identifier was given.
    #[error("give at least one identifier (phone, email, upn, uri, directory_id or name)")]
    Empty,
    /// An identifier is malformed (the message names the field, never the value).
    #[error("invalid {field}: {problem}")]
    Invalid {
        field: &'static str,
        problem: &'static str,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the DPO knows about the subject. Any mix; at least one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SubjectIdentifiers {
    /// A phone number in any usual format; numbers without a country code
    /// are read in the configured default region.
    pub phone: Option<String>,
    pub email: Option<String>,
    /// User principal name (Entra sign-in name).
    pub upn: Option<String>,
    /// A `sip:` or `tel:` URI.
    pub uri: Option<String>,
    /// Entra object id, or our directory user id.
    pub directory_id: Option<String>,
    /// Full name, compared whole and case-insensitively.
    pub name: Option<String>,
}

/// How identifiers are read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindOptions {
    /// ISO 3166-1 alpha-2 region for phone numbers without a country
    /// code (`DE`, `US`); without one such numbers are refused.
    pub default_region: Option<String>,
}

/// Normalised identifiers: what the subject is compared with.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Normalized {
    /// E.164 of the given phone number.
    pub phone_e164: Option<String>,
    /// Every `(field, value)` the DPO gave, normalised (for hashing in
    /// certificates): `phone` is E.164, the rest lower-case.
    pub given: Vec<(String, String)>,
    /// Directory object id or user id as given (lower-case).
    pub directory_id: Option<String>,
    pub keys: SubjectKeys,
}

fn invalid(field: &'static str, problem: &'static str) -> SubjectError {
    SubjectError::Invalid { field, problem }
}

fn clean(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|s| !s.is_empty())
}

/// The stored forms a phone number may have: E.164 (`+4930123456`), the
/// national form with its trunk prefix (`030123456`) and the bare
/// national number (`30123456`); participants' numbers are stored as
/// `insights_core::domain::normalize_phone` left them.
fn phone_forms(p: &phonenumber::PhoneNumber) -> (String, Vec<String>) {
    let e164 = p.format().mode(phonenumber::Mode::E164).to_string();
    let national: String = p
        .format()
        .mode(phonenumber::Mode::National)
        .to_string()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let significant = p.national().value().to_string();
    let mut forms = vec![e164.clone()];
    for f in [national, significant] {
        if !f.is_empty() && !forms.contains(&f) {
            forms.push(f);
        }
    }
    (e164, forms)
}

fn parse_phone(raw: &str, region: Option<&str>) -> Result<phonenumber::PhoneNumber, SubjectError> {
    let raw = raw.trim();
    let raw = raw
        .get(..4)
        .filter(|s| s.eq_ignore_ascii_case("tel:"))
        .map_or(raw, |_| &raw[4..]);
    let raw = raw.split(';').next().unwrap_or(raw);
    let raw = match raw.strip_prefix("00") {
        Some(rest) if !raw.starts_with('+') => format!("+{rest}"),
        _ => raw.to_owned(),
    };
    let country = match region {
        Some(r) => Some(
            r.to_ascii_uppercase()
                .parse::<phonenumber::country::Id>()
                .map_err(|_| invalid("default_region", "not an ISO 3166 region code"))?,
        ),
        None => None,
    };
    if !raw.starts_with('+') && country.is_none() {
        return Err(invalid(
            "phone",
            "no country code and no default region is configured",
        ));
    }
    let parsed =
        phonenumber::parse(country, &raw).map_err(|_| invalid("phone", "not a phone number"))?;
    Ok(parsed)
}

impl SubjectIdentifiers {
    /// Whether no identifier is set.
    pub fn is_empty(&self) -> bool {
        [
            &self.phone,
            &self.email,
            &self.upn,
            &self.uri,
            &self.directory_id,
            &self.name,
        ]
        .iter()
        .all(|v| clean(v).is_none())
    }

    /// Normalises the identifiers into exact keys.
    pub fn normalize(&self, opts: &FindOptions) -> Result<Normalized, SubjectError> {
        if self.is_empty() {
            return Err(SubjectError::Empty);
        }
        let mut n = Normalized::default();
        let add_phone = |n: &mut Normalized, p: &phonenumber::PhoneNumber| {
            let (e164, forms) = phone_forms(p);
            for f in forms {
                push(&mut n.keys.phones, f);
            }
            push(&mut n.keys.uris, format!("tel:{e164}"));
            e164
        };
        if let Some(raw) = clean(&self.phone) {
            let p = parse_phone(&raw, opts.default_region.as_deref())?;
            let e164 = add_phone(&mut n, &p);
            n.given.push(("phone".into(), e164.clone()));
            n.phone_e164 = Some(e164);
        }
        if let Some(email) = clean(&self.email).map(|s| s.to_lowercase()) {
            let email = email.strip_prefix("mailto:").unwrap_or(&email).to_owned();
            if !email.contains('@') || email.contains(' ') {
                return Err(invalid("email", "not an email address"));
            }
            push(&mut n.keys.emails, email.clone());
            push(&mut n.keys.uris, format!("sip:{email}"));
            n.given.push(("email".into(), email));
        }
        if let Some(upn) = clean(&self.upn).map(|s| s.to_lowercase()) {
            if !upn.contains('@') || upn.contains(' ') {
                return Err(invalid("upn", "not a user principal name"));
            }
            push(&mut n.keys.emails, upn.clone());
            push(&mut n.keys.uris, format!("sip:{upn}"));
            n.given.push(("upn".into(), upn));
        }
        if let Some(uri) = clean(&self.uri).map(|s| s.to_lowercase()) {
            if let Some(rest) = uri.strip_prefix("sip:") {
                let addr = rest.split(';').next().unwrap_or(rest);
                if addr.is_empty() {
                    return Err(invalid("uri", "empty SIP address"));
                }
                push(&mut n.keys.uris, uri.clone());
                push(&mut n.keys.uris, format!("sip:{addr}"));
                push(&mut n.keys.emails, addr.to_owned());
            } else if uri.starts_with("tel:") {
                let p = parse_phone(&uri, opts.default_region.as_deref())?;
                push(&mut n.keys.uris, uri.clone());
                add_phone(&mut n, &p);
            } else {
                return Err(invalid("uri", "must start with sip: or tel:"));
            }
            n.given.push(("uri".into(), uri));
        }
        if let Some(id) = clean(&self.directory_id).map(|s| s.to_lowercase()) {
            if let Ok(u) = id.parse::<uuid::Uuid>() {
                push_id(&mut n.keys.directory_user_ids, UserId::from(u));
            }
            n.given.push(("directory_id".into(), id.clone()));
            n.directory_id = Some(id);
        }
        if let Some(name) = clean(&self.name).map(|s| s.to_lowercase()) {
            push(&mut n.keys.names, name.clone());
            n.given.push(("name".into(), name));
        }
        Ok(n)
    }
}

fn push(v: &mut Vec<String>, s: String) {
    if !v.contains(&s) {
        v.push(s);
    }
}

fn push_id(v: &mut Vec<UserId>, id: UserId) {
    if !v.contains(&id) {
        v.push(id);
    }
}

/// Why something matched: the field, the participant's role for
/// recordings, and the stored value that matched.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Reason {
    pub field: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    pub matched: String,
}

/// One thing found about the subject (the API's `Match`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Match {
    /// `recording`, `directory-user` or `audit-event`.
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    pub reasons: Vec<Reason>,
}

/// A recording the subject took part in, with their participant rows.
#[derive(Clone, Debug, PartialEq)]
pub struct SubjectRecording {
    pub recording: Recording,
    /// The participants that are the subject.
    pub participants: Vec<ParticipantId>,
    pub reasons: Vec<Reason>,
}

impl SubjectRecording {
    /// Whether the subject is the recorded user, or every identified
    /// party of the recording is the subject: then the recording is
    /// theirs as a whole.
    pub fn subject_owns_recording(&self) -> bool {
        let ours = |p: &Participant| self.participants.contains(&p.id);
        self.recording
            .participants
            .iter()
            .any(|p| ours(p) && p.recorded_user)
            || self.recording.participants.iter().all(|p| {
                ours(p)
                    || (p.display_name.is_none()
                        && p.phone_number.is_none()
                        && p.uri.is_none()
                        && p.email.is_none()
                        && p.directory_user_id.is_none())
            })
    }
}

/// Everything found about a subject.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Found {
    pub normalized: Normalized,
    pub recordings: Vec<SubjectRecording>,
    pub directory_users: Vec<(DirectoryUser, Vec<Reason>)>,
    pub audit_events: Vec<(AuditEvent, Vec<Reason>)>,
}

impl Found {
    /// The matches in API form: recordings (by start), directory users,
    /// audit events (by seq).
    pub fn matches(&self) -> Vec<Match> {
        let mut out = Vec::new();
        for r in &self.recordings {
            out.push(Match {
                kind: "recording".into(),
                id: r.recording.id.to_string(),
                started_at: Some(r.recording.started_at),
                reasons: r.reasons.clone(),
            });
        }
        for (u, reasons) in &self.directory_users {
            out.push(Match {
                kind: "directory-user".into(),
                id: u.id.to_string(),
                started_at: None,
                reasons: reasons.clone(),
            });
        }
        for (e, reasons) in &self.audit_events {
            out.push(Match {
                kind: "audit-event".into(),
                id: e.id.to_string(),
                started_at: Some(e.at),
                reasons: reasons.clone(),
            });
        }
        out
    }

    /// Strings that identify the subject in free text (transcripts):
    /// emails, URIs' addresses, E.164 numbers, names.
    pub fn needles(&self) -> Vec<String> {
        let k = &self.normalized.keys;
        let mut out: Vec<String> = Vec::new();
        for s in k.emails.iter().chain(&k.names) {
            push(&mut out, s.clone());
        }
        for p in &k.phones {
            if p.starts_with('+') {
                push(&mut out, p.clone());
            }
        }
        for (u, _) in &self.directory_users {
            let full = match (&u.first_name, &u.last_name) {
                (Some(f), Some(l)) => Some(format!("{f} {l}")),
                _ => None,
            };
            for n in [u.display_name.clone(), full, u.email.clone(), u.upn.clone()]
                .into_iter()
                .flatten()
            {
                push(&mut out, n.to_lowercase());
            }
        }
        out
    }
}

fn lc(s: &Option<String>) -> Option<String> {
    s.as_deref().map(str::to_lowercase)
}

/// Which of a directory user's fields match the normalised identifiers.
fn directory_reasons(u: &DirectoryUser, n: &Normalized) -> Vec<Reason> {
    let k = &n.keys;
    let mut r = Vec::new();
    let mut hit = |field: &str, value: &Option<String>, set: &[String]| {
        if let Some(v) = lc(value)
            && set.contains(&v)
        {
            r.push(Reason {
                field: field.into(),
                role: None,
                matched: value.clone().unwrap_or_default(),
            });
        }
    };
    hit("email", &u.email, &k.emails);
    hit("upn", &u.upn, &k.emails);
    hit("sip_uri", &u.sip_uri, &k.uris);
    hit("tel_uri", &u.tel_uri, &k.uris);
    hit("display_name", &u.display_name, &k.names);
    let full = match (&u.first_name, &u.last_name) {
        (Some(f), Some(l)) => Some(format!("{f} {l}")),
        _ => None,
    };
    if full.as_ref() != u.display_name.as_ref() {
        hit("name", &full, &k.names);
    }
    for p in &u.phone_numbers {
        if k.phones.contains(p) {
            r.push(Reason {
                field: "phone_numbers".into(),
                role: None,
                matched: p.clone(),
            });
        }
    }
    if let Some(id) = &n.directory_id {
        if u.directory_object_id.as_deref().map(str::to_lowercase) == Some(id.clone()) {
            r.push(Reason {
                field: "directory_object_id".into(),
                role: None,
                matched: id.clone(),
            });
        }
        if u.id.to_string() == *id {
            r.push(Reason {
                field: "id".into(),
                role: None,
                matched: id.clone(),
            });
        }
    }
    r
}

/// Which of a participant's fields match the keys.
pub fn participant_reasons(p: &Participant, k: &SubjectKeys) -> Vec<Reason> {
    let role = Some(p.role.as_str().to_owned());
    let mut r = Vec::new();
    let mut hit = |field: &str, value: &Option<String>, matches: bool| {
        if matches {
            r.push(Reason {
                field: field.into(),
                role: role.clone(),
                matched: value.clone().unwrap_or_default(),
            });
        }
    };
    hit(
        "phone_number",
        &p.phone_number,
        p.phone_number
            .as_ref()
            .is_some_and(|v| k.phones.contains(v)),
    );
    hit(
        "email",
        &p.email,
        lc(&p.email).is_some_and(|v| k.emails.contains(&v)),
    );
    hit(
        "uri",
        &p.uri,
        lc(&p.uri).is_some_and(|v| k.uris.contains(&v)),
    );
    hit(
        "display_name",
        &p.display_name,
        lc(&p.display_name).is_some_and(|v| k.names.contains(&v)),
    );
    if let Some(u) = p.directory_user_id
        && k.directory_user_ids.contains(&u)
    {
        r.push(Reason {
            field: "directory_user_id".into(),
            role: role.clone(),
            matched: u.to_string(),
        });
    }
    r
}

/// Recordings read per store call by [`find`].
const READ_BATCH: usize = 500;

/// Finds everything about the subject in one tenant. Reads only: the
/// caller audits (the find itself reveals no content).
pub async fn find(
    store: &dyn MetadataStore,
    tenant: TenantId,
    ids: &SubjectIdentifiers,
    opts: &FindOptions,
) -> Result<Found, SubjectError> {
    let mut n = ids.normalize(opts)?;

    // Directory users named by a strong identifier (not a name alone)
    // lend theirs to the search: a Teams party often carries only the
    // SIP address or the directory link.
    let mut users = Vec::new();
    for u in store.list_directory_users(tenant).await? {
        let reasons = directory_reasons(&u, &n);
        if !reasons.is_empty() {
            users.push((u, reasons));
        }
    }
    for (u, reasons) in &users {
        push_id(&mut n.keys.directory_user_ids, u.id);
        if reasons.iter().all(|r| r.field.ends_with("name")) {
            continue;
        }
        for e in [&u.email, &u.upn].into_iter().flatten() {
            push(&mut n.keys.emails, e.to_lowercase());
        }
        for uri in [&u.sip_uri, &u.tel_uri].into_iter().flatten() {
            push(&mut n.keys.uris, uri.to_lowercase());
        }
        for p in &u.phone_numbers {
            push(&mut n.keys.phones, p.clone());
        }
    }

    let hits = store.find_subject_participants(tenant, &n.keys, 0).await?;
    let mut order: Vec<RecordingId> = Vec::new();
    let mut by_rec: BTreeMap<RecordingId, BTreeSet<ParticipantId>> = BTreeMap::new();
    for h in hits {
        if !by_rec.contains_key(&h.recording_id) {
            order.push(h.recording_id);
        }
        by_rec
            .entry(h.recording_id)
            .or_default()
            .insert(h.participant_id);
    }
    // Read in batches: an employee is in hundreds of recordings.
    let mut all = Vec::new();
    for chunk in order.chunks(READ_BATCH) {
        all.extend(store.get_recordings(tenant, chunk).await?);
    }
    let mut recordings = Vec::new();
    for rec in all {
        let mut participants = Vec::new();
        let mut reasons = Vec::new();
        for p in &rec.participants {
            let r = participant_reasons(p, &n.keys);
            if !r.is_empty() {
                participants.push(p.id);
                reasons.extend(r);
            }
        }
        if !participants.is_empty() {
            recordings.push(SubjectRecording {
                recording: rec,
                participants,
                reasons,
            });
        }
    }

    // Audit events the subject caused: those of their local accounts.
    let mut audit_events = Vec::new();
    let user_ids: Vec<UserId> = users.iter().map(|(u, _)| u.id).collect();
    for acct in store.list_accounts(Realm::Tenant(tenant)).await? {
        let by_user = acct
            .directory_user_id
            .is_some_and(|u| user_ids.contains(&u));
        let by_email = n.keys.emails.contains(&acct.email.to_lowercase());
        if !(by_user || by_email) {
            continue;
        }
        let actor = acct.id.to_string();
        let q = AuditQuery {
            actor: Some(actor.clone()),
            ..AuditQuery::default()
        };
        for ev in store.list_audit(tenant, &q).await? {
            audit_events.push((
                ev,
                vec![Reason {
                    field: "actor".into(),
                    role: None,
                    matched: actor.clone(),
                }],
            ));
        }
    }
    audit_events.sort_by_key(|(e, _)| e.seq);

    Ok(Found {
        normalized: n,
        recordings,
        directory_users: users,
        audit_events,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn phones_normalise_to_e164_with_a_default_region() {
        let ids = SubjectIdentifiers {
            phone: Some("030 1234567".into()),
            ..Default::default()
        };
        let opts = FindOptions {
            default_region: Some("DE".into()),
        };
        let n = ids.normalize(&opts).unwrap();
        assert_eq!(n.phone_e164.as_deref(), Some("+49301234567"));
        assert!(n.keys.phones.contains(&"0301234567".to_string()));
        assert!(n.keys.uris.contains(&"tel:+49301234567".to_string()));
        assert!(matches!(
            ids.normalize(&FindOptions::default()),
            Err(SubjectError::Invalid { field: "phone", .. })
        ));
        let intl = SubjectIdentifiers {
            phone: Some("+1 (425) 555-0100".into()),
            ..Default::default()
        };
        assert_eq!(
            intl.normalize(&FindOptions::default())
                .unwrap()
                .phone_e164
                .as_deref(),
            Some("+14255550100")
        );
    }

    #[test]
    fn bad_or_missing_identifiers_are_refused() {
        assert!(matches!(
            SubjectIdentifiers::default().normalize(&FindOptions::default()),
            Err(SubjectError::Empty)
        ));
        let bad = SubjectIdentifiers {
            uri: Some("http://x".into()),
            ..Default::default()
        };
        assert!(bad.normalize(&FindOptions::default()).is_err());
        let email = SubjectIdentifiers {
            email: Some(" Alice@Example.COM ".into()),
            ..Default::default()
        };
        let n = email.normalize(&FindOptions::default()).unwrap();
        assert_eq!(n.keys.emails, vec!["alice@example.com".to_string()]);
        assert!(n.keys.uris.contains(&"sip:alice@example.com".to_string()));
    }
}
