//! `koru-bench query`: the query engine against SQLite (in this process, WAL mode, the equivalent
//! indexes and FTS5) on the same documents, in the same run: point lookups by a unique field
//! (embedded and over HTTP), a selective filter with and without an index, a group-by, a join,
//! full-text search, the write cost of indexes and as-of queries. The data plane side runs against
//! a real `koru-dataplane` child process loaded through the batch API. A figure whose endpoint
//! answers an error is reported as unavailable with that error; every answer KoruDelta gives is
//! also checked against SQLite's.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use serde::Serialize;
use serde_json::{Value, json};

use crate::error::BenchError;
use crate::report;

mod data;
mod driver;
mod embedded;
mod figures;
mod server;
mod sqlite;
mod table;
#[cfg(test)]
mod tests;

use data::Sizes;
use server::Server;
use sqlite::Reference;
use table::{Check, Row};

/// Arguments of `koru-bench query`.
#[derive(Debug, Clone, Args)]
pub struct QueryArgs {
    /// Users and sales documents (orders are a tenth of it, customers a hundredth).
    #[arg(long = "docs", default_value_t = 1_000_000)]
    pub docs: u64,
    /// Measured seconds per figure (slow queries run at least a few times whatever this says).
    #[arg(long, default_value_t = 3.0)]
    pub secs: f64,
    /// Keep-alive connections of the throughput figures (lookups, text search, PUTs).
    #[arg(long, default_value_t = 8)]
    pub connections: usize,
    /// The koru-dataplane binary [default: beside this executable].
    #[arg(long)]
    pub server: Option<PathBuf>,
    /// Scratch directory for the server's data, the embedded store and the SQLite file; must be
    /// absent or empty. A new temporary directory when not given; removed after the run.
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Also print the record as one JSON line on stdout (the table goes to stderr).
    #[arg(long)]
    pub json: bool,
}

/// What `koru-bench query` reports.
#[derive(Debug, Clone, Serialize)]
pub struct QueryFigures {
    /// Documents of each kind.
    pub sizes: Sizes,
    /// Measured seconds per figure.
    pub secs: f64,
    /// Connections of the throughput figures.
    pub connections: usize,
    /// Seconds to load every document into the server through the batch API.
    pub koru_load_secs: f64,
    /// Seconds to load them into SQLite (indexes and FTS5 maintained while inserting).
    pub sqlite_load_secs: f64,
    /// The figures.
    pub rows: Vec<Row>,
    /// The cross-checks of KoruDelta's answers against SQLite's.
    pub checks: Vec<Check>,
}

/// The query body of the aggregation.
pub fn group_body() -> Value {
    json!({
        "group_by": ["region"],
        "aggregate": {
            "sum_amount": {"sum": "amount"},
            "avg_discount": {"avg": "discount"},
            "count": {"count": "*"}
        },
        // Eight groups; the limit also keeps a server that ignores `group_by` from sending every
        // document.
        "limit": 100
    })
}

/// The query body of the join, on the customers' keys (`_key`) or their indexed `id` field.
pub fn join_body(right: &str) -> Value {
    json!({
        "join": {"namespace": "customers", "on": {"left": "user_id", "right": right}},
        "filter": {"field": "customers:status", "op": "eq", "value": "premium"}
    })
}

/// The query body of the full-text figure.
pub fn text_body() -> Value {
    json!({
        "text_search": {"field": "bio", "query": "database +performance -slow"},
        "limit": 10
    })
}

/// The query body of a filter on `field` = `value`, now or as of `at`.
pub fn filter_body(field: &str, value: u64, at: Option<&str>) -> Value {
    let mut body = json!({"filter": {"field": field, "op": "eq", "value": value}});
    if let Some(at) = at {
        body["at"] = Value::from(at);
    }
    body
}

/// Runs `koru-bench query`.
pub fn run(args: QueryArgs) -> Result<(), BenchError> {
    validate(&args)?;
    let binary = beside(&args.server)?;
    let (work, temporary) = match &args.work_dir {
        Some(dir) => (dir.clone(), false),
        None => (
            std::env::temp_dir().join(format!("koru-bench-query-{}", std::process::id())),
            true,
        ),
    };
    let empty = std::fs::read_dir(&work)
        .map(|mut d| d.next().is_none())
        .unwrap_or(true);
    if !empty {
        return Err(BenchError::Usage(format!(
            "--work-dir {} is not empty",
            work.display()
        )));
    }
    std::fs::create_dir_all(&work)
        .map_err(BenchError::io(format!("creating {}", work.display())))?;
    let result = measure(&args, &binary, &work);
    if result.is_ok() || temporary {
        let _ = std::fs::remove_dir_all(&work);
    }
    let figures = result?;
    let title = format!(
        "query engine vs SQLite: {} users, {} sales, {} orders, {} customers; {} s per figure, {} connections; \
         loaded in {:.1} s through the batch API (SQLite: {:.1} s)",
        figures.sizes.users,
        figures.sizes.sales,
        figures.sizes.orders,
        figures.sizes.customers,
        figures.secs,
        figures.connections,
        figures.koru_load_secs,
        figures.sqlite_load_secs,
    );
    report::emit(
        &table::human(&title, &figures.rows, &figures.checks),
        &figures,
        args.json,
    )
}

