//! `lakehouse job`: list, show, follow and cancel jobs; and how every command that
//! starts a job waits for it (progress bar, or `--detach`) and reports its end.

use clap::Subcommand;
use futures::StreamExt;
use lakehouse_flight_ext::actions::{JOB_CANCEL, JOB_LIST, JOB_STATUS};
use lakehouse_flight_ext::v1::{
    Job, JobCancelRequest, JobList, JobListRequest, JobStatusRequest, job,
};
use prost::Message;

use super::client::{CliError, Client};
use super::progress::Followed;
use super::{JobFlags, print_json, profile, progress};
use lakehouse_flight_ext::names::state_name;

#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// Jobs, newest first.
    List {
        /// Only running jobs.
        #[arg(long)]
        running: bool,
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// One job; with --follow, its progress until it ends.
    Status {
        id: String,
        #[arg(long, short = 'f')]
        follow: bool,
        #[arg(long)]
        json: bool,
    },
    /// Cancel a running job.
    Cancel { id: String },
}

/// Starts a job with action `name` and follows it (or not, with --detach); prints
/// its outcome.
pub(super) async fn start_job(
    client: &mut Client,
    name: &str,
    body: Vec<u8>,
    flags: &JobFlags,
) -> Result<(), CliError> {
    let snapshots = client.action_stream(name, body).await?;
    finish_job(client, Box::pin(snapshots), flags).await
}

pub(super) async fn finish_job(
    client: &mut Client,
    snapshots: std::pin::Pin<
        Box<dyn futures::Stream<Item = Result<bytes::Bytes, CliError>> + Send>,
    >,
    flags: &JobFlags,
) -> Result<(), CliError> {
    if flags.detach {
        let mut snapshots = snapshots;
        let first = snapshots
            .next()
            .await
            .ok_or_else(|| CliError::local("the server did not answer with the job"))??;
        let job = decode_job(first)?;
        if flags.json {
            return print_json(&job);
        }
        println!("job {} started: {}", job.id, job.description);
        println!("follow it with: lakehouse job status {} --follow", job.id);
        return Ok(());
    }
    match progress::follow(client, snapshots, flags.quiet).await? {
        Followed::Detached(id) => {
            eprintln!(
                "job {id} keeps running on the server.\n  follow: lakehouse job status {id} --follow\n  cancel: lakehouse job cancel {id}"
            );
            Ok(())
        }
        Followed::Ended(job) => report_job(&job, flags.json),
    }
}

pub(super) fn decode_job(body: bytes::Bytes) -> Result<Job, CliError> {
    Job::decode(body).map_err(|e| CliError::local(format!("unreadable job from the server: {e}")))
}

/// Prints a finished job's result; a failed or cancelled job is an error.
pub(super) fn report_job(job: &Job, json: bool) -> Result<(), CliError> {
    if json {
        print_json(job)?;
    }
    if let Some(error) = progress::failure(job) {
        return Err(error);
    }
    if json {
        return Ok(());
    }
    let seconds = seconds_between(&job.created_at, &job.finished_at);
    match &job.result {
        Some(job::Result::Ingest(r)) => {
            println!(
                "ingested {} rows into {} (version {}) in {:.1} s",
                r.rows, r.table, r.version, r.seconds
            );
            if r.rejected_rows > 0 {
                println!("{} rows rejected into {}", r.rejected_rows, r.rejects_table);
            }
            if !r.chunks_table.is_empty() {
                println!("{} chunk rows in {}", r.chunk_rows, r.chunks_table);
            }
            for error in &r.file_errors {
                println!("skipped {}: {}", error.file, error.error);
            }
            let pii: Vec<String> = r
                .pii
                .iter()
                .map(|c| format!("{} ({})", c.column, c.entity_type))
                .collect();
            if !pii.is_empty() {
                println!("PII found: {}", pii.join(", "));
            }
        }
        Some(job::Result::VectorIndex(i)) => println!(
            "index {} over {}.{}: {} vectors for {} rows, {} in bucket {} ({:.1} s)",
            i.name, i.table, i.text_column, i.vectors, i.rows, i.backend, i.bucket, seconds
        ),
        Some(job::Result::VectorEvalSet(e)) => println!(
            "eval set {} for index {}: {} queries, {} true neighbours each",
            e.name, e.index, e.queries, e.depth
        ),
        Some(job::Result::ProfileActivation(a)) => profile::print_activation(a),
        None => println!("job {} finished: {}", job.id, job.description),
    }
    Ok(())
}

pub(super) fn seconds_between(start: &str, end: &str) -> f64 {
    match (
        chrono::DateTime::parse_from_rfc3339(start),
        chrono::DateTime::parse_from_rfc3339(end),
    ) {
        (Ok(a), Ok(b)) => (b - a).num_milliseconds() as f64 / 1000.0,
        _ => 0.0,
    }
}

pub(super) async fn run(client: &mut Client, command: JobCommand) -> Result<(), CliError> {
    match command {
        JobCommand::List {
            running,
            limit,
            json,
        } => {
            let request = JobListRequest {
                running_only: running,
                limit,
            };
            let list: JobList = client.action(JOB_LIST, &request).await?;
            if json {
                return print_json(&list);
            }
            let mut table = comfy_table::Table::new();
            table.load_preset(comfy_table::presets::ASCII_MARKDOWN);
            table.set_header(["id", "state", "phase", "created", "description"]);
            for job in &list.jobs {
                let phase = job
                    .progress
                    .as_ref()
                    .map(|p| p.phase.clone())
                    .unwrap_or_default();
                table.add_row([
                    job.id.clone(),
                    state_name(job.state).to_string(),
                    phase,
                    job.created_at.clone(),
                    job.description.clone(),
                ]);
            }
            println!("{table}");
            Ok(())
        }
        JobCommand::Status { id, follow, json } => {
            let request = JobStatusRequest { job_id: id, follow };
            if follow {
                let flags = JobFlags {
                    detach: false,
                    quiet: false,
                    json,
                };
                return start_job(client, JOB_STATUS, request.encode_to_vec(), &flags).await;
            }
            let job: Job = client.action(JOB_STATUS, &request).await?;
            if json {
                return print_json(&job);
            }
            let progress = job.progress.clone().unwrap_or_default();
            println!("job {}: {}", job.id, job.description);
            println!("state: {} ({})", state_name(job.state), progress.phase);
            if progress.rows > 0 {
                println!("rows: {}", progress.rows);
            }
            if let Some(percent) = progress.percent {
                println!("done: {percent:.0}%");
            }
            if !job.error.is_empty() {
                println!("error ({}): {}", job.error_code, job.error);
            }
            Ok(())
        }
        JobCommand::Cancel { id } => {
            let job: Job = client
                .action(JOB_CANCEL, &JobCancelRequest { job_id: id })
                .await?;
            println!("job {}: {}", job.id, state_name(job.state));
            Ok(())
        }
    }
}
