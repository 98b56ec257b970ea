//! Synthetic recordings for benchmarks: deterministic, seeded, and
//! random-access (recording `i` depends only on the seed and `i`, so any
//! range can be regenerated, in any order, and the search benchmark can
//! build its queries from what it knows is there).
//!
//! The shape follows the seed's metadata: calls (85 %) with caller and
//! callee, sometimes an answering or redirecting party; meetings with an
//! organiser and attendees. Internal parties come from a directory of
//! `DIRECTORY_SIZE` users (name, email, SIP URI, recorded under policy);
//! external ones are PSTN numbers. Half the recordings have a transcript
//! of 3-6 segments drawn from a small vocabulary.
//!
//! [`sqlite`] and [`postgres`] bulk-load it with plain SQL (batched
//! transactions; COPY on PostgreSQL): the store's one-transaction-per-
//! recording API is far too slow for a million rows. The rows they write
//! are exactly what the stores write (checked by the search benchmark,
//! which compares the store's results with hand-written SQL).

use chrono::{DateTime, Duration, TimeZone, Utc};
use insights_core::domain::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Version of the generated data; bump it when the shape changes so that
/// cached databases are rebuilt.
pub const VERSION: u32 = 1;
/// Directory users that parties are drawn from.
pub const DIRECTORY_SIZE: u64 = 5_000;
/// First day of the generated recordings; they span `DAYS` days.
pub const DAYS: i64 = 365;

pub const FIRST_NAMES: &[&str] = &[
    "Aaron",
    "Abigail",
    "Adam",
    "Adele",
    "Aiden",
    "Alice",
    "Amara",
    "Amelia",
    "Andre",
    "Anna",
    "Arjun",
    "Astrid",
    "Ben",
    "Bianca",
    "Bruno",
    "Carla",
    "Carlos",
    "Chen",
    "Chloé",
    "Clara",
    "Daniel",
    "Dana",
    "David",
    "Dmitri",
    "Elena",
    "Elif",
    "Emma",
    "Erik",
    "Fatima",
    "Felix",
    "Fiona",
    "François",
    "Gabriel",
    "Grace",
    "Hana",
    "Hannah",
    "Hugo",
    "Ines",
    "Isaac",
    "Ivan",
    "Jack",
    "Jana",
    "Javier",
    "Jin",
    "Jonas",
    "Julia",
    "Kai",
    "Karim",
    "Kate",
    "Leila",
    "Leon",
    "Lina",
    "Lucas",
    "Lucía",
    "Maja",
    "Marco",
    "Maria",
    "Mateo",
    "Mei",
    "Mia",
    "Mohammed",
    "Nadia",
    "Noah",
    "Nora",
    "Olga",
    "Oliver",
    "Omar",
    "Paul",
    "Priya",
    "Rafael",
    "Rania",
    "Ravi",
    "Rosa",
    "Samuel",
    "Sara",
    "Sebastian",
    "Sofia",
    "Søren",
    "Tariq",
    "Teresa",
    "Thomas",
    "Uma",
    "Victor",
    "Wei",
    "Yara",
    "Yusuf",
    "Zoe",
    "Zoltan",
];

pub const LAST_NAMES: &[&str] = &[
    "Abbott",
    "Adeyemi",
    "Alvarez",
    "Andersen",
    "Bauer",
    "Becker",
    "Bianchi",
    "Brown",
    "Castro",
    "Chen",
    "Costa",
    "Dubois",
    "Eriksson",
    "Fischer",
    "Garcia",
    "González",
    "Hansen",
    "Hoffmann",
    "Horvath",
    "Ivanova",
    "Jansen",
    "Johnson",
    "Kaya",
    "Keller",
    "Kim",
    "Kowalski",
    "Larsen",
    "Lee",
    "Lopez",
    "Martin",
    "Meyer",
    "Moreau",
    "Müller",
    "Nakamura",
    "Nguyen",
    "Novak",
    "O'Brien",
    "Okafor",
    "Olsen",
    "Patel",
    "Petrov",
    "Popescu",
    "Quinn",
    "Rossi",
    "Santos",
    "Schmidt",
    "Schneider",
    "Silva",
    "Singh",
    "Smith",
    "Sørensen",
    "Suzuki",
    "Tanaka",
    "Taylor",
    "Thompson",
    "Vasquez",
    "Wagner",
    "Walsh",
    "Weber",
    "Williams",
    "Wójcik",
    "Yamamoto",
    "Young",
    "Zhang",
    "Zimmermann",
];

