//! Directory sync throughput: a full sync of N users from a local
//! stand-in of Graph's `/users/delta` (pages of 999, the service's
//! largest, pre-rendered so the stand-in costs next to nothing), then a
//! delta run with 1 % of the users changed and 0.1 % removed, against
//! the baseline measured in the same run: the same N users written
//! straight into a fresh tenant with `upsert_directory_user`, one commit
//! each (the naive way; the sync writes one transaction per page).
//!
//! `cargo bench -p gdpr-tools --bench directory_sync`
//!
//! SQLite always (a temp file); PostgreSQL too when
//! `INSIGHTS_TEST_PG_URL` is set (a fresh database). Environment:
//! `DIRSYNC_BENCH_USERS` (default 10 000).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use gdpr_tools::directory::{DirectorySync, GraphConfig, merge};
use insights_core::domain::*;
use insights_core::store::MetadataStore;
use serde_json::{Value, json};
use zeroize::Zeroizing;

const PAGE: usize = 999;

struct Pages {
    full: Vec<String>,
    delta: String,
}

fn user(i: usize) -> Value {
    json!({
        "id": format!("{:08x}-0000-4000-8000-{:012x}", i, i),
        "givenName": format!("Given{i}"),
        "surname": format!("Surname{i}"),
        "displayName": format!("Given{i} Surname{i}"),
        "mailNickname": format!("user{i}"),
        "mail": format!("user{i}@contoso.com"),
        "userPrincipalName": format!("user{i}@contoso.onmicrosoft.com"),
        "businessPhones": [format!("+1 425 {:03} {:04}", i / 10_000 % 1000, i % 10_000)],
        "mobilePhone": format!("+44 7700 {:06}", i % 1_000_000),
        "imAddresses": [format!("user{i}@contoso.com")],
        "proxyAddresses": [format!("SMTP:user{i}@contoso.com"), format!("SIP:user{i}@contoso.com")],
    })
}

fn pages(base: &str, n: usize) -> Pages {
    let users: Vec<Value> = (0..n).map(user).collect();
    let chunks: Vec<&[Value]> = users.chunks(PAGE).collect();
    let full = chunks
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut v = json!({ "value": c });
            if i + 1 < chunks.len() {
                v["@odata.nextLink"] =
                    json!(format!("{base}/v1.0/users/delta?$skiptoken={}", i + 1));
            } else {
                v["@odata.deltaLink"] = json!(format!("{base}/v1.0/users/delta?$deltatoken=d1"));
            }
            v.to_string()
        })
        .collect();
    let mut changes: Vec<Value> = (0..n / 100)
        .map(|k| {
            let i = k * 100;
            json!({"id": user(i)["id"], "surname": format!("Changed{i}")})
        })
        .collect();
    changes.extend((0..n / 1000).map(|k| {
        let i = k * 1000 + 7;
        json!({"id": user(i)["id"], "@removed": {"reason": "deleted"}})
    }));
    let delta = json!({
        "value": changes,
        "@odata.deltaLink": format!("{base}/v1.0/users/delta?$deltatoken=d2"),
    })
    .to_string();
    Pages { full, delta }
}

async fn serve(req: HttpRequest, pages: web::Data<Pages>) -> HttpResponse {
    if req.path().ends_with("/token") {
        return HttpResponse::Ok().json(json!({"token_type": "Bearer", "access_token": "t"}));
    }
    let q = req.query_string();
    let body = if q.contains("deltatoken=d1") {
        pages.delta.clone()
    } else if let Some(i) = q.split("skiptoken=").nth(1) {
        pages.full[i.parse::<usize>().unwrap()].clone()
    } else {
        pages.full[0].clone()
    };
    HttpResponse::Ok()
        .content_type("application/json")
        .body(body)
}

