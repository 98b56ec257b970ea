//! Recording search: every filter of [`RecordingQuery`], FTS5 matching of
//! participant words and transcript text, phone-number digits, snippets,
//! and keyset pagination with an opaque cursor.
//!
//! Injection safety: user input is only ever bound. Text for FTS5 is
//! rebuilt as a list of quoted terms (`"word"`, inner quotes doubled), so
//! FTS5 operators, column filters and parentheses in the input are plain
//! text; runs of 3 or more digits go through the trigram index
//! `participant_digits_fts` (migration 0006) as one quoted phrase, shorter
//! ones through `LIKE` on the digits-only column, never with a wildcard
//! from the input.

use std::collections::HashMap;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use insights_core::domain::{
    RecordingId, RecordingQuery, RecordingSummary, SearchPage, SortKey, TenantId, normalize_phone,
};
use insights_core::store::{SearchStore, StoreError, StoreResult};
use serde::{Deserialize, Serialize};
use sqlx::{QueryBuilder, Sqlite, SqlitePool};
use uuid::Uuid;

use super::SqliteStore;
use super::recordings::{attach_children, from_row, recording_columns};
use super::util::{col, db, id, micros, uuid_list};

#[async_trait]
impl SearchStore for SqliteStore {
    async fn search_recordings(
        &self,
        tenant: TenantId,
        query: &RecordingQuery,
    ) -> StoreResult<SearchPage> {
        search(&self.pool, tenant, query).await
    }
}

/// Snippets returned per recording.
const MAX_SNIPPETS: i64 = 3;
/// Words around a match in a snippet (FTS5 allows up to 64).
const SNIPPET_TOKENS: i64 = 12;
/// Distinct words of one text filter that are used; more add cost, not
/// precision.
const MAX_TERMS: usize = 32;

/// The text filters of a query, made safe for FTS5.
#[derive(Debug, Default)]
struct TextFilters {
    /// FTS5 query over participant names, emails and URIs (prefix terms).
    participant_words: Option<String>,
    /// Digits to find in participant numbers.
    participant_digits: Option<String>,
    /// FTS5 query over transcript segments.
    transcript: Option<String>,
    /// A filter was given that no recording can match.
    matches_nothing: bool,
}

impl TextFilters {
    fn from_query(q: &RecordingQuery) -> Self {
        let mut f = TextFilters::default();
        // A blank text filter is no filter (an empty search box).
        if let Some(p) = q.participant.as_deref().filter(|p| !p.trim().is_empty()) {
            f.participant_words = fts_query(p, true);
            f.participant_digits = digits_query(p);
            // Nothing searchable (`%`, `*`, `"`): match nothing rather
            // than everything.
            f.matches_nothing |= f.participant_words.is_none() && f.participant_digits.is_none();
        }
        if let Some(t) = q
            .transcript_text
            .as_deref()
            .filter(|t| !t.trim().is_empty())
        {
            f.transcript = fts_query(t, false);
            f.matches_nothing |= f.transcript.is_none();
        }
        if q.visible_to_users.as_ref().is_some_and(Vec::is_empty) {
            f.matches_nothing = true;
        }
        f
    }
}

/// An FTS5 query matching rows that contain every word of `input`: each
/// whitespace-separated word becomes a quoted string (a phrase of its
/// tokens, so `alice.smith@contoso.com` matches those tokens in a row),
/// with a trailing `*` for prefix matching. Words without a letter or
/// digit are dropped (they index to nothing).
fn fts_query(input: &str, prefix: bool) -> Option<String> {
    let mut terms: Vec<String> = Vec::new();
    for word in input.split_whitespace() {
        if !word.chars().any(char::is_alphanumeric) {
            continue;
        }
        let term = format!(
            "\"{}\"{}",
            word.replace('"', "\"\""),
            if prefix { "*" } else { "" }
        );
        if !terms.contains(&term) {
            terms.push(term);
        }
        if terms.len() == MAX_TERMS {
            break;
        }
    }
    (!terms.is_empty()).then(|| terms.join(" "))
}