/// Spoken words; the first ones are drawn most often.
pub const VOCABULARY: &[&str] = &[
    "the",
    "and",
    "we",
    "you",
    "to",
    "is",
    "that",
    "it",
    "for",
    "on",
    "this",
    "with",
    "can",
    "have",
    "will",
    "so",
    "yes",
    "okay",
    "please",
    "thanks",
    "call",
    "account",
    "order",
    "payment",
    "invoice",
    "number",
    "customer",
    "team",
    "project",
    "meeting",
    "week",
    "today",
    "tomorrow",
    "contract",
    "price",
    "delivery",
    "support",
    "issue",
    "ticket",
    "update",
    "report",
    "budget",
    "quarter",
    "review",
    "approval",
    "schedule",
    "policy",
    "claim",
    "refund",
    "shipment",
    "warehouse",
    "credit",
    "transfer",
    "balance",
    "statement",
    "address",
    "password",
    "access",
    "license",
    "renewal",
    "discount",
    "quote",
    "proposal",
    "deadline",
    "invoice",
    "escalation",
    "manager",
    "compliance",
    "audit",
    "risk",
    "portfolio",
    "trade",
    "settlement",
    "margin",
    "exposure",
    "forecast",
    "revenue",
    "pipeline",
    "customer",
    "feedback",
    "training",
    "onboarding",
    "migration",
    "outage",
    "backup",
    "security",
    "incident",
    "vendor",
    "procurement",
    "legal",
    "agreement",
    "signature",
    "insurance",
    "premium",
    "coverage",
    "mortgage",
    "interest",
    "rate",
    "loan",
    "application",
];

/// A directory user: `(display name, email, SIP URI)`.
pub fn directory_user(u: u64) -> (String, String, String) {
    let first = FIRST_NAMES[(u % FIRST_NAMES.len() as u64) as usize];
    let last = LAST_NAMES[((u / FIRST_NAMES.len() as u64) % LAST_NAMES.len() as u64) as usize];
    let local = format!(
        "{}.{}{}",
        ascii_lower(first),
        ascii_lower(last),
        u / (FIRST_NAMES.len() * LAST_NAMES.len()) as u64
    );
    (
        format!("{first} {last}"),
        format!("{local}@contoso.com"),
        format!("sip:{local}@contoso.com"),
    )
}

fn ascii_lower(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// The deterministic directory user id of user `u`.
pub fn directory_user_id(seed: u64, u: u64) -> UserId {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed_0000_0000 ^ u);
    UserId(uuid::Builder::from_random_bytes(rng.random()).into_uuid())
}

/// One generated recording and its transcript.
#[derive(Clone, Debug)]
pub struct Synthetic {
    pub recording: Recording,
    pub segments: Vec<TranscriptSegment>,
}

/// The generator: recordings `0..n` of one tenant.
#[derive(Clone, Debug)]
pub struct Generator {
    pub tenant: TenantId,
    pub seed: u64,
    pub n: u64,
}

/// The first start time of generated recordings.
pub fn epoch() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

impl Generator {
    pub fn new(tenant: TenantId, seed: u64, n: u64) -> Self {
        Self { tenant, seed, n }
    }

    fn rng(&self, i: u64, salt: u64) -> StdRng {
        StdRng::seed_from_u64(
            self.seed
                .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                .wrapping_add(i.wrapping_mul(0xbf58_476d_1ce4_e5b9))
                ^ salt,
        )
    }

    fn uuid_v7(rng: &mut StdRng, at: DateTime<Utc>) -> uuid::Uuid {
        let ms = u64::try_from(at.timestamp_millis()).unwrap_or_default();
        let bytes: [u8; 10] = rng.random();
        uuid::Builder::from_unix_timestamp_millis(ms, &bytes).into_uuid()
    }

