//! Data-subject requests at scale (issue 7): `find` over N synthetic
//! recordings (`insights_tests::synth`, seed 7; default 1 000 000) against
//! the hand-written SQL for the same question, in the same run, and
//! erasure throughput, on SQLite and PostgreSQL.
//!
//! `cargo bench -p insights-tests --bench gdpr`
//!
//! * Data: generated once and cached, SQLite under
//!   `<target>/bench-data/gdpr-v<VERSION>-<N>.sqlite`, PostgreSQL as the
//!   database `insights_bench_gdpr_v<VERSION>_<N>` on the server of
//!   `INSIGHTS_TEST_PG_URL` (skipped, and said so, when unset).
//! * Subjects: participants of randomly drawn recordings: external
//!   parties by phone number (a handful of recordings each) and internal
//!   users by email (hundreds of recordings each, like an employee).
//! * Ours: `gdpr_tools::subject::find` (normalisation, directory users,
//!   the store lookup, every matching recording read in full with its
//!   participants, reasons, audit events); on PostgreSQL in the tenant
//!   session (row-level security).
//! * Raw: the SQL a developer would write for the same answer: the
//!   matching participant rows joined to their recordings, then the
//!   participants of those recordings, values inlined; on PostgreSQL as
//!   the superuser (no row-level security).
//! * Erasure: a fresh database per backend with `GDPR_BENCH_ERASE`
//!   recordings (default 500) of one subject (waiver set, one blob and a
//!   data key each, half the subject's own, half pseudonymised); the
//!   time of `erasure::execute` gives recordings per second.
//!
//! Environment: `GDPR_BENCH_N` (default 1 000 000), `GDPR_BENCH_ITERS`
//! (default 40 subjects per kind), `GDPR_BENCH_ERASE` (default 500),
//! `GDPR_BENCH_BACKENDS` (default `sqlite,postgres`).

use std::error::Error;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gdpr_tools::certificate::CertificateSigner;
use gdpr_tools::erasure::{self, ErasureEnv};
use gdpr_tools::subject::{FindOptions, SubjectIdentifiers};
use insights_core::blob::BlobStore;
use insights_core::domain::*;
use insights_core::store::prelude::*;
use insights_stores::blob::LocalBlobStore;
use insights_stores::metadata::postgres::PgStore;
use insights_stores::metadata::sqlite::SqliteStore;
use insights_tests::synth::{self, Generator};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::{Connection, Executor, Row};
use uuid::Uuid;

type Res<T> = Result<T, Box<dyn Error>>;

const SEED: u64 = 7;

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

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1e3
}

/// A subject drawn from the data: how to find them, and the exact SQL
/// predicate (per backend) a developer would write.
struct Subject {
    kind: &'static str,
    ids: SubjectIdentifiers,
    value: String,
}

fn subjects(g: &Generator, iters: usize) -> Vec<Subject> {
    let mut rng = StdRng::seed_from_u64(99);
    let (mut phones, mut emails) = (Vec::new(), Vec::new());
    while phones.len() < iters || emails.len() < iters {
        let i = rng.random_range(0..g.n);
        for p in g.recording(i).recording.participants {
            if p.directory_user_id.is_none() {
                if let Some(num) = p.phone_number.filter(|n| n.starts_with('+'))
                    && phones.len() < iters
                {
                    phones.push(Subject {
                        kind: "external party by phone",
                        ids: SubjectIdentifiers {
                            phone: Some(num.clone()),
                            ..Default::default()
                        },
                        value: num,
                    });
                }
            } else if let Some(e) = p.email
                && emails.len() < iters
            {
                emails.push(Subject {
                    kind: "internal user by email",
                    ids: SubjectIdentifiers {
                        email: Some(e.clone()),
                        ..Default::default()
                    },
                    value: e.to_lowercase(),
                });
            }
        }
    }
    phones.into_iter().chain(emails).collect()
}

// ---------------------------------------------------------------------
// data
// ---------------------------------------------------------------------