/// The digits to look for when `input` looks like (part of) a phone
/// number: digits and phone punctuation only, optionally `tel:`. Goes
/// through [`normalize_phone`] like stored numbers, so `0044 20...` finds
/// `+4420...`.
fn digits_query(input: &str) -> Option<String> {
    let s = input.trim();
    let body = match s.get(..4) {
        Some(scheme) if scheme.eq_ignore_ascii_case("tel:") => s.get(4..).unwrap_or_default(),
        _ => s,
    };
    let phone_like = body
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '+' | '-' | '(' | ')' | '.' | '/'));
    if !phone_like {
        return None;
    }
    normalize_phone(body).map(|n| n.trim_start_matches('+').to_owned())
}

/// The sort expression and direction of a sort key. Recordings without a
/// duration sort last in both duration orders (the sentinels are plain
/// integers, so the key is never NULL and keyset comparison stays simple).
fn sort_expr(sort: SortKey) -> (&'static str, bool) {
    match sort {
        SortKey::StartedDesc => ("r.started_at", true),
        SortKey::StartedAsc => ("r.started_at", false),
        SortKey::DurationDesc => ("COALESCE(r.duration_ms, -9223372036854775807)", true),
        SortKey::DurationAsc => ("COALESCE(r.duration_ms, 9223372036854775807)", false),
    }
}

/// The position after the last row of a page: its sort key and id. Bound
/// to the sort order it was made for.
#[derive(Debug, Serialize, Deserialize)]
struct Cursor {
    /// Sort order (`SortKey` string form).
    s: String,
    /// Sort key value of the last row.
    k: i64,
    /// Id of the last row.
    i: Uuid,
}

impl Cursor {
    fn encode(&self) -> StoreResult<String> {
        let json = serde_json::to_vec(self)
            .map_err(|_| StoreError::Invalid("cursor cannot be encoded".into()))?;
        Ok(URL_SAFE_NO_PAD.encode(json))
    }

    fn decode(s: &str, sort: SortKey) -> StoreResult<Cursor> {
        let bad = || StoreError::Invalid("malformed cursor".into());
        let bytes = URL_SAFE_NO_PAD.decode(s.trim()).map_err(|_| bad())?;
        let c: Cursor = serde_json::from_slice(&bytes).map_err(|_| bad())?;
        if c.s != sort.as_str() {
            return Err(StoreError::Invalid(
                "the cursor belongs to another sort order".into(),
            ));
        }
        Ok(c)
    }
}

/// Appends `WHERE` conditions (after `... WHERE `) for every filter.
fn push_filters(
    qb: &mut QueryBuilder<Sqlite>,
    tenant: TenantId,
    q: &RecordingQuery,
    text: &TextFilters,
) {
    qb.push("r.tenant_id = ").push_bind(tenant.0);
    if let Some(from) = q.from {
        qb.push(" AND r.started_at >= ").push_bind(micros(from));
    }
    if let Some(to) = q.to {
        qb.push(" AND r.started_at < ").push_bind(micros(to));
    }
    if let Some(d) = q.direction {
        qb.push(" AND r.direction = ").push_bind(d.as_str());
    }
    if let Some(k) = q.kind {
        qb.push(" AND r.kind = ").push_bind(k.as_str());
    }
    if let Some(min) = q.min_duration_ms {
        qb.push(" AND r.duration_ms >= ").push_bind(min);
    }
    if let Some(max) = q.max_duration_ms {
        qb.push(" AND r.duration_ms <= ").push_bind(max);
    }
    if let Some(t) = q.has_transcript {
        qb.push(" AND r.has_transcript = ").push_bind(t);
    }
    if let Some(h) = q.legal_hold {
        qb.push(" AND r.legal_hold = ").push_bind(h);
    }
    if let Some(user) = q.user_id {
        qb.push(" AND r.id IN (SELECT p.recording_id FROM participants p WHERE p.tenant_id = ")
            .push_bind(tenant.0)
            .push(" AND p.directory_user_id = ")
            .push_bind(user.0)
            .push(")");
    }
    if let Some(users) = &q.visible_to_users {
        qb.push(" AND r.id IN (SELECT p.recording_id FROM participants p WHERE p.tenant_id = ")
            .push_bind(tenant.0)
            .push(" AND p.directory_user_id IN (SELECT unhex(value) FROM json_each(")
            .push_bind(uuid_list(users.iter().map(|u| u.0)))
            .push(")))");
    }
    if text.participant_words.is_some() || text.participant_digits.is_some() {
        // CROSS JOIN makes SQLite start from the FTS matches (few) rather
        // than probe the index for every participant of the tenant.
        qb.push(" AND r.id IN (");
        if let Some(words) = &text.participant_words {
            qb.push(
                "SELECT p.recording_id FROM participants_fts \
                 CROSS JOIN participants p ON p.pk = participants_fts.rowid \
                 WHERE participants_fts MATCH ",
            )
            .push_bind(words.clone())
            .push(" AND p.tenant_id = ")
            .push_bind(tenant.0);
        }
        if let Some(digits) = &text.participant_digits {
            if text.participant_words.is_some() {
                qb.push(" UNION ALL ");
            }
            if digits.len() >= 3 {
                // The trigram index finds any run of 3+ digits; the input
                // is digits only, so the quoted phrase holds no syntax.
                qb.push(
                    "SELECT p.recording_id FROM participant_digits_fts \
                     CROSS JOIN participants p ON p.pk = participant_digits_fts.rowid \
                     WHERE participant_digits_fts MATCH ",
                )
                .push_bind(format!("\"{digits}\""))
                .push(" AND p.tenant_id = ")
                .push_bind(tenant.0);
            } else {
                // Digits only: no LIKE wildcard can come from the input.
                qb.push("SELECT p.recording_id FROM participants p WHERE p.tenant_id = ")
                    .push_bind(tenant.0)
                    .push(" AND p.phone_digits LIKE '%' || ")
                    .push_bind(digits.clone())
                    .push(" || '%'");
            }
        }
        qb.push(")");
    }
    if let Some(fts) = &text.transcript {
        // Driven from the FTS matches, as above.
        qb.push(
            " AND r.id IN (SELECT s.recording_id FROM transcript_fts \
             CROSS JOIN transcript_segments s ON s.pk = transcript_fts.rowid \
             WHERE transcript_fts MATCH ",
        )
        .push_bind(fts.clone())
        .push(" AND s.tenant_id = ")
        .push_bind(tenant.0)
        .push(")");
    }
}

