//! `lakehouse index`: create, search, evaluate and optimize vector indexes, take
//! rows of a lance index by id, and eval sets.

use std::path::PathBuf;
use std::time::Instant;

use clap::Subcommand;
use lakehouse_flight_ext::actions::{
    VECTOR_EVAL, VECTOR_EVAL_SET_CREATE, VECTOR_INDEX_CREATE, VECTOR_INDEX_OPTIMIZE,
};
use lakehouse_flight_ext::v1::{
    LanceIndexOptions, VectorEvalRequest, VectorEvalResult, VectorEvalSetCreateRequest,
    VectorIndexCreateRequest, VectorIndexOptimizeRequest, VectorIndexOptimizeResult,
    VectorSearchCommand, VectorSearchRequest, VectorTakeRequest,
};
use lakehouse_flight_ext::{VECTOR_SEARCH_TYPE_URL, VECTOR_TAKE_TYPE_URL};
use prost::Message;

use super::client::{CliError, Client};
use super::output::{Format, Sink};
use super::{JobFlags, client, print_json, some, start_job};

// Parsed once per process: the size of the largest variant (create's many flags) costs
// nothing worth an indirection.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum IndexCommand {
    /// Embed a table's text column (or take its column of precomputed vectors) and
    /// build an index over it.
    Create {
        /// Index name.
        name: String,
        #[arg(long, short = 't')]
        table: String,
        /// The text to embed.
        #[arg(
            long,
            required_unless_present = "vector_column",
            conflicts_with = "vector_column"
        )]
        text_column: Option<String>,
        /// Instead of --text-column: a column of vectors the table already holds
        /// (FixedSizeList<Float32> or List<Float32>), indexed as they are.
        #[arg(long)]
        vector_column: Option<String>,
        #[arg(long)]
        id_column: String,
        /// hnsw, flat, faiss (built by the Faiss worker from --factory) or lance (a Lance
        /// dataset in the home bucket, indexed by the Lance worker: --index-type …)
        /// [default: the profile's, else hnsw].
        #[arg(long)]
        backend: Option<String>,
        /// cosine, l2 or dot.
        #[arg(long, default_value = "cosine")]
        metric: String,
        /// Home bucket of the index's files [default: primary].
        #[arg(long)]
        bucket: Option<String>,
        /// Replace an index of the same name.
        #[arg(long)]
        replace: bool,
        /// HNSW neighbours per node.
        #[arg(long)]
        m: Option<u32>,
        /// HNSW candidates while building.
        #[arg(long)]
        ef_construction: Option<u32>,
        /// HNSW default candidates of a search.
        #[arg(long)]
        ef_search: Option<u32>,
        /// Faiss index_factory string, e.g. IVF256,Flat or HNSW32 [default: IVF{n},Flat].
        #[arg(long)]
        factory: Option<String>,
        /// Faiss and Lance IVF lists a search probes by default [default: 16 for Faiss,
        /// 20 for Lance].
        #[arg(long)]
        nprobe: Option<u32>,
        #[command(flatten)]
        lance: LanceFlags,
        /// Tokens per chunk of long texts (at most 254).
        #[arg(long)]
        chunk_tokens: Option<u32>,
        /// Tokens neighbouring chunks share.
        #[arg(long)]
        chunk_overlap: Option<u32>,
        /// What embeds the texts: builtin, or an [embedders.NAME] the server configures
        /// [default: the profile's, else builtin].
        #[arg(long)]
        embedder: Option<String>,
        /// The model profile the index belongs to (its embedder, backend and bucket are
        /// the defaults).
        #[arg(long)]
        profile: Option<String>,
        #[command(flatten)]
        job: JobFlags,
    },
    /// The k best rows for a text.
    Search {
        /// Index name.
        name: String,
        /// Query text.
        query: String,
        #[arg(short = 'k', long, default_value_t = 10)]
        k: u32,
        /// HNSW candidates.
        #[arg(long)]
        ef: Option<u32>,
        /// Faiss and Lance IVF lists probed.
        #[arg(long)]
        nprobe: Option<u32>,
        /// Lance IVF_PQ: candidates re-ranked exactly, as a multiple of k.
        #[arg(long)]
        refine_factor: Option<u32>,
        /// SQL predicate on the source table.
        #[arg(long)]
        filter: Option<String>,
        /// vector, text (BM25) or hybrid.
        #[arg(long, default_value = "vector")]
        mode: String,
        /// Source table columns to show beside each hit (comma-separated).
        #[arg(long, value_delimiter = ',')]
        columns: Vec<String>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
    },
    /// Rows of a lance index's dataset by document id (every chunk of each).
    Take {
        /// Index name.
        name: String,
        /// Document ids (the index's id column), comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        ids: Vec<i64>,
        /// Of id, chunk, vector (comma-separated; all when absent).
        #[arg(long, value_delimiter = ',')]
        columns: Vec<String>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
    },
    /// Fold the rows appended to a lance index into its IVF index.
    Optimize {
        /// Index name.
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Store an eval set: queries with their exact nearest rows.
    EvalSet {
        /// Eval set name.
        name: String,
        /// The index whose vectors define the truth.
        #[arg(long)]
        index: String,
        /// A query text (repeatable).
        #[arg(long = "query")]
        queries: Vec<String>,
        /// SQL whose first column is the query text.
        #[arg(long)]
        queries_sql: Option<String>,
        /// Rows of the index itself as the queries (their stored vectors).
        #[arg(long)]
        sample_rows: Option<u32>,
        /// Exact nearest rows kept per query.
        #[arg(long)]
        depth: Option<u32>,
        #[arg(long)]
        bucket: Option<String>,
        #[arg(long)]
        replace: bool,
        #[command(flatten)]
        job: JobFlags,
    },
    /// Recall and speed of an index against an eval set.
    Eval {
        /// Index name.
        name: String,
        #[arg(long)]
        eval_set: String,
        #[arg(short = 'k', long)]
        k: Option<u32>,
        /// HNSW candidate counts to try (comma-separated).
        #[arg(long, value_delimiter = ',')]
        ef: Vec<u32>,
        /// IVF partitions probed to try (comma-separated; Faiss, Lance).
        #[arg(long, value_delimiter = ',')]
        nprobe: Vec<u32>,
        /// Lance IVF_PQ refine factors to try (comma-separated).
        #[arg(long, value_delimiter = ',')]
        refine_factor: Vec<u32>,
        /// Embed the queries inside the timed loop (end-to-end latency).
        #[arg(long)]
        embed_queries: bool,
        #[arg(long)]
        json: bool,
    },
}