async fn sqlite_data(n: u64) -> Res<(String, TenantId)> {
    let dir = target_dir().join("bench-data");
    std::fs::create_dir_all(&dir)?;
    let file = dir.join(format!("gdpr-v{}-{n}.sqlite", synth::VERSION));
    let url = format!("sqlite://{}", file.display());
    if !file.exists() {
        let tmp = dir.join(format!("gdpr-v{}-{n}.sqlite.partial", synth::VERSION));
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
        let mut i = 0;
        while i < n {
            let end = (i + 10_000).min(n);
            synth::sqlite::load(&mut conn, &g, i..end).await?;
            i = end;
            if i % 100_000 == 0 || i == n {
                eprintln!(
                    "sqlite: {i}/{n} recordings generated ({:.0} s)",
                    started.elapsed().as_secs_f64()
                );
            }
        }
        conn.execute("ANALYZE").await?;
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").await?;
        conn.close().await?;
        std::fs::rename(&tmp, &file)?;
    }
    let store = SqliteStore::connect(&url, 2).await?;
    let t = store.tenant_by_name("bench").await?.id;
    store.close().await;
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

async fn pg_data(admin: &str, n: u64) -> Res<(String, TenantId)> {
    let name = format!("insights_bench_gdpr_v{}_{n}", synth::VERSION);
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
        let g = Generator::new(t.id, SEED, n);
        let started = Instant::now();
        let mut i = 0;
        while i < n {
            let end = (i + 20_000).min(n);
            synth::postgres::load(&mut c, &g, i..end).await?;
            i = end;
            if i % 100_000 == 0 || i == n {
                eprintln!(
                    "postgres: {i}/{n} recordings generated ({:.0} s)",
                    started.elapsed().as_secs_f64()
                );
            }
        }
        c.execute("VACUUM ANALYZE").await?;
        c.execute("CREATE TABLE bench_complete ()").await?;
        c.close().await?;
    }
    admin_conn.close().await?;
    let store = PgStore::connect(&url, 1).await?;
    let t = store.tenant_by_name("bench").await?.id;
    store.pool().close().await;
    Ok((url, t))
}

// ---------------------------------------------------------------------
// raw SQL
// ---------------------------------------------------------------------

fn quote(s: &str) -> String {
    s.replace('\'', "''")
}

/// The recordings of the subject with all their participants (ids), by
/// hand: one query for the matches, one for the participants.
async fn raw_sqlite(pool: &sqlx::SqlitePool, t: TenantId, s: &Subject) -> Res<usize> {
    let tl = format!("X'{}'", t.0.simple());
    let v = quote(&s.value);
    let pred = if s.kind.contains("phone") {
        format!("(p.phone_number = '{v}' OR lower(p.uri) = 'tel:{v}')")
    } else {
        format!("(lower(p.email) = '{v}' OR lower(p.uri) = 'sip:{v}')")
    };
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT DISTINCT r.id, r.started_at FROM participants p JOIN recordings r \
         ON r.tenant_id = p.tenant_id AND r.id = p.recording_id \
         WHERE p.tenant_id = {tl} AND {pred} ORDER BY r.started_at"
    )))
    .fetch_all(pool)
    .await?;
    let ids: Vec<Uuid> = rows
        .iter()
        .map(|r| r.try_get("id"))
        .collect::<Result<_, _>>()?;
    if !ids.is_empty() {
        let list = ids
            .iter()
            .map(|u| format!("X'{}'", u.simple()))
            .collect::<Vec<_>>()
            .join(",");
        let parts = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT r.*, p.id AS pid, p.role, p.display_name, p.phone_number, p.uri, p.email, \
             p.directory_user_id FROM recordings r JOIN participants p \
             ON p.tenant_id = r.tenant_id AND p.recording_id = r.id \
             WHERE r.tenant_id = {tl} AND r.id IN ({list}) ORDER BY r.id, p.ord"
        )))
        .fetch_all(pool)
        .await?;
        std::hint::black_box(parts.len());
    }
    Ok(ids.len())
}

async fn raw_pg(pool: &sqlx::PgPool, t: TenantId, s: &Subject) -> Res<usize> {
    let tl = format!("'{}'::uuid", t.0);
    let v = quote(&s.value);
    let pred = if s.kind.contains("phone") {
        format!("(p.phone_number = '{v}' OR p.uri_lc = 'tel:{v}')")
    } else {
        format!("(p.email_lc = '{v}' OR p.uri_lc = 'sip:{v}')")
    };
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT DISTINCT r.id, r.started_at FROM participants p JOIN recordings r \
         ON r.tenant_id = p.tenant_id AND r.id = p.recording_id \
         WHERE p.tenant_id = {tl} AND {pred} ORDER BY r.started_at"
    )))
    .fetch_all(pool)
    .await?;
    let ids: Vec<Uuid> = rows
        .iter()
        .map(|r| r.try_get("id"))
        .collect::<Result<_, _>>()?;
    if !ids.is_empty() {
        let list = ids
            .iter()
            .map(|u| format!("'{u}'::uuid"))
            .collect::<Vec<_>>()
            .join(",");
        let parts = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT r.*, p.id AS pid, p.role, p.display_name, p.phone_number, p.uri, p.email, \
             p.directory_user_id FROM recordings r JOIN participants p \
             ON p.tenant_id = r.tenant_id AND p.recording_id = r.id \
             WHERE r.tenant_id = {tl} AND r.id IN ({list}) ORDER BY r.id, p.position"
        )))
        .fetch_all(pool)
        .await?;
        std::hint::black_box(parts.len());
    }
    Ok(ids.len())
}

