//! Recording search over 1 million synthetic recordings (participants
//! and transcripts, `insights_tests::synth`, seed 7) on SQLite and
//! PostgreSQL: typical queries through `MetadataStore::search_recordings`
//! against the equivalent hand-written SQL, in the same run.
//!
//! `cargo bench -p insights-tests --bench search`
//!
//! * Data: generated once and cached, SQLite under
//!   `<target>/bench-data/search-v<VERSION>-<N>.sqlite`, PostgreSQL as
//!   the database `insights_bench_search_v<VERSION>_<N>` on the server of
//!   `INSIGHTS_TEST_PG_URL` (skipped, and said so, when unset).
//! * Ours: `search_recordings` with a page of 50: the total, the page of
//!   full recordings with participants and streams, snippets for
//!   transcript searches, a cursor; on PostgreSQL in the tenant session
//!   (app role, row-level security).
//! * Raw: the SQL a developer would write by hand for the same question:
//!   `COUNT(*)` of at most 10 001 rows (the store's total is exact up to
//!   10 000, then a lower bound), the page of recording rows, their participants and
//!   streams (and snippets), with the values inlined, decoding only ids.
//!   On PostgreSQL twice: as the connecting superuser (no row-level
//!   security: the indexes a DBA's query would use) and under the same
//!   app role and tenant setting as the store.
//! * Before timing, each query's first page (ids) and total are compared
//!   between ours and raw: they answer the same question.
//! * Each query runs `ITERS` times per path, paths interleaved; p50 and
//!   p95 are reported with the ratio ours/raw.
//!
//! Environment: `SEARCH_BENCH_N` (default 1 000 000), `SEARCH_BENCH_ITERS`
//! (default 40), `SEARCH_BENCH_BACKENDS` (default `sqlite,postgres`).

use std::error::Error;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use insights_core::domain::*;
use insights_core::store::prelude::*;
use insights_stores::metadata::postgres::PgStore;
use insights_stores::metadata::sqlite::SqliteStore;
use insights_tests::synth::{self, Generator};
use sqlx::{Connection, Executor, Row};
use uuid::Uuid;

type Res<T> = Result<T, Box<dyn Error>>;

const SEED: u64 = 7;
const PAGE: u32 = 50;
/// Rows the hand-written count reads: the same question as the store's
/// (an exact total up to the cap, then "more than the cap").
const COUNT_LIMIT: u64 = SEARCH_TOTAL_CAP + 1;

/// The total and lower-bound flag a search page reports for a count.
fn reported(counted: i64) -> (u64, bool) {
    let n = counted as u64;
    (n.min(SEARCH_TOTAL_CAP), n > SEARCH_TOTAL_CAP)
}

/// The "(N matches)" column: `10000+` for a capped count.
fn matches(p: &SearchPage) -> String {
    format!(
        "{}{}",
        p.total,
        if p.total_is_lower_bound { "+" } else { "" }
    )
}