pub(super) async fn search(
    pool: &SqlitePool,
    tenant: TenantId,
    q: &RecordingQuery,
) -> StoreResult<SearchPage> {
    let limit = i64::from(q.effective_limit());
    let after = q
        .cursor
        .as_deref()
        .map(|c| Cursor::decode(c, q.sort))
        .transpose()?;
    let text = TextFilters::from_query(q);
    if text.matches_nothing {
        return Ok(SearchPage {
            items: Vec::new(),
            total: 0,
            total_is_lower_bound: false,
            next_cursor: None,
        });
    }
    let (key, desc) = sort_expr(q.sort);

    // One read transaction: total, page, children and snippets all come
    // from the same snapshot.
    let mut tx = pool.begin().await.map_err(db)?;

    // The count stops one past the cap unless the caller asked for the
    // exact figure: a broad search pays for 10 001 rows, not a million.
    let mut count =
        QueryBuilder::<Sqlite>::new("SELECT COUNT(*) FROM (SELECT 1 FROM recordings r WHERE ");
    push_filters(&mut count, tenant, q, &text);
    if let Some(n) = q.count_limit() {
        count.push(" LIMIT ").push_bind(n);
    }
    count.push(")");
    let total: i64 = count
        .build_query_scalar()
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;

    let mut page = QueryBuilder::<Sqlite>::new(format!(
        "SELECT {}, {key} AS sort_key FROM recordings r WHERE ",
        recording_columns!()
    ));
    push_filters(&mut page, tenant, q, &text);
    if let Some(c) = &after {
        let cmp = if desc { "<" } else { ">" };
        page.push(format!(" AND ({key} {cmp} "))
            .push_bind(c.k)
            .push(format!(" OR ({key} = "))
            .push_bind(c.k)
            .push(format!(" AND r.id {cmp} "))
            .push_bind(c.i)
            .push("))");
    }
    let dir = if desc { "DESC" } else { "ASC" };
    page.push(format!(" ORDER BY sort_key {dir}, r.id {dir} LIMIT "))
        .push_bind(limit + 1);
    let rows = page.build().fetch_all(&mut *tx).await.map_err(db)?;

    let has_more = rows.len() as i64 > limit;
    let mut recordings = Vec::with_capacity(rows.len());
    let mut last_key = None;
    for row in rows.iter().take(limit as usize) {
        recordings.push(from_row(row)?);
        last_key = Some(col::<i64>(row, "sort_key")?);
    }
    attach_children(&mut tx, tenant, &mut recordings).await?;
    let mut snippets = match &text.transcript {
        Some(fts) => load_snippets(&mut tx, tenant, fts, &recordings).await?,
        None => HashMap::new(),
    };
    tx.commit().await.map_err(db)?;

    let next_cursor = match (has_more, recordings.last(), last_key) {
        (true, Some(last), Some(k)) => Some(
            Cursor {
                s: q.sort.as_str().to_owned(),
                k,
                i: last.id.0,
            }
            .encode()?,
        ),
        _ => None,
    };
    let items = recordings
        .into_iter()
        .map(|recording| RecordingSummary {
            snippets: snippets.remove(&recording.id).unwrap_or_default(),
            recording,
        })
        .collect();
    let (total, total_is_lower_bound) = q.reported_total(total);
    Ok(SearchPage {
        items,
        total,
        total_is_lower_bound,
        next_cursor,
    })
}

