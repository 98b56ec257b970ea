//! The shared test harness of every crate's tests (a dev-dependency only):
//! each test owns its world (a fresh database, a fresh container, a temp
//! dir).
//!
//! * [`world`]: the store + blob + key-file world on SQLite or PostgreSQL,
//!   local blobs or Azurite;
//! * [`standins`]: stand-in servers for the cloud services (the recording
//!   HTTP server, an Entra OIDC issuer, the Microsoft endpoints of the
//!   gateway);
//! * [`keys`]: RSA test keys and hand-built JWTs;
//! * [`fault`]: fault-injecting wrappers of the metadata and blob stores;
//! * [`contract`]: the contract suites run on every backend;
//! * [`synth`]: synthetic data of the benchmarks;
//! * [`cluster`]: several real `insights` nodes behind HAProxy.
//!
//! External services are started by `scripts/test.sh`, which exports
//! where they listen:
//!
//! * `INSIGHTS_TEST_PG_URL`: an admin URL of a PostgreSQL server; every
//!   test creates its own database on it ([`fresh_pg_database`]).
//! * `INSIGHTS_TEST_AZURITE`: the Azurite blob endpoint,
//!   e.g. `http://127.0.0.1:10000/devstoreaccount1`.
//!
//! A test that needs a service that is not there fails: a missing service
//! is never a silent skip.

pub mod cluster;
pub mod contract;
pub mod fault;
pub mod key_vault;
pub mod keys;
pub mod standins;
pub mod synth;
pub mod world;

/// The admin URL of the test PostgreSQL server.
pub fn pg_admin_url() -> String {
    require_env("INSIGHTS_TEST_PG_URL")
}

/// The Azurite blob endpoint.
pub fn azurite_endpoint() -> String {
    require_env("INSIGHTS_TEST_AZURITE")
}

fn require_env(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{name} is not set: this test needs a real service. Run the suite with `scripts/test.sh`, \
             which installs and starts PostgreSQL and Azurite and exports {name}."
        ),
    }
}

/// Creates a fresh, empty database on the test server and returns its URL.
/// Databases are named `<INSIGHTS_TEST_DB_PREFIX><uuid>` (default prefix
/// `ins_t_`); `scripts/test.sh` drops its run's databases afterwards.
pub async fn fresh_pg_database() -> String {
    use sqlx::Connection;
    let admin = pg_admin_url();
    // scripts/test.sh sets a per-run prefix so it can drop exactly the
    // databases its run created.
    let prefix = std::env::var("INSIGHTS_TEST_DB_PREFIX").unwrap_or_else(|_| "ins_t_".to_owned());
    let name = format!("{prefix}{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| {
            panic!("cannot connect to test PostgreSQL at INSIGHTS_TEST_PG_URL: {e}")
        });
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("cannot create test database: {e}"));
    let _ = conn.close().await;
    replace_db_name(&admin, &name)
}

/// `url` with its database name replaced by `db`.
fn replace_db_name(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    // Scheme `postgres://` then authority; the path (if any) is the db.
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

#[cfg(test)]
mod tests {
    #[test]
    fn db_name_is_replaced() {
        assert_eq!(
            super::replace_db_name("postgres://u@h:5432/postgres", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            super::replace_db_name("postgres://u@h:5432", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            super::replace_db_name("postgres://u@h/p?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
    }
}