fn env_or<T: FromStr>(k: &str, d: T) -> T {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

fn day(m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, m, d, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

/// One benchmark query: the store's form and the hand-written SQL parts
/// per backend.
struct Query {
    name: &'static str,
    q: RecordingQuery,
    /// WHERE clause over `recordings r` for SQLite / PostgreSQL, `{T}` =
    /// tenant literal.
    where_sqlite: String,
    where_pg: String,
    /// ORDER BY key expression for SQLite / PostgreSQL and direction.
    key_sqlite: &'static str,
    key_pg: &'static str,
    desc: bool,
    /// Transcript terms for snippets (SQLite FTS / PostgreSQL tsquery).
    snippets: Option<(&'static str, &'static str)>,
}

fn queries() -> Vec<Query> {
    let mut out = Vec::new();
    let started = ("r.started_at", "r.started_at");
    let q = |f: &dyn Fn(&mut RecordingQuery)| {
        let mut q = RecordingQuery {
            limit: PAGE,
            ..RecordingQuery::default()
        };
        f(&mut q);
        q
    };
    out.push(Query {
        name: "participant name prefix 'Alice Kowal'",
        q: q(&|q| q.participant = Some("Alice Kowal".into())),
        where_sqlite: "r.tenant_id = {T} AND r.id IN (SELECT p.recording_id FROM participants_fts \
             CROSS JOIN participants p ON p.pk = participants_fts.rowid \
             WHERE participants_fts MATCH '\"Alice\"* \"Kowal\"*' AND p.tenant_id = {T})"
            .into(),
        where_pg: "r.tenant_id = {T} AND r.id IN (SELECT p.recording_id FROM participants p \
             WHERE p.tenant_id = {T} AND p.search @@ to_tsquery('simple', 'Alice:* & Kowal:*'))"
            .into(),
        key_sqlite: started.0,
        key_pg: started.1,
        desc: true,
        snippets: None,
    });
    out.push(Query {
        name: "participant surname prefix 'kowal'",
        q: q(&|q| q.participant = Some("kowal".into())),
        where_sqlite: "r.tenant_id = {T} AND r.id IN (SELECT p.recording_id FROM participants_fts \
             CROSS JOIN participants p ON p.pk = participants_fts.rowid \
             WHERE participants_fts MATCH '\"kowal\"*' AND p.tenant_id = {T})"
            .into(),
        where_pg: "r.tenant_id = {T} AND r.id IN (SELECT p.recording_id FROM participants p \
             WHERE p.tenant_id = {T} AND p.search @@ to_tsquery('simple', 'kowal:*'))"
            .into(),
        key_sqlite: started.0,
        key_pg: started.1,
        desc: true,
        snippets: None,
    });
    out.push(Query {
        name: "phone digits '555 0123'",
        q: q(&|q| q.participant = Some("555 0123".into())),
        where_sqlite: "r.tenant_id = {T} AND r.id IN (SELECT p.recording_id FROM participants p \
             WHERE p.tenant_id = {T} AND p.phone_digits LIKE '%5550123%')"
            .into(),
        where_pg: "r.tenant_id = {T} AND r.id IN (SELECT p.recording_id FROM participants p \
             WHERE p.tenant_id = {T} AND p.phone_digits LIKE '%5550123%')"
            .into(),
        key_sqlite: started.0,
        key_pg: started.1,
        desc: true,
        snippets: None,
    });
    out.push(Query {
        name: "transcript words 'refund invoice'",
        q: q(&|q| q.transcript_text = Some("refund invoice".into())),
        where_sqlite: "r.tenant_id = {T} AND r.id IN (SELECT s.recording_id FROM transcript_fts \
             CROSS JOIN transcript_segments s ON s.pk = transcript_fts.rowid \
             WHERE transcript_fts MATCH '\"refund\" \"invoice\"' AND s.tenant_id = {T})"
            .into(),
        where_pg: "r.tenant_id = {T} AND r.id IN (SELECT s.recording_id FROM transcript_segments s \
             WHERE s.tenant_id = {T} AND s.search @@ to_tsquery('insights_english', 'refund:* & invoice:*'))"
            .into(),
        key_sqlite: started.0,
        key_pg: started.1,
        desc: true,
        snippets: Some((
            "\"refund\" \"invoice\"",
            "refund:* & invoice:*",
        )),
    });
    let (from, to) = (day(3, 1), day(3, 8));
    let date_dir_sqlite = format!(
        "r.tenant_id = {{T}} AND r.started_at >= {} AND r.started_at < {} AND r.direction = 'inbound'",
        from.timestamp_micros(),
        to.timestamp_micros()
    );
    let date_dir_pg = format!(
        "r.tenant_id = {{T}} AND r.started_at >= '{}'::timestamptz AND r.started_at < '{}'::timestamptz \
         AND r.direction = 'inbound'",
        from.to_rfc3339(),
        to.to_rfc3339()
    );
    out.push(Query {
        name: "one week, inbound",
        q: q(&|q| {
            q.from = Some(from);
            q.to = Some(to);
            q.direction = Some(Direction::Inbound);
        }),
        where_sqlite: date_dir_sqlite.clone(),
        where_pg: date_dir_pg.clone(),
        key_sqlite: started.0,
        key_pg: started.1,
        desc: true,
        snippets: None,
    });
    out.push(Query {
        name: "all, longest first",
        q: q(&|q| q.sort = SortKey::DurationDesc),
        where_sqlite: "r.tenant_id = {T}".into(),
        where_pg: "r.tenant_id = {T}".into(),
        key_sqlite: "COALESCE(r.duration_ms, -9223372036854775807)",
        key_pg: "COALESCE(r.duration_ms, -9223372036854775808)",
        desc: true,
        snippets: None,
    });
    let (mfrom, mto) = (day(6, 1), day(7, 1));
    out.push(Query {
        name: "one month, 'kowal', with transcript",
        q: q(&|q| {
            q.from = Some(mfrom);
            q.to = Some(mto);
            q.participant = Some("kowal".into());
            q.has_transcript = Some(true);
        }),
        where_sqlite: format!(
            "r.tenant_id = {{T}} AND r.started_at >= {} AND r.started_at < {} AND r.has_transcript = 1 \
             AND r.id IN (SELECT p.recording_id FROM participants_fts \
             CROSS JOIN participants p ON p.pk = participants_fts.rowid \
             WHERE participants_fts MATCH '\"kowal\"*' AND p.tenant_id = {{T}})",
            mfrom.timestamp_micros(),
            mto.timestamp_micros()
        ),
        where_pg: format!(
            "r.tenant_id = {{T}} AND r.started_at >= '{}'::timestamptz AND r.started_at < '{}'::timestamptz \
             AND r.has_transcript AND r.id IN (SELECT p.recording_id FROM participants p \
             WHERE p.tenant_id = {{T}} AND p.search @@ to_tsquery('simple', 'kowal:*'))",
            mfrom.to_rfc3339(),
            mto.to_rfc3339()
        ),
        key_sqlite: started.0,
        key_pg: started.1,
        desc: true,
        snippets: None,
    });
    // An investigator's "the number ended in 0123, some time in June".
    out.push(Query {
        name: "one month, number digits '0123'",
        q: q(&|q| {
            q.from = Some(mfrom);
            q.to = Some(mto);
            q.participant = Some("0123".into());
        }),
        where_sqlite: format!(
            "r.tenant_id = {{T}} AND r.started_at >= {} AND r.started_at < {} \
             AND r.id IN (SELECT p.recording_id FROM participants p \
             WHERE p.tenant_id = {{T}} AND p.phone_digits LIKE '%0123%')",
            mfrom.timestamp_micros(),
            mto.timestamp_micros()
        ),
        where_pg: format!(
            "r.tenant_id = {{T}} AND r.started_at >= '{}'::timestamptz AND r.started_at < '{}'::timestamptz \
             AND r.id IN (SELECT p.recording_id FROM participants p \
             WHERE p.tenant_id = {{T}} AND p.phone_digits LIKE '%0123%')",
            mfrom.to_rfc3339(),
            mto.to_rfc3339()
        ),
        key_sqlite: started.0,
        key_pg: started.1,
        desc: true,
        snippets: None,
    });
    out
}

const REC_COLS_SQLITE: &str = "r.tenant_id, r.id, r.kind, r.direction, r.started_at, r.ended_at, \
     r.duration_ms, r.external_call_id, r.call_chain_id, r.status, r.result_code, \
     r.retention_class, r.legal_hold, r.has_transcript, r.media_container, r.media_key, \
     r.media_byte_size, r.media_sha256, r.media_data_key_id, r.media_content_type, \
     r.media_plaintext_size, r.created_at";

fn sqlite_lit(u: Uuid) -> String {
    format!("X'{}'", u.simple())
}

fn pg_lit(u: Uuid) -> String {
    format!("'{u}'::uuid")
}

// ---------------------------------------------------------------------
// SQLite
// ---------------------------------------------------------------------

async fn sqlite_data(n: u64) -> Res<(String, TenantId)> {
    let dir = target_dir().join("bench-data");
    std::fs::create_dir_all(&dir)?;
    let file = dir.join(format!("search-v{}-{n}.sqlite", synth::VERSION));
    let url = format!("sqlite://{}", file.display());
    if !file.exists() {
        let tmp = dir.join(format!("search-v{}-{n}.sqlite.partial", synth::VERSION));
        for ext in ["", "-wal", "-shm"] {
            let mut p = tmp.clone().into_os_string();
            p.push(ext);
            let _ = std::fs::remove_file(p);
        }
        let tmp_url = format!("sqlite://{}", tmp.display());
        let store = SqliteStore::connect(&tmp_url, 1).await?;
        let t = store
            .create_tenant(NewTenant {
                name: "bench".into(),
                directory_tenant_id: None,
            })
            .await?;
        store.close().await;
        let opts = sqlx::sqlite::SqliteConnectOptions::from_str(&tmp_url)?
            .pragma("synchronous", "OFF")
            .pragma("cache_size", "-262144");
        let mut conn = sqlx::SqliteConnection::connect_with(&opts).await?;
        let g = Generator::new(t.id, SEED, n);
        let started = Instant::now();
        let batch = 10_000;
        let mut i = 0;
        while i < n {
            let end = (i + batch).min(n);
            synth::sqlite::load(&mut conn, &g, i..end).await?;
            i = end;
            if i % 100_000 == 0 || i == n {
                eprintln!(
                    "sqlite: {i}/{n} recordings generated ({:.0} s)",
                    started.elapsed().as_secs_f64()
                );
            }
        }
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").await?;
        conn.close().await?;
        std::fs::rename(&tmp, &file)?;
    }
    let store = SqliteStore::connect(&url, 2).await?;
    let t = store.tenant_by_name("bench").await?.id;
    store.close().await;
    Ok((url, t))
}

async fn sqlite_raw(
    pool: &sqlx::SqlitePool,
    t: TenantId,
    qu: &Query,
    after: Option<(i64, Uuid)>,
) -> Res<(i64, Vec<Uuid>)> {
    let tl = sqlite_lit(t.0);
    let w = qu.where_sqlite.replace("{T}", &tl);
    let mut tx = pool.begin().await?;
    let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM (SELECT 1 FROM recordings r WHERE {w} LIMIT {COUNT_LIMIT})"
    )))
    .fetch_one(&mut *tx)
    .await?;
    let (cmp, dir) = if qu.desc { ("<", "DESC") } else { (">", "ASC") };
    let key = qu.key_sqlite;
    let keyset = after
        .map(|(k, id)| {
            format!(
                " AND ({key} {cmp} {k} OR ({key} = {k} AND r.id {cmp} {}))",
                sqlite_lit(id)
            )
        })
        .unwrap_or_default();
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {REC_COLS_SQLITE}, {key} AS sort_key FROM recordings r WHERE {w}{keyset} \
         ORDER BY sort_key {dir}, r.id {dir} LIMIT {}",
        PAGE + 1
    )))
    .fetch_all(&mut *tx)
    .await?;
    let ids: Vec<Uuid> = rows
        .iter()
        .take(PAGE as usize)
        .map(|r| r.try_get::<Uuid, _>("id"))
        .collect::<Result<_, _>>()?;
    if !ids.is_empty() {
        let list = ids
            .iter()
            .map(|u| sqlite_lit(*u))
            .collect::<Vec<_>>()
            .join(",");
        let parts = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT recording_id, id, role, display_name, phone_number, uri, email, \
             directory_user_id, recorded_user, joined_ms, left_ms FROM participants \
             WHERE tenant_id = {tl} AND recording_id IN ({list}) ORDER BY recording_id, ord"
        )))
        .fetch_all(&mut *tx)
        .await?;
        std::hint::black_box(parts.len());
        let streams = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT recording_id, id, participant_id, track, media_type, codec, sample_rate, \
             start_ms FROM media_streams WHERE tenant_id = {tl} AND recording_id IN ({list}) \
             ORDER BY recording_id, ord"
        )))
        .fetch_all(&mut *tx)
        .await?;
        std::hint::black_box(streams.len());
        if let Some((fts, _)) = qu.snippets {
            let snips = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT s.recording_id, snippet(transcript_fts, 0, '[[', ']]', '…', 12) AS snip \
                 FROM transcript_fts CROSS JOIN transcript_segments s ON s.pk = transcript_fts.rowid \
                 WHERE transcript_fts MATCH '{}' AND s.tenant_id = {tl} AND s.recording_id IN ({list}) \
                 ORDER BY s.recording_id, s.start_ms, s.id",
                fts.replace('\'', "''")
            )))
            .fetch_all(&mut *tx)
            .await?;
            std::hint::black_box(snips.len());
        }
    }
    tx.commit().await?;
    Ok((total, ids))
}

