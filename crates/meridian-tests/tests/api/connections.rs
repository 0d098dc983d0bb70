//! Connections lent to transactions and kept warm between them (`meridian-db`'s `lease.rs`):
//! nothing a transaction leaves behind (uncommitted rows, an open transaction, a failed or
//! cancelled statement) reaches the next one, and callers waiting for a connection are served in
//! turn, including those that use sqlx's pool directly. Most tests run on a `Db` of one connection,
//! so each transaction reuses the connection the previous one returned.

use std::sync::Arc;
use std::time::Duration;

use meridian_db::{Db, POOL_RESERVE, Pools, Tenant, TenantTx, sql};
use meridian_tests::{Engine, TestApp, both_engines, spawn_app};

both_engines!(
    what_a_transaction_leaves_behind_never_reaches_the_next,
    waiting_callers_are_served_in_turn,
    a_bulk_writer_keeps_its_connection_and_cache_until_dropped,
);

/// A `Db` over the app's database that lends one connection at a time.
async fn one_connection(app: &TestApp) -> Db {
    app.db.sibling(1, false).await.expect("one-connection pool")
}

async fn record(tx: &mut TenantTx, id: &str, action: &str) -> Result<u64, sqlx::Error> {
    let org_id = tx.org_id();
    tx.execute(
        sql(
            "INSERT INTO audit_log (org_id, id, actor_label, action, target_type, created_at) \
             VALUES ($1, $2, 'test', $3, 'connection', $4)",
        )
        .bind(org_id)
        .bind(id)
        .bind(action)
        .bind(meridian_db::now()),
    )
    .await
}

async fn count(db: &Db, tenant: &Tenant, action: &str) -> i64 {
    let mut tx = db.tenant_read(tenant).await.expect("read");
    let org_id = tx.org_id();
    let n = tx
        .fetch_count(
            sql("SELECT COUNT(*) FROM audit_log WHERE org_id = $1 AND action = $2")
                .bind(org_id)
                .bind(action),
        )
        .await
        .expect("count");
    tx.commit().await.expect("end read");
    n
}

async fn what_a_transaction_leaves_behind_never_reaches_the_next(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "ada@acme.test").await;
    let tenant = Tenant::for_verified_credentials(&owner.org_id, Some(owner.user_id.clone()));
    let db = one_connection(&app).await;

    // Dropped without commit after a write.
    let mut tx = db.tenant(&tenant).await.expect("begin");
    record(&mut tx, "a1", "abandoned").await.expect("insert");
    drop(tx);

    // A statement that fails inside the transaction (the same key twice), then dropped.
    let mut tx = db.tenant(&tenant).await.expect("begin");
    record(&mut tx, "f1", "abandoned")
        .await
        .expect("first insert");
    let duplicate = record(&mut tx, "f1", "abandoned").await;
    assert!(
        duplicate
            .as_ref()
            .is_err_and(|e| meridian_db::unique_violation(e).is_some()),
        "{duplicate:?}"
    );
    drop(tx);

    // A statement cancelled while it runs (or just after: either way the connection's state
    // is unknown to the lease), then dropped.
    let mut tx = db.tenant(&tenant).await.expect("begin");
    record(&mut tx, "c1", "abandoned").await.expect("insert");
    let slow = sql(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000000) \
         SELECT COUNT(*) FROM n",
    );
    let cancelled = tokio::time::timeout(Duration::from_millis(5), tx.fetch_count(slow)).await;
    assert!(cancelled.is_err(), "the slow statement finished in 5 ms");
    drop(tx);

    // A failed autocommit read (SQLite) or read-only transaction (PostgreSQL).
    let mut read = db.tenant_read(&tenant).await.expect("read");
    assert!(
        read.fetch_count(sql("SELECT COUNT(*) FROM no_such_table"))
            .await
            .is_err()
    );
    drop(read);

    // The next transaction on the one connection starts cleanly and commits for real: on SQLite
    // a transaction left open would refuse `BEGIN IMMEDIATE`; on PostgreSQL its rows would be
    // committed along with these.
    let mut tx = db.tenant(&tenant).await.expect("begin after the others");
    record(&mut tx, "k1", "kept").await.expect("insert");
    tx.commit().await.expect("commit");

    assert_eq!(count(&app.db, &tenant, "kept").await, 1);
    assert_eq!(count(&app.db, &tenant, "abandoned").await, 0);
    assert_eq!(count(&db, &tenant, "abandoned").await, 0);
    // Other writers are not blocked by anything the one connection holds.
    let mut tx = app.db.tenant(&tenant).await.expect("begin elsewhere");
    record(&mut tx, "k2", "kept")
        .await
        .expect("insert elsewhere");
    tx.commit().await.expect("commit elsewhere");
    assert_eq!(count(&db, &tenant, "kept").await, 2);
    db.close().await;
}

