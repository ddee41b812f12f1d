//! Time and peak memory of the database probes on servers holding 200
//! databases and 2,000 accounts each, and of testing 200 instances at once.
//!
//!     eval "$(bash scripts/test-env.sh)"
//!     cargo bench -p dbfleet --bench probes              # set up (once) and measure
//!     cargo bench -p dbfleet --bench probes -- --drop    # ... then drop the bench objects
//!     cargo bench -p dbfleet --bench probes -- --setup-only  # create them and stop
//!
//! The databases (`dbfleet_bench_db_NNN`), accounts (`dbfleet_bench_user_NNNN`)
//! and the monitoring login (`dbfleet_bench_monitor`) are created in the local
//! servers only where missing, so a second run measures at once. Each
//! measurement runs in a fresh child process (this binary with `--measure`),
//! so its peak resident memory (VmHWM) is its own. Nothing is asserted:
//! results go to stdout as a Markdown table for docs/benchmarks.md.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use dbfleet::crd::instance::{DbType, TlsMode};
use dbfleet::probe::{self, Password, Target, TlsSettings};
use dbfleet_testenv::DatabaseServer;
use futures_util::{StreamExt, stream};
use mysql_async::prelude::Queryable;

const DATABASES: usize = 200;
const ACCOUNTS: usize = 2_000;
const TABLES_PER_DATABASE: usize = 3;
const INSTANCES: usize = 200;
/// The controller's default bound on concurrent reconciles (SPEC §2.1).
const CONTROLLER_CONCURRENCY: usize = 32;
const MONITOR: &str = "dbfleet_bench_monitor";
const MONITOR_PASSWORD: &str = "dbfleet-bench-monitor";

fn database(i: usize) -> String {
    format!("dbfleet_bench_db_{i:03}")
}

fn account(i: usize) -> String {
    format!("dbfleet_bench_user_{i:04}")
}

/// Each measurement: a name, how many times it runs, and what it does.
const MEASUREMENTS: [(&str, usize); 8] = [
    ("postgres-connection-test", 20),
    ("postgres-capacity", 5),
    ("postgres-accounts", 5),
    ("mysql-connection-test", 20),
    ("mysql-capacity", 5),
    ("mysql-accounts", 5),
    ("200-instances-bounded-32", 3),
    ("200-instances-all-at-once", 3),
];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--measure") {
        let name = args.get(i + 1).context("--measure needs a name")?;
        return measure(name);
    }
    let runtime = tokio::runtime::Runtime::new()?;
    let pg = DatabaseServer::postgres()?;
    let my = DatabaseServer::mysql()?;

    let started = Instant::now();
    runtime.block_on(setup_postgres(&pg))?;
    runtime.block_on(setup_mysql(&my))?;
    eprintln!("[bench] fixtures ready in {:.1}s", started.elapsed().as_secs_f64());
    if args.iter().any(|a| a == "--setup-only") {
        return Ok(());
    }

    println!("| measurement | runs | min | median | max | peak RSS | result |");
    println!("|---|---|---|---|---|---|---|");
    let baseline = child("baseline")?;
    println!("{}", baseline.row());
    for (name, _) in MEASUREMENTS {
        println!("{}", child(name)?.row());
    }

    if args.iter().any(|a| a == "--drop") {
        runtime.block_on(drop_postgres(&pg))?;
        runtime.block_on(drop_mysql(&my))?;
        eprintln!("[bench] bench databases and accounts dropped");
    }
    Ok(())
}

struct Measured {
    name: String,
    runs: usize,
    millis: Vec<f64>,
    peak_kib: u64,
    result: String,
}

impl Measured {
    fn row(&self) -> String {
        let mut sorted = self.millis.clone();
        sorted.sort_by(f64::total_cmp);
        let (min, median, max) = match sorted.as_slice() {
            [] => ("-".into(), "-".into(), "-".into()),
            s => (ms(s[0]), ms(s[s.len() / 2]), ms(s[s.len() - 1])),
        };
        format!(
            "| {} | {} | {min} | {median} | {max} | {:.1} MiB | {} |",
            self.name,
            self.runs,
            self.peak_kib as f64 / 1024.0,
            self.result
        )
    }
}

fn ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2} ms")
    } else {
        format!("{v:.0} ms")
    }
}

/// Runs one measurement in a fresh process and reads its report line:
/// `RESULT <peak KiB> <ms,ms,...> <result text>`.
fn child(name: &str) -> Result<Measured> {
    let output = Command::new(std::env::current_exe()?)
        .args(["--measure", name])
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!("{name} failed: {}{}", stdout, String::from_utf8_lossy(&output.stderr));
    }
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .context("no RESULT line")?;
    let mut parts = line.splitn(3, ' ');
    let peak_kib = parts.next().context("peak")?.parse()?;
    let millis: Vec<f64> = match parts.next().context("times")? {
        "-" => Vec::new(),
        times => times.split(',').map(str::parse).collect::<Result<_, _>>()?,
    };
    Ok(Measured {
        name: name.into(),
        runs: millis.len(),
        millis,
        peak_kib,
        result: parts.next().unwrap_or_default().into(),
    })
}