/// A knob an eval run used: its value, or "default" for the index's.
fn default_or(value: u32) -> String {
    if value == 0 {
        "default".into()
    } else {
        value.to_string()
    }
}

/// The `lance` backend's build options.
#[derive(Debug, clap::Args)]
pub struct LanceFlags {
    /// Lance: IVF_PQ, IVF_HNSW_SQ or IVF_FLAT [default: IVF_PQ].
    #[arg(long)]
    index_type: Option<String>,
    /// Lance: IVF partitions [default: ≈ √vectors].
    #[arg(long)]
    partitions: Option<u32>,
    /// Lance IVF_PQ: sub-vectors, dividing the dimension [default: d/8].
    #[arg(long)]
    sub_vectors: Option<u32>,
    /// Lance IVF_PQ: bits per code, 4 or 8 [default: 8].
    #[arg(long)]
    bits: Option<u32>,
    /// Lance IVF_PQ: default refine factor of searches [default: 4].
    #[arg(long)]
    refine_factor: Option<u32>,
    /// Lance: fold appended rows into the index past this fraction [default: 0.1].
    #[arg(long)]
    optimize_fraction: Option<f64>,
}

impl LanceFlags {
    /// The options, when any is given.
    fn options(self) -> Option<LanceIndexOptions> {
        let given = self.index_type.is_some()
            || self.partitions.is_some()
            || self.sub_vectors.is_some()
            || self.bits.is_some()
            || self.refine_factor.is_some()
            || self.optimize_fraction.is_some();
        given.then(|| LanceIndexOptions {
            index_type: self.index_type.unwrap_or_default(),
            partitions: self.partitions.unwrap_or_default(),
            sub_vectors: self.sub_vectors.unwrap_or_default(),
            bits: self.bits.unwrap_or_default(),
            refine_factor: self.refine_factor.unwrap_or_default(),
            optimize_fraction: self.optimize_fraction.unwrap_or_default(),
            ..LanceIndexOptions::default()
        })
    }
}