// ---------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------

async fn pg_data(admin: &str, n: u64) -> Res<(String, TenantId)> {
    let name = format!("insights_bench_search_v{}_{n}", synth::VERSION);
    let url = replace_db(admin, &name);
    let mut admin_conn = sqlx::PgConnection::connect(admin).await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin_conn)
            .await?;
    let complete = if exists {
        let mut c = sqlx::PgConnection::connect(&url).await?;
        let done: bool = sqlx::query_scalar("SELECT to_regclass('bench_complete') IS NOT NULL")
            .fetch_one(&mut c)
            .await?;
        c.close().await?;
        done
    } else {
        false
    };
    if !complete {
        admin_conn
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name}"
            )))
            .await?;
        admin_conn
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await?;
        let store = PgStore::connect(&url, 1).await?;
        let t = store
            .create_tenant(NewTenant {
                name: "bench".into(),
                directory_tenant_id: None,
            })
            .await?;
        store.pool().close().await;
        let mut c = sqlx::PgConnection::connect(&url).await?;
        // Build the full-text indexes after the load: much faster.
        c.execute("DROP INDEX participants_search_idx").await?;
        c.execute("DROP INDEX transcript_segments_search_idx")
            .await?;
        let g = Generator::new(t.id, SEED, n);
        let started = Instant::now();
        let batch = 20_000;
        let mut i = 0;
        while i < n {
            let end = (i + batch).min(n);
            synth::postgres::load(&mut c, &g, i..end).await?;
            i = end;
            if i % 100_000 == 0 || i == n {
                eprintln!(
                    "postgres: {i}/{n} recordings generated ({:.0} s)",
                    started.elapsed().as_secs_f64()
                );
            }
        }
        c.execute("CREATE INDEX participants_search_idx ON participants USING gin (search)")
            .await?;
        c.execute(
            "CREATE INDEX transcript_segments_search_idx ON transcript_segments USING gin (search)",
        )
        .await?;
        c.execute("VACUUM ANALYZE").await?;
        c.execute("CREATE TABLE bench_complete ()").await?;
        c.close().await?;
        eprintln!(
            "postgres: ready after {:.0} s",
            started.elapsed().as_secs_f64()
        );
    }
    admin_conn.close().await?;
    let store = PgStore::connect(&url, 1).await?;
    let t = store.tenant_by_name("bench").await?.id;
    store.pool().close().await;
    Ok((url, t))
}

