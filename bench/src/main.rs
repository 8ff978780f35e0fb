//! `koru-bench`: the data plane's benchmark tool (HTTP load generator, bare-axum ceiling server,
//! embedded, restart, backup, replication, multi-region, gateway and query benchmarks, the sharding model, and the final table); see dataplane/BENCHMARKS.md.

mod backup;
mod ceiling;
mod child_load;
mod embedded;
mod error;
mod gateway;
mod histogram;
mod load;
mod query;
mod raft;
mod regions;
mod report;
mod restart;
mod shards;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use error::BenchError;

/// The same allocator as `koru-dataplane`, so embedded figures match the server's and the ceiling
/// server is not handicapped against it.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Benchmarks for the KoruDelta data plane; `make bench` runs them all.
#[derive(Debug, Parser)]
#[command(name = "koru-bench", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The benchmarks and helpers.
#[derive(Debug, Subcommand)]
enum Command {
    /// Serves a bare axum PUT/GET handler, the ceiling the real server is compared with.
    Ceiling(ceiling::CeilingArgs),
    /// Generates HTTP load against a server on this machine and reports rate and latency.
    Http(load::HttpArgs),
    /// Measures embedded batched writes through `Store::write`.
    Embedded(embedded::EmbeddedArgs),
    /// Fills a store to N versions and times reopening it, with memory per version.
    Restart(restart::RestartArgs),
    /// Archive throughput, restore speed and the recovery point under steady writes.
    Backup(backup::BackupArgs),
    /// Replicated write throughput against one node, and failover time after killing the leader.
    Raft(raft::RaftArgs),
    /// Multi-region: replication lag over a delayed link, catch-up after a partition, CRDT
    /// operations against PUTs, and the streams' cost on the source region.
    Regions(regions::RegionsArgs),
    /// PUT and GET through koru-gateway against direct to the data plane, in the same run.
    Gateway(gateway::GatewayArgs),
    /// The query engine (indexes, filters, group-by, joins, full text, as-of) against SQLite.
    Query(query::QueryArgs),
    /// A model of a sharded cluster at 8, 32 and 128 members from the measured CPU per
    /// replicated write: throughput, a member or zone lost, hot keys (no server started).
    Shards(shards::ShardsArgs),
    /// Prints the table of targets from a directory of JSON results; exits 1 if one failed.
    Table {
        /// Directory holding one `<measurement>.json` file per result.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Prints a free TCP port on 127.0.0.1 (for scripts starting servers that need a port).
    FreePort,
}

fn free_port() -> Result<(), BenchError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(BenchError::io("binding 127.0.0.1:0"))?;
    let addr = listener
        .local_addr()
        .map_err(BenchError::io("reading the bound address"))?;
    println!("{}", addr.port());
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Ceiling(args) => ceiling::run(args),
        Command::Http(args) => load::run(args),
        Command::Embedded(args) => embedded::run(args),
        Command::Restart(args) => restart::run(args),
        Command::Backup(args) => backup::run(args),
        Command::Raft(args) => raft::run(args),
        Command::Regions(args) => regions::run(args),
        Command::Gateway(args) => gateway::run(args),
        Command::Query(args) => query::run(args),
        Command::Shards(args) => shards::run(args),
        Command::Table { dir } => match report::table(&dir) {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::FAILURE,
            Err(e) => Err(e),
        },
        Command::FreePort => free_port(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ BenchError::Usage(_)) => {
            eprintln!("koru-bench: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("koru-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