async fn tenant(store: &Arc<dyn MetadataStore>, name: &str) -> Tenant {
    store
        .create_tenant(NewTenant {
            name: name.into(),
            directory_tenant_id: Some(uuid::Uuid::new_v4()),
        })
        .await
        .unwrap()
}

async fn run(label: &str, store: Arc<dyn MetadataStore>, base: &str, n: usize) {
    let t = tenant(&store, "contoso").await;
    let cfg = GraphConfig {
        graph_base_url: format!("{base}/v1.0"),
        token_url: format!("{base}/{{tenant}}/oauth2/v2.0/token"),
        scope: "https://graph.microsoft.com/.default".into(),
        client_id: "bench".into(),
        client_secret: Zeroizing::new("bench".into()),
        max_retries: 3,
        max_retry_after: Duration::from_secs(1),
        request_timeout: Duration::from_secs(60),
    };
    let sync = DirectorySync::new(cfg, store.clone()).unwrap();
    let t1 = Instant::now();
    let full = sync.sync_tenant(&t, "bench").await.unwrap();
    let full_time = t1.elapsed();
    assert_eq!(full.added as usize, n);
    let t2 = Instant::now();
    let delta = sync.sync_tenant(&t, "bench").await.unwrap();
    let delta_time = t2.elapsed();
    assert!(delta.delta);
    assert_eq!(delta.updated as usize, n / 100);
    assert_eq!(delta.deactivated as usize, n / 1000);

    // Baseline (after the sync, so neither pays the warm-up alone): the same users, merged from the same JSON, upserted.
    let baseline_tenant = tenant(&store, "baseline").await;
    let users: Vec<DirectoryUser> = (0..n)
        .map(|i| {
            let mut u = DirectoryUser {
                id: UserId::new(),
                tenant_id: baseline_tenant.id,
                directory_object_id: Some(user(i)["id"].as_str().unwrap().to_owned()),
                first_name: None,
                last_name: None,
                display_name: None,
                alias: None,
                email: None,
                upn: None,
                phone_numbers: Vec::new(),
                sip_uri: None,
                tel_uri: None,
                groups: Vec::new(),
                active: true,
                updated_at: now(),
            };
            merge(&mut u, &user(i));
            u
        })
        .collect();
    let t0 = Instant::now();
    for u in &users {
        store
            .upsert_directory_user(baseline_tenant.id, u)
            .await
            .unwrap();
    }
    let raw = t0.elapsed();
    let per_s = |d: Duration, k: usize| k as f64 / d.as_secs_f64();
    println!(
        "{label:<10} users {n:>7}  raw upserts {:>8.0} users/s ({:>6.2} s)  full sync {:>8.0} users/s ({:>6.2} s, {} pages)  ratio {:.2}  delta run {} changes in {:.2} s",
        per_s(raw, n),
        raw.as_secs_f64(),
        per_s(full_time, n),
        full_time.as_secs_f64(),
        full.pages,
        full_time.as_secs_f64() / raw.as_secs_f64(),
        delta.updated + delta.deactivated,
        delta_time.as_secs_f64(),
    );
}

fn main() {
    let n: usize = std::env::var("DIRSYNC_BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let data = web::Data::new(pages(&base, n));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(serve))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .disable_signals()
        .run();
        let handle = server.handle();
        tokio::spawn(server);

        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("insights.db").display());
        let sqlite: Arc<dyn MetadataStore> = Arc::new(
            insights_stores::metadata::sqlite::SqliteStore::connect(&url, 4)
                .await
                .unwrap(),
        );
        run("sqlite", sqlite, &base, n).await;
        if std::env::var_os("INSIGHTS_TEST_PG_URL").is_some() {
            let url = insights_tests::fresh_pg_database().await;
            let pg: Arc<dyn MetadataStore> = Arc::new(
                insights_stores::metadata::postgres::PgStore::connect(&url, 4)
                    .await
                    .unwrap(),
            );
            run("postgres", pg, &base, n).await;
        }
        handle.stop(false).await;
    });
}