pub(super) async fn run(client: &mut Client, command: IndexCommand) -> Result<(), CliError> {
    match command {
        IndexCommand::Create {
            name,
            table,
            text_column,
            vector_column,
            id_column,
            backend,
            metric,
            bucket,
            replace,
            m,
            ef_construction,
            ef_search,
            factory,
            nprobe,
            lance,
            chunk_tokens,
            chunk_overlap,
            embedder,
            profile,
            job,
        } => {
            let request = VectorIndexCreateRequest {
                embedder: embedder.unwrap_or_default(),
                profile: profile.unwrap_or_default(),
                name,
                table,
                text_column: text_column.unwrap_or_default(),
                vector_column: vector_column.unwrap_or_default(),
                id_column,
                backend: backend.unwrap_or_default(),
                metric,
                m: m.unwrap_or_default(),
                ef_construction: ef_construction.unwrap_or_default(),
                ef_search: ef_search.unwrap_or_default(),
                bucket: some(bucket),
                replace,
                detach: job.detach,
                chunk_tokens: chunk_tokens.unwrap_or_default(),
                chunk_overlap,
                factory: factory.unwrap_or_default(),
                nprobe: nprobe.unwrap_or_default(),
                lance: lance.options(),
            };
            start_job(client, VECTOR_INDEX_CREATE, request.encode_to_vec(), &job).await
        }
        IndexCommand::Search {
            name,
            query,
            k,
            ef,
            nprobe,
            refine_factor,
            filter,
            mode,
            columns,
            format,
            output,
        } => {
            let command = VectorSearchCommand {
                search: Some(VectorSearchRequest {
                    index: name,
                    query,
                    k,
                    ef: ef.unwrap_or_default(),
                    nprobe: nprobe.unwrap_or_default(),
                    refine_factor: refine_factor.unwrap_or_default(),
                    filter: some(filter),
                    mode,
                    ..VectorSearchRequest::default()
                }),
                columns,
            };
            let command = (VECTOR_SEARCH_TYPE_URL, command.encode_to_vec());
            stream_command(client, command, format, output, "hits").await
        }
        IndexCommand::Take {
            name,
            ids,
            columns,
            format,
            output,
        } => {
            let request = VectorTakeRequest {
                index: name,
                ids,
                columns,
            };
            let command = (VECTOR_TAKE_TYPE_URL, request.encode_to_vec());
            stream_command(client, command, format, output, "rows").await
        }
        IndexCommand::Optimize { name, json } => {
            let request = VectorIndexOptimizeRequest { index: name };
            let result: VectorIndexOptimizeResult =
                client.action(VECTOR_INDEX_OPTIMIZE, &request).await?;
            if json {
                return print_json(&result);
            }
            println!(
                "index {}: {} rows in {} fragments, {} indexed ({}), {} searched exactly; {} bytes; {:.3} s",
                result.index,
                result.rows,
                result.fragments,
                result.indexed_rows,
                if result.index_type.is_empty() {
                    "no IVF index yet"
                } else {
                    &result.index_type
                },
                result.unindexed_rows,
                result.bytes,
                result.seconds
            );
            Ok(())
        }
        IndexCommand::EvalSet {
            name,
            index,
            queries,
            queries_sql,
            sample_rows,
            depth,
            bucket,
            replace,
            job,
        } => {
            let given = [
                !queries.is_empty(),
                queries_sql.is_some(),
                sample_rows.is_some(),
            ];
            if given.iter().filter(|g| **g).count() != 1 {
                return Err(CliError::local(
                    "give one of --query (repeatable), --queries-sql and --sample-rows",
                ));
            }
            let request = VectorEvalSetCreateRequest {
                name,
                index,
                queries,
                queries_sql: some(queries_sql),
                sample_rows: sample_rows.unwrap_or_default(),
                depth: depth.unwrap_or_default(),
                bucket: some(bucket),
                replace,
                detach: job.detach,
            };
            start_job(
                client,
                VECTOR_EVAL_SET_CREATE,
                request.encode_to_vec(),
                &job,
            )
            .await
        }
        IndexCommand::Eval {
            name,
            eval_set,
            k,
            ef,
            nprobe,
            refine_factor,
            embed_queries,
            json,
        } => {
            let request = VectorEvalRequest {
                index: name,
                eval_set,
                k: k.unwrap_or_default(),
                ef,
                embed_queries,
                nprobe,
                refine_factor,
            };
            let result: VectorEvalResult = client.action(VECTOR_EVAL, &request).await?;
            if json {
                return print_json(&result);
            }
            println!(
                "index {} ({}, {} vectors) against eval set {}: {} queries, recall@{}",
                result.index,
                result.backend,
                result.vectors,
                result.eval_set,
                result.queries,
                result.k
            );
            let mut table = comfy_table::Table::new();
            table.load_preset(comfy_table::presets::ASCII_MARKDOWN);
            table.set_header([
                "ef",
                "nprobe",
                "refine",
                "recall mean",
                "recall p5",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "QPS",
            ]);
            for run in &result.runs {
                table.add_row([
                    run.ef.to_string(),
                    default_or(run.nprobe),
                    default_or(run.refine_factor),
                    format!("{:.4}", run.recall_mean),
                    format!("{:.4}", run.recall_p5),
                    format!("{:.3}", run.latency_p50_ms),
                    format!("{:.3}", run.latency_p95_ms),
                    format!("{:.3}", run.latency_p99_ms),
                    format!("{:.0}", run.qps),
                ]);
            }
            println!("{table}");
            if !result.warning.is_empty() {
                eprintln!("warning: {}", result.warning);
            }
            Ok(())
        }
    }
}

/// Plans `command` (a type URL and its message) and streams its Arrow answer to
/// `format` / `output`, counting the `noun`s written in table format.
async fn stream_command(
    client: &mut Client,
    (type_url, body): (&str, Vec<u8>),
    format: Format,
    output: Option<PathBuf>,
    noun: &str,
) -> Result<(), CliError> {
    let started = Instant::now();
    let info = client.plan_command(type_url, body).await?;
    let schema = client::info_schema(&info)?;
    let batches = client.fetch(&info).await?;
    let sink = Sink {
        format,
        output,
        max_rows: usize::MAX,
    };
    let rows = sink.write(schema, Box::pin(batches)).await?;
    if format == Format::Table {
        println!(
            "({rows} {noun} in {:.3} s)",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