// ---------------------------------------------------------------------
// find
// ---------------------------------------------------------------------

enum Raw {
    Sqlite(sqlx::SqlitePool),
    Pg(sqlx::PgPool),
}

async fn bench_find(
    label: &str,
    store: Arc<dyn MetadataStore>,
    raw: Raw,
    t: TenantId,
    subjects: &[Subject],
) -> Res<f64> {
    let opts = FindOptions::default();
    let mut worst = 0f64;
    println!(
        "{label}: find, {} subjects per kind (ms)\n{:<28} {:>9} {:>9} {:>9} {:>9} {:>7} {:>9}",
        subjects.len() / 2,
        "subject",
        "ours p50",
        "ours p95",
        "raw p50",
        "raw p95",
        "p95 x",
        "matches"
    );
    // Warm-up: the first query pays for opening pages and statements.
    if let Some(s) = subjects.first() {
        gdpr_tools::subject::find(store.as_ref(), t, &s.ids, &opts).await?;
        match &raw {
            Raw::Sqlite(p) => raw_sqlite(p, t, s).await?,
            Raw::Pg(p) => raw_pg(p, t, s).await?,
        };
    }
    for kind in ["external party by phone", "internal user by email"] {
        let (mut ours, mut raws, mut matches) = (Vec::new(), Vec::new(), Vec::new());
        for s in subjects.iter().filter(|s| s.kind == kind) {
            let start = Instant::now();
            let found = gdpr_tools::subject::find(store.as_ref(), t, &s.ids, &opts).await?;
            ours.push(start.elapsed());
            let start = Instant::now();
            let n = match &raw {
                Raw::Sqlite(p) => raw_sqlite(p, t, s).await?,
                Raw::Pg(p) => raw_pg(p, t, s).await?,
            };
            raws.push(start.elapsed());
            if n != found.recordings.len() {
                return Err(format!(
                    "{label}: ours found {} recordings, raw {n} ({kind})",
                    found.recordings.len()
                )
                .into());
            }
            matches.push(n);
        }
        ours.sort();
        raws.sort();
        let (o50, o95, r50, r95) = (
            pct(&ours, 0.5),
            pct(&ours, 0.95),
            pct(&raws, 0.5),
            pct(&raws, 0.95),
        );
        worst = worst.max(o95);
        matches.sort_unstable();
        println!(
            "{kind:<28} {o50:>9.2} {o95:>9.2} {r50:>9.2} {r95:>9.2} {:>7.2} {:>9}",
            o95 / r95.max(1e-6),
            format!("{}..{}", matches[0], matches[matches.len() - 1])
        );
    }
    println!("{label}: worst find p95 {worst:.1} ms (goal < 200)");
    Ok(worst)
}

// ---------------------------------------------------------------------
// erasure throughput
// ---------------------------------------------------------------------