fn replace_db(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let after_scheme = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[after_scheme..].find('/') {
        Some(i) => &base[..after_scheme + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

const REC_COLS_PG: &str = "r.tenant_id, r.id, r.kind, r.direction, r.started_at, r.ended_at, \
     r.duration_ms, r.external_call_id, r.call_chain_id, r.status, r.result_code, \
     r.retention_class, r.legal_hold, r.has_transcript, r.media_container, r.media_key, \
     r.media_byte_size, r.media_sha256, r.media_data_key_id, r.media_content_type, \
     r.media_plaintext_size, r.created_at";

async fn pg_raw(
    pool: &sqlx::PgPool,
    t: TenantId,
    qu: &Query,
    after: Option<(String, Uuid)>,
    rls: bool,
) -> Res<(i64, Vec<Uuid>)> {
    let tl = pg_lit(t.0);
    let w = qu.where_pg.replace("{T}", &tl);
    let mut tx = pool.begin().await?;
    if rls {
        sqlx::query("SELECT set_config('role', 'insights_app', true), set_config('app.tenant_id', $1, true)")
            .bind(t.0.to_string())
            .execute(&mut *tx)
            .await?;
    }
    let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM (SELECT 1 FROM recordings r WHERE {w} LIMIT {COUNT_LIMIT}) m"
    )))
    .fetch_one(&mut *tx)
    .await?;
    let (cmp, dir) = if qu.desc { ("<", "DESC") } else { (">", "ASC") };
    let key = qu.key_pg;
    let keyset = after
        .map(|(k, id)| format!(" AND ({key}, r.id) {cmp} ({k}, {})", pg_lit(id)))
        .unwrap_or_default();
    let snippets = match qu.snippets {
        Some((_, tsq)) => format!(
            ", ARRAY(SELECT ts_headline('insights_english', s.text, to_tsquery('insights_english', '{tsq}'), \
             'StartSel=[[, StopSel=]], MaxWords=30, MinWords=10') FROM transcript_segments s \
             WHERE s.tenant_id = r.tenant_id AND s.recording_id = r.id \
             AND s.search @@ to_tsquery('insights_english', '{tsq}') ORDER BY s.start_ms, s.id LIMIT 3) AS snippets"
        ),
        None => String::new(),
    };
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {REC_COLS_PG}{snippets} FROM recordings r WHERE {w}{keyset} \
         ORDER BY {key} {dir}, r.id {dir} LIMIT {}",
        PAGE + 1
    )))
    .fetch_all(&mut *tx)
    .await?;
    let ids: Vec<Uuid> = rows
        .iter()
        .take(PAGE as usize)
        .map(|r| r.try_get::<Uuid, _>("id"))
        .collect::<Result<_, _>>()?;
    if !ids.is_empty() {
        let list = ids.iter().map(|u| pg_lit(*u)).collect::<Vec<_>>().join(",");
        let parts = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT recording_id, id, role, display_name, phone_number, uri, email, \
             directory_user_id, recorded_user, joined_ms, left_ms FROM participants \
             WHERE tenant_id = {tl} AND recording_id IN ({list}) ORDER BY recording_id, position"
        )))
        .fetch_all(&mut *tx)
        .await?;
        std::hint::black_box(parts.len());
        let streams = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT recording_id, id, participant_id, track, media_type, codec, sample_rate, \
             start_ms FROM media_streams WHERE tenant_id = {tl} AND recording_id IN ({list}) \
             ORDER BY recording_id, position"
        )))
        .fetch_all(&mut *tx)
        .await?;
        std::hint::black_box(streams.len());
    }
    tx.commit().await?;
    Ok((total, ids))
}