/// Checks what clap cannot.
fn validate(args: &QueryArgs) -> Result<(), BenchError> {
    if !(100..=100_000_000).contains(&args.docs) {
        return Err(BenchError::Usage(
            "--docs must be between 100 and 100000000".into(),
        ));
    }
    if !(0.05..=600.0).contains(&args.secs) || !(1..=256).contains(&args.connections) {
        return Err(BenchError::Usage(
            "--secs must be 0.05..=600 and --connections 1..=256".into(),
        ));
    }
    Ok(())
}

/// The server binary given, or the one beside this executable.
fn beside(given: &Option<PathBuf>) -> Result<PathBuf, BenchError> {
    let path = match given {
        Some(path) => path.clone(),
        None => std::env::current_exe()
            .map_err(BenchError::io("finding this executable"))?
            .with_file_name("koru-dataplane"),
    };
    if !path.is_file() {
        return Err(BenchError::Usage(format!(
            "no koru-dataplane binary at {}: build it (cargo build --release -p koru-dataplane) or \
             pass --server",
            path.display()
        )));
    }
    Ok(path)
}

/// Loads SQLite, the embedded store and the server, then takes every figure.
pub fn measure(args: &QueryArgs, binary: &Path, work: &Path) -> Result<QueryFigures, BenchError> {
    let sizes = Sizes::new(args.docs);
    eprintln!(
        "loading SQLite ({} documents) ...",
        sizes.users * 2 + sizes.orders + sizes.customers
    );
    let (reference, sqlite_load_secs) = Reference::load(work, sizes)?;
    eprintln!("SQLite loaded in {sqlite_load_secs:.1} s; embedded store ...");
    let embedded_dir = work.join("embedded");
    let embedded = embedded::point_lookups(&embedded_dir, sizes.users, args.secs)?;
    let _ = std::fs::remove_dir_all(&embedded_dir);
    let mut rows = Vec::new();
    let mut checks = Vec::new();
    figures::embedded_lookup(args, sizes, &reference, embedded, &mut rows, &mut checks)?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(BenchError::io("starting the runtime"))?;
    let server = Arc::new(Server::start(binary, work)?);
    eprintln!("loading {} over HTTP ...", server.url());
    let started = Instant::now();
    let setup = runtime.block_on(figures::load_server(&server, sizes))?;
    let koru_load_secs = started.elapsed().as_secs_f64();
    eprintln!("loaded in {koru_load_secs:.1} s; measuring ...");
    let docs = (2 * sizes.users + sizes.orders + sizes.customers) as f64;
    rows.push(
        Row::compare(
            format!("load {} documents (batch API)", report::thousands(docs)),
            "docs/s",
            table::Measure::Value(docs / koru_load_secs.max(1e-9)),
            "SQLite",
            table::Measure::Value(docs / sqlite_load_secs.max(1e-9)),
            table::Goal::Report,
        )
        .with_detail(format!(
            "KoruDelta {koru_load_secs:.1} s (indexes created first; until they are ready), SQLite {sqlite_load_secs:.1} s"
        )),
    );
    let ctx = figures::Ctx {
        args,
        sizes,
        reference: &reference,
        server: &server,
        runtime: &runtime,
        setup: &setup,
    };
    ctx.http_lookup(&mut rows, &mut checks)?;
    ctx.selective_filter(&mut rows, &mut checks)?;
    ctx.group_by(&mut rows, &mut checks)?;
    ctx.join(&mut rows, &mut checks)?;
    ctx.text(&mut rows, &mut checks)?;
    ctx.as_of(&mut rows, &mut checks)?;
    ctx.write_cost(&mut rows)?;
    ctx.index_memory(&mut rows)?;
    Ok(QueryFigures {
        sizes,
        secs: args.secs,
        connections: args.connections,
        koru_load_secs,
        sqlite_load_secs,
        rows,
        checks,
    })
}