    /// Recording `i` (of `0..n`), spread evenly over [`DAYS`] days.
    pub fn recording(&self, i: u64) -> Synthetic {
        let mut rng = self.rng(i, 1);
        let span_ms = DAYS * 86_400_000;
        let offset = (i as i128 * span_ms as i128 / self.n.max(1) as i128) as i64;
        let started_at =
            truncate_micros(epoch() + Duration::milliseconds(offset + rng.random_range(0..60_000)));
        let meeting = rng.random_bool(0.15);
        let direction = match rng.random_range(0..100) {
            0..40 => Direction::Inbound,
            40..75 => Direction::Outbound,
            75..95 => Direction::Internal,
            _ => Direction::Unknown,
        };
        // 5 s .. 2 h, log-uniform.
        let duration_ms = (rng.random_range(8.5f64..15.8).exp()) as i64;
        let ended_at = started_at + Duration::milliseconds(duration_ms);
        let id = RecordingId(Self::uuid_v7(&mut rng, started_at));
        let mut r = Recording {
            id,
            tenant_id: self.tenant,
            kind: if meeting {
                RecordingKind::Meeting
            } else {
                RecordingKind::Call
            },
            direction,
            started_at,
            ended_at: Some(ended_at),
            duration_ms: Some(duration_ms),
            external_call_id: Some(format!("{:032x}", rng.random::<u128>())),
            call_chain_id: None,
            status: RecordingStatus::Stored,
            result_code: Some("0".into()),
            retention_class: "default".into(),
            legal_hold: rng.random_bool(0.01),
            has_transcript: false,
            media: None,
            participants: Vec::new(),
            streams: Vec::new(),
            attributes: Default::default(),
            created_at: ended_at,
        };
        let internal = |rng: &mut StdRng, role: ParticipantRole, recorded: bool| {
            let u = rng.random_range(0..DIRECTORY_SIZE);
            let (name, email, sip) = directory_user(u);
            Participant {
                id: ParticipantId(Self::uuid_v7(rng, started_at)),
                role,
                display_name: Some(name),
                phone_number: None,
                uri: Some(sip),
                email: Some(email),
                directory_user_id: Some(directory_user_id(self.seed, u)),
                recorded_user: recorded,
                joined_ms: Some(0),
                left_ms: Some(duration_ms),
            }
        };
        let external = |rng: &mut StdRng, role: ParticipantRole| {
            let number = match rng.random_range(0..3) {
                0 => format!("+1425555{:04}", rng.random_range(0..10_000)),
                1 => format!("+44207946{:04}", rng.random_range(0..10_000)),
                _ => format!("+4930{:07}", rng.random_range(0..10_000_000)),
            };
            let named = rng.random_bool(0.6);
            let name = named.then(|| {
                format!(
                    "{} {}",
                    FIRST_NAMES[rng.random_range(0..FIRST_NAMES.len())],
                    LAST_NAMES[rng.random_range(0..LAST_NAMES.len())]
                )
            });
            Participant {
                id: ParticipantId(Self::uuid_v7(rng, started_at)),
                role,
                display_name: name,
                uri: Some(format!("tel:{number}")),
                phone_number: Some(number),
                email: None,
                directory_user_id: None,
                recorded_user: false,
                joined_ms: Some(0),
                left_ms: Some(duration_ms),
            }
        };
        if meeting {
            r.participants
                .push(internal(&mut rng, ParticipantRole::Organizer, true));
            for _ in 0..rng.random_range(2..=6) {
                let p = if rng.random_bool(0.8) {
                    internal(&mut rng, ParticipantRole::Attendee, false)
                } else {
                    external(&mut rng, ParticipantRole::Attendee)
                };
                r.participants.push(p);
            }
        } else {
            let recorded = internal(&mut rng, ParticipantRole::Callee, true);
            let other = match direction {
                Direction::Internal => internal(&mut rng, ParticipantRole::Caller, false),
                _ => external(&mut rng, ParticipantRole::Caller),
            };
            let (mut caller, mut callee) = (other, recorded);
            if direction == Direction::Outbound {
                std::mem::swap(&mut caller, &mut callee);
                caller.role = ParticipantRole::Caller;
                callee.role = ParticipantRole::Callee;
            }
            r.participants.push(caller);
            r.participants.push(callee);
            if rng.random_bool(0.05) {
                r.participants
                    .push(internal(&mut rng, ParticipantRole::RedirectedTo, false));
            }
        }
        let mut segments = Vec::new();
        if rng.random_bool(0.5) {
            let mut at_ms = 0i64;
            for _ in 0..rng.random_range(3..=6) {
                let words = rng.random_range(8..=20);
                let text: Vec<&str> = (0..words)
                    .map(|_| {
                        // Skewed towards the front of the vocabulary.
                        let x: f64 = rng.random();
                        VOCABULARY[((x * x) * VOCABULARY.len() as f64) as usize]
                    })
                    .collect();
                let len = 300 * words as i64;
                let speaker = rng.random_range(0..r.participants.len());
                segments.push(TranscriptSegment {
                    id: SegmentId(Self::uuid_v7(&mut rng, started_at)),
                    recording_id: id,
                    participant_id: Some(r.participants[speaker].id),
                    start_ms: at_ms,
                    end_ms: at_ms + len,
                    text: text.join(" "),
                    confidence: 0.9,
                    language: Some("en".into()),
                });
                at_ms += len + 500;
            }
            r.has_transcript = true;
        }
        Synthetic {
            recording: r,
            segments,
        }
    }
}