async fn waiting_callers_are_served_in_turn(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "ada@acme.test").await;
    let tenant = Arc::new(Tenant::for_verified_credentials(
        &owner.org_id,
        Some(owner.user_id.clone()),
    ));
    let db = one_connection(&app).await;

    // Forty callers share one connection: readers, writers, and callers of sqlx's pool itself
    // (the reserve), all at once. Starving any of them would end in an acquire timeout.
    let mut tasks = Vec::new();
    for caller in 0..40 {
        let (db, tenant) = (db.clone(), Arc::clone(&tenant));
        tasks.push(tokio::spawn(async move {
            for round in 0..10 {
                match caller % 4 {
                    0 => {
                        let mut tx = db.tenant(&tenant).await.expect("write");
                        record(&mut tx, &format!("w{caller}-{round}"), "written")
                            .await
                            .expect("insert");
                        tx.commit().await.expect("commit");
                    }
                    1 => match db.pools() {
                        Pools::Sqlite(pool) => {
                            sqlx::query("SELECT 1")
                                .execute(&pool)
                                .await
                                .expect("direct");
                        }
                        Pools::Postgres(pool) => {
                            sqlx::query("SELECT 1")
                                .execute(&pool)
                                .await
                                .expect("direct");
                        }
                    },
                    _ => {
                        count(&db, &tenant, "written").await;
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("caller");
    }
    assert_eq!(count(&db, &tenant, "written").await, 100);
    // One connection lent at a time, however many callers: sqlx opened one for the leases and
    // at most the reserve for the direct callers.
    let (open, idle) = db.pool_state();
    assert!(open <= 1 + POOL_RESERVE, "{open} connections open");
    assert!(idle >= 1, "the leases' connection is kept: {idle} idle");
    db.close().await;
}

/// SQLite's write-ahead log is copied back into the database file by `meridian-db`'s background
/// checkpointer, not only by the commit that takes the log past the autocheckpoint threshold:
/// the transaction here writes about a tenth of that threshold, and the database file still
/// receives its pages while the pool stays open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_log_is_copied_back_in_the_background() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("checkpoint.db");
    let db = Db::connect(&meridian_db::ConnectOptions {
        url: format!("sqlite://{}", path.display()),
        max_connections: 2,
    })
    .await
    .expect("sqlite");
    let mut tx = db.global().await.expect("begin");
    tx.execute(sql("CREATE TABLE filler (body TEXT NOT NULL)"))
        .await
        .expect("create");
    // 4,000 rows of 1,000 characters: about 1,000 pages of 4 KiB.
    tx.execute(sql(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 4000) \
         INSERT INTO filler (body) SELECT hex(randomblob(500)) FROM n",
    ))
    .await
    .expect("fill");
    tx.commit().await.expect("commit");

    let file_size = || std::fs::metadata(&path).map_or(0, |m| m.len());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while file_size() < 3_000_000 {
        assert!(
            std::time::Instant::now() < deadline,
            "the database file holds {} bytes: the log was not copied back",
            file_size()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    db.close().await;
}

/// PostgreSQL sessions the app opens never JIT-compile their statements (see `Db::connect`): a
/// misjudged estimate would otherwise spend more compiling a short query than running it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sessions_run_without_jit() {
    let app = spawn_app(Engine::Postgres).await;
    let db = one_connection(&app).await;
    let mut tx = db.global().await.expect("begin");
    let (jit,): (String,) = tx
        .fetch_one(sql("SELECT current_setting('jit')"))
        .await
        .expect("setting");
    tx.commit().await.expect("commit");
    assert_eq!(jit, "off");
}

/// A bulk writer (`Db::bulk_writer`) runs its transactions on one connection whose page cache
/// is widened (SQLite) for as long as the writer holds it, and gives the connection back as the
/// pool made it when dropped: otherwise every pooled connection that ever wrote an import chunk
/// would keep hundreds of MiB. A transaction dropped uncommitted rolls back and returns its
/// connection; the writer's next transaction takes one again. On PostgreSQL only the connection
/// is kept, and the tenant's row-level security applies as in any tenant transaction.
async fn a_bulk_writer_keeps_its_connection_and_cache_until_dropped(engine: Engine) {
    let app = spawn_app(engine).await;
    let owner = app.create_org("Acme Growth", "ada@acme.test").await;
    let other = app.create_org("Globex", "hank@globex.test").await;
    let tenant = Tenant::for_verified_credentials(&owner.org_id, None);
    let elsewhere = Tenant::for_verified_credentials(&other.org_id, None);
    let db = app.db.sibling(2, false).await.expect("two-connection pool");
    let (usual, wide) = match engine {
        Engine::Sqlite => (Some(-65_536), Some(-262_144)),
        Engine::Postgres => (None, None),
    };
    let mut writer = db.bulk_writer();

    let mut tx = writer.tenant(&tenant).await.expect("first");
    assert_eq!(cache_size(&mut tx, engine).await, wide);
    let first = connection_id(&mut tx, engine).await;
    record(&mut tx, "b1", "bulk").await.expect("write");
    writer.commit(tx).await.expect("commit first");

    // Between the writer's transactions the pool's other connection is as the pool made it.
    let mut pooled = db.tenant(&tenant).await.expect("pooled");
    assert_eq!(cache_size(&mut pooled, engine).await, usual);
    assert_ne!(connection_id(&mut pooled, engine).await, first);
    pooled.commit().await.expect("pooled commit");

    let mut tx = writer.tenant(&tenant).await.expect("second");
    assert_eq!(
        connection_id(&mut tx, engine).await,
        first,
        "the same connection"
    );
    assert_eq!(cache_size(&mut tx, engine).await, wide);
    record(&mut tx, "b2", "bulk").await.expect("write");
    drop(tx);

    let mut tx = writer.tenant(&tenant).await.expect("after a rollback");
    assert_eq!(cache_size(&mut tx, engine).await, wide, "widened again");
    record(&mut tx, "b3", "bulk").await.expect("write");
    writer.commit(tx).await.expect("commit third");
    assert_eq!(count(&db, &tenant, "bulk").await, 2, "b2 was rolled back");
    assert_eq!(count(&db, &elsewhere, "bulk").await, 0);
    drop(writer);

    // Dropped, the writer sets the cache back before the connection serves anyone else.
    for _ in 0..2 {
        let mut a = db.tenant_read(&tenant).await.expect("a");
        let mut b = db.tenant_read(&tenant).await.expect("b");
        assert_eq!(cache_size(&mut a, engine).await, usual);
        assert_eq!(cache_size(&mut b, engine).await, usual);
        a.commit().await.expect("end a");
        b.commit().await.expect("end b");
    }
    db.close().await;
}

/// Which connection a transaction runs on: SQLite's connection handle has no number, so its
/// page cache's own temporary table names it; PostgreSQL's backend process id.
async fn connection_id(tx: &mut meridian_db::Tx, engine: Engine) -> String {
    match engine {
        Engine::Sqlite => {
            tx.execute(sql(
                "CREATE TEMP TABLE IF NOT EXISTS connection_name (id TEXT NOT NULL)",
            ))
            .await
            .expect("temp table");
            let existing: Option<(String,)> = tx
                .fetch_optional(sql("SELECT id FROM connection_name"))
                .await
                .expect("name");
            match existing {
                Some((id,)) => id,
                None => {
                    let id = meridian_db::new_id();
                    tx.execute(
                        sql("INSERT INTO connection_name (id) VALUES ($1)").bind(id.as_str()),
                    )
                    .await
                    .expect("name it");
                    id
                }
            }
        }
        Engine::Postgres => {
            let (pid,): (i32,) = tx
                .fetch_one(sql("SELECT pg_backend_pid()"))
                .await
                .expect("pid");
            pid.to_string()
        }
    }
}

/// SQLite's page cache limit of the connection `tx` runs on (negative: KiB); `None` on PostgreSQL.
async fn cache_size(tx: &mut meridian_db::Tx, engine: Engine) -> Option<i64> {
    match engine {
        Engine::Sqlite => Some(
            tx.fetch_count(sql("PRAGMA cache_size"))
                .await
                .expect("cache size"),
        ),
        Engine::Postgres => None,
    }
}