async fn bench_erase(label: &str, store: Arc<dyn MetadataStore>, count: usize) -> Res<()> {
    let dir = tempfile::tempdir()?;
    let blobs = LocalBlobStore::new(dir.path().join("blobs"));
    let signer = CertificateSigner::open_or_create(dir.path().join("signing.json"))?;
    let t = store
        .create_tenant(NewTenant {
            name: "erase-bench".into(),
            directory_tenant_id: None,
        })
        .await?;
    store
        .update_tenant_settings(
            t.id,
            &TenantSettings {
                media_deletion_waiver: true,
                ..TenantSettings::default()
            },
        )
        .await?;
    let container = Tenant::container_name(t.id);
    blobs.ensure_container(&container).await?;
    let t0 = synth::epoch();
    for i in 0..count {
        let mut rec = Recording::new(
            t.id,
            RecordingKind::Call,
            Direction::Inbound,
            t0 + chrono::Duration::minutes(i as i64),
        );
        let subject = Participant {
            id: ParticipantId::new(),
            role: ParticipantRole::Caller,
            display_name: Some("Bench Subject".into()),
            phone_number: Some("+15550009999".into()),
            uri: None,
            email: None,
            directory_user_id: None,
            recorded_user: i % 2 == 0,
            joined_ms: None,
            left_ms: None,
        };
        let mut other = subject.clone();
        other.id = ParticipantId::new();
        other.role = ParticipantRole::Callee;
        other.display_name = Some(format!("Agent {i}"));
        other.phone_number = Some(format!("+1555{i:07}"));
        other.recorded_user = i % 2 == 1;
        rec.participants = vec![subject, other];
        let key = KeyId::new();
        store
            .put_data_key(
                t.id,
                &insights_core::crypto::WrappedDataKey {
                    id: key,
                    tenant_id: t.id,
                    kek_id: "bench".into(),
                    wrapped: vec![0u8; 60],
                    created_at: now(),
                },
            )
            .await?;
        let blob_key = insights_core::blob::layout::stream_blob_key(rec.id, 0, "audio/ogg");
        let body = vec![7u8; 32 * 1024];
        let out = blobs.put(&container, &blob_key, &mut &body[..]).await?;
        rec.media = Some(MediaObject {
            container: container.clone(),
            key: blob_key,
            byte_size: out.byte_size as i64,
            sha256: out.sha256,
            data_key_id: key,
            content_type: "audio/ogg".into(),
            plaintext_size: 1,
        });
        store.insert_recording(t.id, &rec).await?;
    }
    let env = ErasureEnv {
        store: store.as_ref(),
        blobs: &blobs,
        signer: &signer,
        spool: None,
        find: FindOptions::default(),
    };
    let ids = SubjectIdentifiers {
        phone: Some("+1 555 000 9999".into()),
        ..Default::default()
    };
    let start = Instant::now();
    let req = erasure::request(&env, t.id, &ids, "bench", "bench").await?;
    let planned = start.elapsed();
    let start = Instant::now();
    let done = erasure::execute(&env, t.id, req.id, "bench", None).await?;
    let took = start.elapsed();
    if done.status != "completed" || done.outcomes.len() != count {
        return Err(format!(
            "{label}: erasure ended {} with {}",
            done.status,
            done.outcomes.len()
        )
        .into());
    }
    println!(
        "{label}: erasure of {count} recordings (half deleted, half pseudonymised; a 32 KiB blob and a key each): \
         plan {:.0} ms, execute {:.2} s = {:.0} recordings/s",
        planned.as_secs_f64() * 1e3,
        took.as_secs_f64(),
        count as f64 / took.as_secs_f64()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Res<()> {
    let n: u64 = env_or("GDPR_BENCH_N", 1_000_000);
    let iters: usize = env_or("GDPR_BENCH_ITERS", 40);
    let erase: usize = env_or("GDPR_BENCH_ERASE", 500);
    let backends: String = env_or("GDPR_BENCH_BACKENDS", "sqlite,postgres".to_owned());
    if backends.contains("sqlite") {
        let (url, t) = sqlite_data(n).await?;
        let store: Arc<dyn MetadataStore> = Arc::new(SqliteStore::connect(&url, 4).await?);
        let pool = sqlx::SqlitePool::connect(&url).await?;
        let subjects = subjects(&Generator::new(t, SEED, n), iters);
        bench_find(
            &format!("SQLite, {n} recordings"),
            store,
            Raw::Sqlite(pool),
            t,
            &subjects,
        )
        .await?;
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}", dir.path().join("erase.db").display());
        let store: Arc<dyn MetadataStore> = Arc::new(SqliteStore::connect(&url, 4).await?);
        bench_erase("SQLite", store, erase).await?;
    }
    if backends.contains("postgres") {
        match std::env::var("INSIGHTS_TEST_PG_URL") {
            Err(_) => println!("PostgreSQL: skipped (INSIGHTS_TEST_PG_URL is not set)"),
            Ok(admin) => {
                let (url, t) = pg_data(&admin, n).await?;
                let store: Arc<dyn MetadataStore> = Arc::new(PgStore::connect(&url, 4).await?);
                let pool = sqlx::PgPool::connect(&url).await?;
                let subjects = subjects(&Generator::new(t, SEED, n), iters);
                bench_find(
                    &format!("PostgreSQL, {n} recordings"),
                    store,
                    Raw::Pg(pool),
                    t,
                    &subjects,
                )
                .await?;
                let name = format!("insights_bench_gdpr_erase_{}", Uuid::new_v4().simple());
                let mut c = sqlx::PgConnection::connect(&admin).await?;
                c.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .await?;
                let url = replace_db(&admin, &name);
                let store: Arc<dyn MetadataStore> = Arc::new(PgStore::connect(&url, 4).await?);
                let r = bench_erase("PostgreSQL", store.clone(), erase).await;
                drop(store);
                let _ = c
                    .execute(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .await;
                r?;
            }
        }
    }
    Ok(())
}