/// Digits searched by number, as the stores derive them: the normalised
/// number's and a `tel:` URI's digits, space separated, deduplicated.
pub fn phone_digits(p: &Participant) -> String {
    let tel = p
        .uri
        .as_deref()
        .and_then(|u| u.strip_prefix("tel:"))
        .map(str::to_owned);
    let mut parts: Vec<String> = Vec::new();
    for raw in [p.phone_number.clone(), tel].into_iter().flatten() {
        if let Some(n) = normalize_phone(&raw) {
            let d = n.trim_start_matches('+').to_owned();
            if !parts.contains(&d) {
                parts.push(d);
            }
        }
    }
    parts.join(" ")
}

/// Bulk loading into a SQLite store's database file.
pub mod sqlite {
    use sqlx::SqliteConnection;

    use super::*;

    /// Inserts recordings `range` of `g` in one transaction (the caller
    /// batches), with the same rows and derived columns the SQLite store
    /// writes; the FTS triggers index them.
    pub async fn load(
        conn: &mut SqliteConnection,
        g: &Generator,
        range: std::ops::Range<u64>,
    ) -> Result<(), sqlx::Error> {
        let t = g.tenant.0;
        let mut tx = sqlx::Connection::begin(conn).await?;
        for i in range {
            let s = g.recording(i);
            let r = &s.recording;
            sqlx::query(
                "INSERT INTO recordings (tenant_id, id, kind, direction, started_at, ended_at, \
                 duration_ms, external_call_id, call_chain_id, status, result_code, \
                 retention_class, legal_hold, has_transcript, created_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(t)
            .bind(r.id.0)
            .bind(r.kind.as_str())
            .bind(r.direction.as_str())
            .bind(r.started_at.timestamp_micros())
            .bind(r.ended_at.map(|e| e.timestamp_micros()))
            .bind(r.duration_ms)
            .bind(&r.external_call_id)
            .bind(&r.call_chain_id)
            .bind(r.status.as_str())
            .bind(&r.result_code)
            .bind(&r.retention_class)
            .bind(r.legal_hold)
            .bind(r.has_transcript)
            .bind(r.created_at.timestamp_micros())
            .execute(&mut *tx)
            .await?;
            for (ord, p) in r.participants.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO participants (tenant_id, recording_id, id, ord, role, \
                     display_name, phone_number, uri, email, directory_user_id, recorded_user, \
                     joined_ms, left_ms, phone_digits) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(t)
                .bind(r.id.0)
                .bind(p.id.0)
                .bind(ord as i64)
                .bind(p.role.as_str())
                .bind(&p.display_name)
                .bind(&p.phone_number)
                .bind(&p.uri)
                .bind(&p.email)
                .bind(p.directory_user_id.map(|u| u.0))
                .bind(p.recorded_user)
                .bind(p.joined_ms)
                .bind(p.left_ms)
                .bind(phone_digits(p))
                .execute(&mut *tx)
                .await?;
            }
            for seg in &s.segments {
                sqlx::query(
                    "INSERT INTO transcript_segments (tenant_id, recording_id, id, \
                     participant_id, start_ms, end_ms, text, confidence, language) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(t)
                .bind(r.id.0)
                .bind(seg.id.0)
                .bind(seg.participant_id.map(|p| p.0))
                .bind(seg.start_ms)
                .bind(seg.end_ms)
                .bind(&seg.text)
                .bind(f64::from(seg.confidence))
                .bind(&seg.language)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await
    }
}

/// Bulk loading into a PostgreSQL store's database with COPY.
pub mod postgres {
    use sqlx::PgConnection;

    use super::*;

    /// COPY text-format escaping.
    fn esc(out: &mut String, v: Option<&str>) {
        match v {
            None => out.push_str("\\N"),
            Some(s) => {
                for c in s.chars() {
                    match c {
                        '\\' => out.push_str("\\\\"),
                        '\t' => out.push_str("\\t"),
                        '\n' => out.push_str("\\n"),
                        '\r' => out.push_str("\\r"),
                        c => out.push(c),
                    }
                }
            }
        }
    }

    fn field(out: &mut String, v: Option<&str>, last: bool) {
        esc(out, v);
        out.push(if last { '\n' } else { '\t' });
    }

    /// Loads recordings `range` of `g` with three COPY statements, as
    /// the connecting user (a superuser or the tables' owner: row-level
    /// security does not apply to COPY FROM by them). Generated columns
    /// (`search`, `phone_digits`) are computed by PostgreSQL as usual.
    pub async fn load(
        conn: &mut PgConnection,
        g: &Generator,
        range: std::ops::Range<u64>,
    ) -> Result<(), sqlx::Error> {
        let t = g.tenant.0.to_string();
        let (mut recs, mut parts, mut segs) = (String::new(), String::new(), String::new());
        for i in range {
            let s = g.recording(i);
            let r = &s.recording;
            let id = r.id.0.to_string();
            let ts = |d: DateTime<Utc>| d.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
            for (v, last) in [
                (Some(t.clone()), false),
                (Some(id.clone()), false),
                (Some(r.kind.as_str().to_owned()), false),
                (Some(r.direction.as_str().to_owned()), false),
                (Some(ts(r.started_at)), false),
                (r.ended_at.map(ts), false),
                (r.duration_ms.map(|d| d.to_string()), false),
                (r.external_call_id.clone(), false),
                (r.call_chain_id.clone(), false),
                (Some(r.status.as_str().to_owned()), false),
                (r.result_code.clone(), false),
                (Some(r.retention_class.clone()), false),
                (Some(r.legal_hold.to_string()), false),
                (Some(r.has_transcript.to_string()), false),
                (Some(ts(r.created_at)), true),
            ] {
                field(&mut recs, v.as_deref(), last);
            }
            for (pos, p) in r.participants.iter().enumerate() {
                for (v, last) in [
                    (Some(t.clone()), false),
                    (Some(id.clone()), false),
                    (Some(p.id.0.to_string()), false),
                    (Some(pos.to_string()), false),
                    (Some(p.role.as_str().to_owned()), false),
                    (p.display_name.clone(), false),
                    (p.phone_number.clone(), false),
                    (p.uri.clone(), false),
                    (p.email.clone(), false),
                    (p.directory_user_id.map(|u| u.0.to_string()), false),
                    (Some(p.recorded_user.to_string()), false),
                    (p.joined_ms.map(|v| v.to_string()), false),
                    (p.left_ms.map(|v| v.to_string()), true),
                ] {
                    field(&mut parts, v.as_deref(), last);
                }
            }
            for seg in &s.segments {
                for (v, last) in [
                    (Some(t.clone()), false),
                    (Some(id.clone()), false),
                    (Some(seg.id.0.to_string()), false),
                    (seg.participant_id.map(|p| p.0.to_string()), false),
                    (Some(seg.start_ms.to_string()), false),
                    (Some(seg.end_ms.to_string()), false),
                    (Some(seg.text.clone()), false),
                    (Some(seg.confidence.to_string()), false),
                    (seg.language.clone(), true),
                ] {
                    field(&mut segs, v.as_deref(), last);
                }
            }
        }
        for (sql, data) in [
            (
                "COPY recordings (tenant_id, id, kind, direction, started_at, ended_at, \
                 duration_ms, external_call_id, call_chain_id, status, result_code, \
                 retention_class, legal_hold, has_transcript, created_at) FROM STDIN",
                recs,
            ),
            (
                "COPY participants (tenant_id, recording_id, id, position, role, display_name, \
                 phone_number, uri, email, directory_user_id, recorded_user, joined_ms, left_ms) \
                 FROM STDIN",
                parts,
            ),
            (
                "COPY transcript_segments (tenant_id, recording_id, id, participant_id, \
                 start_ms, end_ms, text, confidence, language) FROM STDIN",
                segs,
            ),
        ] {
            let mut copy = conn.copy_in_raw(sql).await?;
            copy.send(data.into_bytes()).await?;
            copy.finish().await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recordings_are_deterministic_and_random_access() {
        let g = Generator::new(TenantId(uuid::Uuid::nil()), 7, 1_000);
        let a = g.recording(123);
        let b = g.recording(123);
        assert_eq!(a.recording, b.recording);
        assert_eq!(a.segments, b.segments);
        assert_ne!(g.recording(124).recording.id, a.recording.id);
        // Spread over the year in order of i.
        assert!(g.recording(10).recording.started_at < g.recording(900).recording.started_at);
        let with_transcripts = (0..1_000)
            .filter(|&i| g.recording(i).recording.has_transcript)
            .count();
        assert!((400..600).contains(&with_transcripts), "{with_transcripts}");
        assert_eq!(
            phone_digits(&Participant {
                phone_number: Some("+14255550101".into()),
                uri: Some("tel:+14255550101".into()),
                ..g.recording(1).recording.participants[0].clone()
            }),
            "14255550101"
        );
    }
}