/// Peak resident set size of this process so far.
fn vm_hwm_kib() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).context("no VmHWM")?;
    Ok(line.split_whitespace().nth(1).context("VmHWM value")?.parse()?)
}

fn monitor_target(db_type: DbType, server: &DatabaseServer) -> Target {
    Target::new(
        db_type,
        &server.host,
        server.port,
        MONITOR,
        Password::new(MONITOR_PASSWORD),
    )
    .with_tls(TlsSettings::new(TlsMode::Prefer))
}

fn measure(name: &str) -> Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    let runs = MEASUREMENTS
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(1, |(_, runs)| *runs);
    let pg = monitor_target(DbType::Postgresql, &DatabaseServer::postgres()?);
    let my = monitor_target(DbType::Mysql, &DatabaseServer::mysql()?);
    let mut times = Vec::new();
    let mut result = String::new();
    for _ in 0..runs {
        let started = Instant::now();
        result = runtime.block_on(run(name, &pg, &my))?;
        times.push(started.elapsed());
    }
    let times: Vec<String> = times
        .iter()
        .map(|t: &Duration| format!("{:.3}", t.as_secs_f64() * 1000.0))
        .collect();
    let times = if times.is_empty() { "-".into() } else { times.join(",") };
    println!("RESULT {} {times} {result}", vm_hwm_kib()?);
    Ok(())
}

async fn run(name: &str, pg: &Target, my: &Target) -> Result<String> {
    Ok(match name {
        "postgres-connection-test" | "mysql-connection-test" => {
            let target = if name.starts_with("postgres") { pg } else { my };
            let info = probe::test_connection(target).await?;
            format!("latency {} ms, tls {}", info.latency.as_millis(), info.tls)
        }
        "postgres-capacity" | "mysql-capacity" => {
            let target = if name.starts_with("postgres") { pg } else { my };
            let capacity = probe::collect_capacity(target).await?;
            format!(
                "{} databases, {:.1} MiB",
                capacity.databases.len(),
                capacity.total_size_bytes() as f64 / 1_048_576.0
            )
        }
        "postgres-accounts" | "mysql-accounts" => {
            let target = if name.starts_with("postgres") { pg } else { my };
            let accounts = probe::collect_accounts(target).await?;
            let grants: usize = accounts.accounts.iter().map(|a| a.databases.len()).sum();
            format!("{} accounts, {grants} database grants", accounts.accounts.len())
        }
        "200-instances-bounded-32" => instances(pg, my, CONTROLLER_CONCURRENCY).await,
        "200-instances-all-at-once" => instances(pg, my, INSTANCES).await,
        "baseline" => "a runtime and nothing else".into(),
        other => bail!("unknown measurement {other}"),
    })
}

/// Tests `INSTANCES` targets, half on each server, `concurrency` at a time.
async fn instances(pg: &Target, my: &Target, concurrency: usize) -> String {
    let targets: Vec<&Target> = (0..INSTANCES).map(|i| if i % 2 == 0 { pg } else { my }).collect();
    let results: Vec<_> = stream::iter(targets)
        .map(probe::test_connection)
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let failed: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    let mut summary = format!("{} ok, {} failed", results.len() - failed.len(), failed.len());
    if let Some(err) = failed.first() {
        summary.push_str(&format!(" (first: {})", err.kind));
    }
    summary
}

async fn pg_session(server: &DatabaseServer, database: &str) -> Result<tokio_postgres::Client> {
    Ok(pg_session_with_driver(server, database).await?.0)
}

async fn pg_session_with_driver(
    server: &DatabaseServer,
    database: &str,
) -> Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>)> {
    let (client, connection) = tokio_postgres::Config::new()
        .host(&server.host)
        .port(server.port)
        .user(&server.user)
        .password(&server.password)
        .dbname(database)
        .connect(tokio_postgres::NoTls)
        .await?;
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok((client, driver))
}

