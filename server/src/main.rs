//! `corelog`: a Kafka-compatible broker on a thread-per-core io_uring storage engine.

mod alloc;
mod broker;
mod cleanup;
mod config;
mod config_entries;
mod connection;
mod groups;
mod handlers;
mod internal_topic;
mod lag;
mod metadata;
mod metrics;
mod producer_ids;
mod producer_state;
mod topics;
mod txn;
mod wire;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// See [`alloc`]: wire-sized reservations must not abort the broker.
#[global_allocator]
static GLOBAL: alloc::BrokerAllocator = alloc::BrokerAllocator;

#[derive(Parser)]
#[command(
    name = "corelog",
    version,
    about = "A Kafka-compatible broker for Linux on io_uring"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the broker (embedded defaults: port 9092, ./corelog-data, one shard per core).
    Serve {
        /// A Kafka `server.properties` file (Kafka's key names).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Set one property, after the file: `--set log.dirs=/data --set num.partitions=3`.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// Consumer-group lag per group, topic and partition (the columns of Kafka's
    /// `kafka-consumer-groups --describe`).
    Lag {
        /// One group; without it, every group the broker lists.
        #[arg(long)]
        group: Option<String>,
        /// The broker to ask, HOST:PORT (a comma-separated list is tried in order).
        #[arg(long, default_value = "127.0.0.1:9092")]
        bootstrap: String,
        /// Measure lag to the last stable offset, as a read_committed consumer sees it.
        #[arg(long)]
        read_committed: bool,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let (config, set) = match Cli::parse().command {
        Command::Serve { config, set } => (config, set),
        Command::Lag {
            group,
            bootstrap,
            read_committed,
        } => return lag::run(&bootstrap, group.as_deref(), read_committed),
    };
    let mut props = match config {
        Some(path) => match std::fs::read_to_string(&path) {
            Ok(text) => config::parse_properties(&text),
            Err(e) => {
                eprintln!("corelog: cannot read {}: {e}", path.display());
                return ExitCode::from(2);
            }
        },
        None => Default::default(),
    };
    for kv in set {
        let Some((k, v)) = kv.split_once('=') else {
            eprintln!("corelog: --set wants KEY=VALUE, got {kv:?}");
            return ExitCode::from(2);
        };
        props.insert(k.trim().to_string(), v.trim().to_string());
    }
    let (config, unknown) = match config::BrokerConfig::from_properties(&props) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("corelog: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    for key in &unknown {
        tracing::warn!(key, "unknown configuration key (not applied)");
    }
    for key in &config.ignored {
        tracing::info!(
            key,
            "configuration key accepted but not applicable on a single node"
        );
    }
    match broker::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("corelog: {e}");
            ExitCode::FAILURE
        }
    }
}