// ---------------------------------------------------------------------
// timing
// ---------------------------------------------------------------------

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1e3
}

struct Stats {
    p50: f64,
    p95: f64,
}

fn stats(mut v: Vec<Duration>) -> Stats {
    v.sort();
    Stats {
        p50: pct(&v, 0.5),
        p95: pct(&v, 0.95),
    }
}

/// The query with its cursor advanced `pages` times (for the paginated
/// case), and that cursor's position (sort key micros/value, id).
async fn page_after(
    store: &dyn MetadataStore,
    t: TenantId,
    q: &RecordingQuery,
    pages: usize,
) -> Res<(RecordingQuery, Option<Recording>)> {
    let mut q = q.clone();
    let mut last = None;
    for _ in 0..pages {
        let page = store.search_recordings(t, &q).await?;
        let Some(next) = page.next_cursor else { break };
        last = page.items.last().map(|i| i.recording.clone());
        q.cursor = Some(next);
    }
    Ok((q, last))
}

async fn time<F, Fut>(f: F) -> Res<Duration>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Res<()>>,
{
    let s = Instant::now();
    f().await?;
    Ok(s.elapsed())
}

/// A timed case: label, the store's query, the raw query, and the
/// keyset position (sort key literal, id) the raw query starts after.
type Case<'q, K> = (String, RecordingQuery, &'q Query, Option<(K, Uuid)>);