/// Up to [`MAX_SNIPPETS`] snippets per recording (earliest segments
/// first), matches wrapped in `[[` `]]`.
async fn load_snippets(
    conn: &mut sqlx::SqliteConnection,
    tenant: TenantId,
    fts: &str,
    recordings: &[insights_core::domain::Recording],
) -> StoreResult<HashMap<RecordingId, Vec<String>>> {
    let mut out: HashMap<RecordingId, Vec<String>> = HashMap::new();
    if recordings.is_empty() {
        return Ok(out);
    }
    // snippet() must be computed next to its MATCH; the MATERIALIZED CTE
    // keeps the window function from being flattened into that query.
    let rows = sqlx::query(
        "WITH m AS MATERIALIZED ( \
           SELECT s.recording_id, s.start_ms, s.id, \
                  snippet(transcript_fts, 0, '[[', ']]', '…', ?) AS snip \
           FROM transcript_fts CROSS JOIN transcript_segments s \
             ON s.pk = transcript_fts.rowid \
           WHERE transcript_fts MATCH ? AND s.tenant_id = ? \
             AND s.recording_id IN (SELECT unhex(value) FROM json_each(?))) \
         SELECT recording_id, snip FROM ( \
           SELECT recording_id, snip, start_ms, id, row_number() OVER \
             (PARTITION BY recording_id ORDER BY start_ms, id) AS n FROM m) \
         WHERE n <= ? ORDER BY recording_id, start_ms, id",
    )
    .bind(SNIPPET_TOKENS)
    .bind(fts)
    .bind(tenant.0)
    .bind(uuid_list(recordings.iter().map(|r| r.id.0)))
    .bind(MAX_SNIPPETS)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    for row in &rows {
        let rec: RecordingId = id(row, "recording_id")?;
        out.entry(rec).or_default().push(col(row, "snip")?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fts_terms_are_quoted_and_deduplicated() {
        assert_eq!(fts_query("Alice", true).as_deref(), Some("\"Alice\"*"));
        assert_eq!(
            fts_query("a\"b OR (x) budget budget", false).as_deref(),
            Some("\"a\"\"b\" \"OR\" \"(x)\" \"budget\"")
        );
        assert_eq!(fts_query("% * \" ()", true), None);
    }

    #[test]
    fn digits_only_for_phone_like_input() {
        assert_eq!(
            digits_query("+1 (425) 555-0100").as_deref(),
            Some("14255550100")
        );
        assert_eq!(
            digits_query("tel:0044 20 7946").as_deref(),
            Some("44207946")
        );
        assert_eq!(digits_query("555 01").as_deref(), Some("55501"));
        assert_eq!(digits_query("agent 007"), None);
        assert_eq!(digits_query("%"), None);
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = Cursor {
            s: SortKey::DurationAsc.as_str().into(),
            k: -5,
            i: Uuid::new_v4(),
        };
        let enc = c.encode().unwrap_or_default();
        let back = Cursor::decode(&enc, SortKey::DurationAsc);
        assert!(matches!(back, Ok(Cursor { k: -5, .. })));
        assert!(matches!(
            Cursor::decode(&enc, SortKey::StartedDesc),
            Err(StoreError::Invalid(_))
        ));
        assert!(matches!(
            Cursor::decode("!!", SortKey::StartedDesc),
            Err(StoreError::Invalid(_))
        ));
    }
}
