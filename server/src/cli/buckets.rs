//! `lakehouse bucket` and `lakehouse table`: storage buckets, moving indexes between
//! them, and table maintenance (vacuum).

use clap::Subcommand;
use lakehouse_flight_ext::actions::{
    BUCKET_ADD, BUCKET_LIST, BUCKET_MOVE_INDEX, BUCKET_REMOVE, TABLE_VACUUM,
};
use lakehouse_flight_ext::v1::{
    BucketAddRequest, BucketInfo, BucketList, BucketListRequest, BucketMoveIndexRequest,
    BucketRemoveRequest, BucketRemoveResult, TableVacuumRequest, TableVacuumResult,
};
use prost::Message;

use super::client::{CliError, Client};
use super::{JobFlags, print_json, start_job};

#[derive(Debug, Subcommand)]
pub enum BucketCommand {
    /// Register a bucket: a local folder (/path or file:///path) or s3://bucket/prefix.
    Add {
        name: String,
        /// /folder, file:///folder or s3://bucket/prefix.
        #[arg(value_name = "URL")]
        location: String,
        #[arg(long)]
        json: bool,
    },
    /// Unregister a bucket (never primary or rescue).
    Remove {
        name: String,
        /// Also when it holds tables, indexes or files (they are dropped from the
        /// catalog; the files stay).
        #[arg(long)]
        force: bool,
        #[arg(long)]
        json: bool,
    },
    /// Buckets and what each holds.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Move a vector index's files to another bucket.
    Move {
        /// Index name.
        index: String,
        /// The new home bucket.
        bucket: String,
        #[command(flatten)]
        job: JobFlags,
    },
}

#[derive(Debug, Subcommand)]
pub enum TableCommand {
    /// Delete data files no version reads: those of writes that never committed, and
    /// those that commits older than --retain-hours removed (older versions then can
    /// no longer be read).
    Vacuum {
        /// "schema.table" or "table".
        table: String,
        /// Keep what commits of the last this-many hours removed (server default 168).
        #[arg(long, value_name = "HOURS")]
        retain_hours: Option<f64>,
        /// Only report what would be deleted.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
}

pub(super) fn bucket_table(buckets: &[BucketInfo]) -> comfy_table::Table {
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::ASCII_MARKDOWN);
    table.set_header(["name", "kind", "url", "tables", "indexes", "eval sets"]);
    for b in buckets {
        let name = if b.builtin {
            format!("{} (built in)", b.name)
        } else {
            b.name.clone()
        };
        table.add_row([
            name,
            b.kind.clone(),
            b.url.clone(),
            b.tables.to_string(),
            b.indexes.to_string(),
            b.eval_sets.to_string(),
        ]);
    }
    table
}

pub(super) async fn run_table(client: &mut Client, command: TableCommand) -> Result<(), CliError> {
    let TableCommand::Vacuum {
        table,
        retain_hours,
        dry_run,
        json,
    } = command;
    let result: TableVacuumResult = client
        .action(
            TABLE_VACUUM,
            &TableVacuumRequest {
                table,
                retain_hours,
                dry_run,
            },
        )
        .await?;
    if json {
        return print_json(&result);
    }
    let verb = if result.dry_run {
        "would delete"
    } else {
        "deleted"
    };
    println!(
        "{}: {verb} {} files ({} bytes): {} of writes that never committed, {} removed by old commits, {} unfinished uploads",
        result.table,
        result.uncommitted_files + result.expired_files + result.staged_files,
        result.bytes,
        result.uncommitted_files,
        result.expired_files,
        result.staged_files,
    );
    println!(
        "versions {} to {} can be read",
        result.oldest_readable_version, result.version
    );
    Ok(())
}

pub(super) async fn run_bucket(
    client: &mut Client,
    command: BucketCommand,
) -> Result<(), CliError> {
    match command {
        BucketCommand::Add {
            name,
            location,
            json,
        } => {
            let info: BucketInfo = client
                .action(
                    BUCKET_ADD,
                    &BucketAddRequest {
                        name,
                        url: location,
                    },
                )
                .await?;
            if json {
                return print_json(&info);
            }
            println!("bucket {} added: {} ({})", info.name, info.url, info.kind);
            Ok(())
        }
        BucketCommand::Remove { name, force, json } => {
            let result: BucketRemoveResult = client
                .action(BUCKET_REMOVE, &BucketRemoveRequest { name: name.clone(), force })
                .await
                .map_err(|e| {
                    if e.code == Some(tonic::Code::FailedPrecondition) {
                        e.with_hint(format!(
                            "lakehouse bucket move moves indexes out first; or remove it anyway with: lakehouse bucket remove {name} --force"
                        ))
                    } else {
                        e
                    }
                })?;
            if json {
                return print_json(&result);
            }
            println!("bucket {name} removed");
            for (what, names) in [
                ("tables", &result.dropped_tables),
                ("vector indexes", &result.dropped_indexes),
                ("eval sets", &result.dropped_eval_sets),
            ] {
                if !names.is_empty() {
                    println!("dropped from the catalog: {what} {}", names.join(", "));
                }
            }
            Ok(())
        }
        BucketCommand::List { json } => {
            let list: BucketList = client.action(BUCKET_LIST, &BucketListRequest {}).await?;
            if json {
                return print_json(&list);
            }
            println!("{}", bucket_table(&list.buckets));
            Ok(())
        }
        BucketCommand::Move { index, bucket, job } => {
            let request = BucketMoveIndexRequest {
                index,
                bucket,
                detach: job.detach,
            };
            start_job(client, BUCKET_MOVE_INDEX, request.encode_to_vec(), &job).await
        }
    }
}
