//! The client side of the `lakehouse` command: `sql`, `ingest`, `index`, `bucket`,
//! `profile` and `job` talk Flight SQL (and the `lakehouse.*` actions) to a server.
//!
//! Owns: argument parsing of the client subcommands, output formats, progress bars.
//! May call: `lakehouse_flight_ext` only (the protocol, job-state and code names);
//! never the server's internals: everything goes over the wire, as for any client.

mod buckets;
pub(crate) mod client;
mod index;
mod ingest;
mod jobs;
mod output;
mod profile;
mod progress;
pub(crate) mod sql;

use clap::{Args, Subcommand, ValueEnum};
use lakehouse_flight_ext::v1::IngestMode;
use serde::Serialize;

pub use buckets::{BucketCommand, TableCommand};
pub use client::{CliError, Client, ConnectArgs};
pub use index::IndexCommand;
pub use ingest::{DatabaseArgs, FileKind, IngestCommand};
pub use jobs::JobCommand;
use jobs::{decode_job, report_job, start_job};

/// The client subcommands.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Run SQL: an interactive prompt, or statements given with -c / -f.
    Sql {
        #[command(flatten)]
        connect: ConnectArgs,
        #[command(flatten)]
        args: sql::SqlArgs,
    },
    /// Load data into a table, as a job with a progress bar.
    Ingest {
        #[command(flatten)]
        connect: ConnectArgs,
        #[command(subcommand)]
        command: IngestCommand,
    },
    /// Vector indexes: build, search, measure.
    Index {
        #[command(flatten)]
        connect: ConnectArgs,
        #[command(subcommand)]
        command: IndexCommand,
    },
    /// Table maintenance.
    Table {
        #[command(flatten)]
        connect: ConnectArgs,
        #[command(subcommand)]
        command: TableCommand,
    },
    /// Buckets: the places in object storage that hold tables and indexes.
    Bucket {
        #[command(flatten)]
        connect: ConnectArgs,
        #[command(subcommand)]
        command: BucketCommand,
    },
    /// Model profiles and the GPU slot.
    Profile {
        #[command(flatten)]
        connect: ConnectArgs,
        #[command(subcommand)]
        command: profile::ProfileCommand,
    },
    /// Jobs: long work running on the server.
    Job {
        #[command(flatten)]
        connect: ConnectArgs,
        #[command(subcommand)]
        command: JobCommand,
    },
}

/// Flags every job-starting command shares.
#[derive(Debug, Clone, Args)]
pub struct JobFlags {
    /// Start the job and return at once, printing its id.
    #[arg(long)]
    pub detach: bool,
    /// No progress bar.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Mode {
    /// Create the table; fails if it exists.
    Create,
    /// Append; creates the table if needed.
    Append,
    /// Replace the table's rows and schema.
    Replace,
}

impl Mode {
    fn proto(self) -> i32 {
        match self {
            Self::Create => IngestMode::Create as i32,
            Self::Append => IngestMode::Append as i32,
            Self::Replace => IngestMode::Replace as i32,
        }
    }
}

fn key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{text:?} is not NAME=TYPE"))
}

/// Runs a client subcommand; the exit code on failure comes with the error.
pub async fn run(command: ClientCommand) -> Result<(), CliError> {
    match command {
        ClientCommand::Sql { connect, args } => {
            sql::run(&mut Client::connect(&connect).await?, args).await
        }
        ClientCommand::Ingest { connect, command } => {
            ingest::run(&mut Client::connect(&connect).await?, command).await
        }
        ClientCommand::Index { connect, command } => {
            index::run(&mut Client::connect(&connect).await?, command).await
        }
        ClientCommand::Table { connect, command } => {
            buckets::run_table(&mut Client::connect(&connect).await?, command).await
        }
        ClientCommand::Bucket { connect, command } => {
            buckets::run_bucket(&mut Client::connect(&connect).await?, command).await
        }
        ClientCommand::Profile { connect, command } => {
            profile::run(&mut Client::connect(&connect).await?, command).await
        }
        ClientCommand::Job { connect, command } => {
            jobs::run(&mut Client::connect(&connect).await?, command).await
        }
    }
}

fn print_json(message: &impl Serialize) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(message)
        .map_err(|e| CliError::local(format!("encoding JSON: {e}")))?;
    println!("{text}");
    Ok(())
}

fn some(text: Option<String>) -> String {
    text.unwrap_or_default()
}