fn print_header(backend: &str, n: u64, iters: usize, extra: &str) {
    println!();
    println!("{backend}: {n} recordings, page of {PAGE}, {iters} runs per query (ms)");
    println!(
        "{:<40} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8}{extra}",
        "query", "ours p50", "ours p95", "raw p50", "raw p95", "p50 x", "p95 x"
    );
}

async fn bench_sqlite(n: u64, iters: usize) -> Res<()> {
    let (url, t) = sqlite_data(n).await?;
    let store: Arc<dyn MetadataStore> = Arc::new(SqliteStore::connect(&url, 4).await?);
    let raw = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(sqlx::sqlite::SqliteConnectOptions::from_str(&url)?)
        .await?;
    print_header("SQLite", n, iters, "");
    let mut cases: Vec<Case<'_, i64>> = Vec::new();
    let qs = queries();
    for qu in &qs {
        cases.push((qu.name.to_owned(), qu.q.clone(), qu, None));
    }
    // Page 5 of the one-week query.
    let week = &qs[4];
    let (q5, last) = page_after(store.as_ref(), t, &week.q, 4).await?;
    let after = last.map(|r| (r.started_at.timestamp_micros(), r.id.0));
    cases.push(("one week, inbound, page 5".into(), q5, week, after));

    let mut worst = (0.0f64, 0.0f64);
    for (name, q, qu, after) in &cases {
        // Same answer first.
        let ours = store.search_recordings(t, q).await?;
        let (total, ids) = sqlite_raw(&raw, t, qu, *after).await?;
        let our_ids: Vec<Uuid> = ours.items.iter().map(|i| i.recording.id.0).collect();
        if our_ids != ids || (ours.total, ours.total_is_lower_bound) != reported(total) {
            return Err(format!(
                "{name}: ours {} rows of {} vs raw {} of {total}",
                our_ids.len(),
                ours.total,
                ids.len()
            )
            .into());
        }
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for i in 0..iters + 3 {
            let ta = time(|| async {
                std::hint::black_box(store.search_recordings(t, q).await?);
                Ok(())
            });
            let tb = time(|| async {
                std::hint::black_box(sqlite_raw(&raw, t, qu, *after).await?);
                Ok(())
            });
            let (x, y) = if i % 2 == 0 {
                let x = ta.await?;
                (x, tb.await?)
            } else {
                let y = tb.await?;
                (ta.await?, y)
            };
            if i >= 3 {
                a.push(x);
                b.push(y);
            }
        }
        let (sa, sb) = (stats(a), stats(b));
        worst.0 = worst.0.max(sa.p95);
        worst.1 = worst.1.max(sa.p95 / sb.p95);
        println!(
            "{:<40} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>8.2} {:>8.2}   ({} matches)",
            name,
            sa.p50,
            sa.p95,
            sb.p50,
            sb.p95,
            sa.p50 / sb.p50,
            sa.p95 / sb.p95,
            matches(&ours)
        );
    }
    println!(
        "SQLite worst p95: {:.1} ms (goal < 50), worst p95 ratio ours/raw: {:.2} (goal <= 2)",
        worst.0, worst.1
    );
    Ok(())
}