async fn setup_postgres(server: &DatabaseServer) -> Result<()> {
    let admin = pg_session(server, "postgres").await?;
    admin
        .batch_execute(&format!(
            "DO $$ BEGIN
               IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{MONITOR}') THEN
                 CREATE ROLE {MONITOR} LOGIN PASSWORD '{MONITOR_PASSWORD}';
                 GRANT pg_monitor TO {MONITOR};
               END IF;
               FOR i IN 0..{last} LOOP
                 IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = format('dbfleet_bench_user_%s', lpad(i::text, 4, '0'))) THEN
                   EXECUTE format('CREATE ROLE dbfleet_bench_user_%s LOGIN', lpad(i::text, 4, '0'));
                 END IF;
               END LOOP;
             END $$;",
            last = ACCOUNTS - 1
        ))
        .await?;
    let existing: Vec<String> = admin
        .query(
            "SELECT datname::text FROM pg_database WHERE datname LIKE 'dbfleet\\_bench\\_db\\_%'",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let missing: Vec<String> = (0..DATABASES).map(database).filter(|d| !existing.contains(d)).collect();
    if !missing.is_empty() {
        eprintln!("[bench] creating {} PostgreSQL databases", missing.len());
    }
    for db in &missing {
        // Tables first, in a database that only gets its final name once
        // complete, so an interrupted setup is redone rather than half kept.
        let building = format!("{db}_building");
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {building}"))
            .await?;
        admin.batch_execute(&format!("CREATE DATABASE {building}")).await?;
        let (client, driver) = pg_session_with_driver(server, &building).await?;
        let mut ddl = String::new();
        for t in 0..TABLES_PER_DATABASE {
            ddl.push_str(&format!(
                "CREATE TABLE t{t} (id int PRIMARY KEY, v text);
                 INSERT INTO t{t} SELECT g, md5(g::text) FROM generate_series(1, 100) g;"
            ));
        }
        client.batch_execute(&ddl).await?;
        // The rename needs the session gone.
        drop(client);
        driver.await?;
        admin
            .batch_execute(&format!("ALTER DATABASE {building} RENAME TO {db}"))
            .await?;
    }
    // Ten accounts hold CONNECT on each database, so every account has one.
    admin
        .batch_execute(&format!(
            "DO $$ BEGIN FOR i IN 0..{last} LOOP
               EXECUTE format('GRANT CONNECT ON DATABASE dbfleet_bench_db_%s TO dbfleet_bench_user_%s',
                              lpad((i % {DATABASES})::text, 3, '0'), lpad(i::text, 4, '0'));
             END LOOP; END $$;",
            last = ACCOUNTS - 1
        ))
        .await?;
    Ok(())
}

async fn drop_postgres(server: &DatabaseServer) -> Result<()> {
    let admin = pg_session(server, "postgres").await?;
    for i in 0..DATABASES {
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", database(i)))
            .await?;
    }
    admin
        .batch_execute(&format!(
            "DO $$ BEGIN FOR i IN 0..{last} LOOP
               EXECUTE format('DROP ROLE IF EXISTS dbfleet_bench_user_%s', lpad(i::text, 4, '0'));
             END LOOP; END $$; DROP ROLE IF EXISTS {MONITOR};",
            last = ACCOUNTS - 1
        ))
        .await?;
    Ok(())
}

async fn my_session(server: &DatabaseServer) -> Result<mysql_async::Conn> {
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(server.host.clone())
        .tcp_port(server.port)
        .user(Some(server.user.clone()))
        .pass(Some(server.password.clone()))
        .prefer_socket(false);
    Ok(mysql_async::Conn::new(opts).await?)
}

/// Runs statements in batches of multi-statement queries.
async fn batched(conn: &mut mysql_async::Conn, statements: Vec<String>) -> Result<()> {
    for chunk in statements.chunks(200) {
        conn.query_drop(chunk.join(";")).await?;
    }
    Ok(())
}

async fn setup_mysql(server: &DatabaseServer) -> Result<()> {
    let mut conn = my_session(server).await?;
    let mut statements = vec![
        format!("CREATE USER IF NOT EXISTS '{MONITOR}'@'127.0.0.1' IDENTIFIED BY '{MONITOR_PASSWORD}'"),
        format!("GRANT SHOW VIEW ON *.* TO '{MONITOR}'@'127.0.0.1'"),
        format!("GRANT SELECT ON mysql.* TO '{MONITOR}'@'127.0.0.1'"),
    ];
    for i in 0..DATABASES {
        let db = database(i);
        statements.push(format!("CREATE DATABASE IF NOT EXISTS {db}"));
        for t in 0..TABLES_PER_DATABASE {
            statements.push(format!(
                "CREATE TABLE IF NOT EXISTS {db}.t{t} (id INT PRIMARY KEY, v VARCHAR(32))"
            ));
            statements.push(format!(
                "INSERT IGNORE INTO {db}.t{t} SELECT seq, MD5(seq) FROM {db}.seq_1_to_100"
            ));
        }
    }
    for i in 0..ACCOUNTS {
        let user = account(i);
        statements.push(format!("CREATE USER IF NOT EXISTS '{user}'@'10.0.0.%'"));
        statements.push(format!(
            "GRANT SELECT ON {}.* TO '{user}'@'10.0.0.%'",
            database(i % DATABASES)
        ));
    }
    batched(&mut conn, statements).await?;
    conn.disconnect().await?;
    Ok(())
}

async fn drop_mysql(server: &DatabaseServer) -> Result<()> {
    let mut conn = my_session(server).await?;
    let mut statements: Vec<String> = (0..DATABASES)
        .map(|i| format!("DROP DATABASE IF EXISTS {}", database(i)))
        .collect();
    statements.extend((0..ACCOUNTS).map(|i| format!("DROP USER IF EXISTS '{}'@'10.0.0.%'", account(i))));
    statements.push(format!("DROP USER IF EXISTS '{MONITOR}'@'127.0.0.1'"));
    batched(&mut conn, statements).await?;
    conn.disconnect().await?;
    Ok(())
}