async fn bench_pg(admin: &str, n: u64, iters: usize) -> Res<()> {
    let (url, t) = pg_data(admin, n).await?;
    let store: Arc<dyn MetadataStore> = Arc::new(PgStore::connect(&url, 4).await?);
    let raw = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect(&url)
        .await?;
    print_header(
        "PostgreSQL",
        n,
        iters,
        &format!(" {:>10} {:>10}", "rawRLS p50", "rawRLS p95"),
    );
    let qs = queries();
    let mut cases: Vec<Case<'_, String>> = qs
        .iter()
        .map(|qu| (qu.name.to_owned(), qu.q.clone(), qu, None))
        .collect();
    let week = &qs[4];
    let (q5, last) = page_after(store.as_ref(), t, &week.q, 4).await?;
    let after = last.map(|r| {
        (
            format!(
                "'{}'::timestamptz",
                r.started_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
            ),
            r.id.0,
        )
    });
    cases.push(("one week, inbound, page 5".into(), q5, week, after));
    let mut worst = (0.0f64, 0.0f64, 0.0f64);
    for (name, q, qu, after) in &cases {
        let ours = store.search_recordings(t, q).await?;
        let (total, ids) = pg_raw(&raw, t, qu, after.clone(), false).await?;
        let our_ids: Vec<Uuid> = ours.items.iter().map(|i| i.recording.id.0).collect();
        if our_ids != ids || (ours.total, ours.total_is_lower_bound) != reported(total) {
            return Err(format!(
                "{name}: ours {} rows of {} vs raw {} of {total}",
                our_ids.len(),
                ours.total,
                ids.len()
            )
            .into());
        }
        let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..iters + 3 {
            let x = time(|| async {
                std::hint::black_box(store.search_recordings(t, q).await?);
                Ok(())
            })
            .await?;
            let y = time(|| async {
                std::hint::black_box(pg_raw(&raw, t, qu, after.clone(), false).await?);
                Ok(())
            })
            .await?;
            let z = time(|| async {
                std::hint::black_box(pg_raw(&raw, t, qu, after.clone(), true).await?);
                Ok(())
            })
            .await?;
            if i >= 3 {
                a.push(x);
                b.push(y);
                c.push(z);
            }
        }
        let (sa, sb, sc) = (stats(a), stats(b), stats(c));
        worst.0 = worst.0.max(sa.p95);
        worst.1 = worst.1.max(sa.p95 / sb.p95);
        worst.2 = worst.2.max(sa.p95 / sc.p95);
        println!(
            "{:<40} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>8.2} {:>8.2} {:>10.2} {:>10.2}   ({} matches)",
            name,
            sa.p50,
            sa.p95,
            sb.p50,
            sb.p95,
            sa.p50 / sb.p50,
            sa.p95 / sb.p95,
            sc.p50,
            sc.p95,
            matches(&ours)
        );
    }
    println!(
        "PostgreSQL worst p95: {:.1} ms (goal < 50), worst p95 ratio ours/raw: {:.2} (goal <= 2), ours/raw-under-RLS: {:.2}",
        worst.0, worst.1, worst.2
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Res<()> {
    let n: u64 = env_or("SEARCH_BENCH_N", 1_000_000);
    let iters: usize = env_or("SEARCH_BENCH_ITERS", 40);
    let backends: String = env_or("SEARCH_BENCH_BACKENDS", "sqlite,postgres".to_owned());
    if backends.split(',').any(|b| b == "sqlite") {
        bench_sqlite(n, iters).await?;
    }
    if backends.split(',').any(|b| b == "postgres") {
        match std::env::var("INSIGHTS_TEST_PG_URL") {
            Ok(admin) if !admin.is_empty() => bench_pg(&admin, n, iters).await?,
            _ => println!("\nPostgreSQL: skipped (set INSIGHTS_TEST_PG_URL to an admin URL)"),
        }
    }
    Ok(())
}
