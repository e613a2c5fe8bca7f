//! CSV ingest: `lakehouse.ingest.file` vs DataFusion's own CSV → Parquet, in-process.
//!
//! ```text
//! cargo bench -p lakehouse --bench csv_ingest -- [--dir DIR] [--scale 2]
//! ```
//! Generates TPC-H `lineitem` as CSV once (scale 2: about 1.5 GB, 12 M rows) in
//! DIR, then in one run:
//! - **Lakehouse**: the file-ingest job (the code behind the action, without the
//!   network) into a new Delta table: schema inference, parsing, Delta/Parquet
//!   write and commit, PII sampling and lineage included;
//! - **DataFusion**: `read_csv` (schema inferred) → `write_parquet` of the same file.
//!
//! Prints MB/s of both, the ratio and each side's peak RSS (reset between the two
//! with `/proc/self/clear_refs`), and writes `benches/results/csv_ingest.json`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::prelude::{CsvReadOptions, SessionConfig, SessionContext};
use lakehouse::config::{ServeArgs, Settings};
use lakehouse::ingest::file;
use lakehouse::server::open_engine;
use lakehouse_flight_ext::v1::{IngestFileRequest, JobState, job};
use tpchgen::csv::LineItemCsv;
use tpchgen::generators::LineItemGenerator;

fn main() {
    let mut dir = std::env::var("LAKEHOUSE_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/lakehouse/bench")
        })
        .join("csv");
    let mut scale = 2.0f64;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--dir" => dir = it.next().expect("--dir DIR").into(),
            "--scale" => scale = it.next().expect("--scale N").parse().expect("a number"),
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    let csv = dir.join(format!("lineitem-sf{scale}.csv"));
    if !csv.exists() {
        generate(&csv, scale);
    }
    let size = std::fs::metadata(&csv).unwrap().len();
    let mb = size as f64 / 1e6;
    println!("input: {} ({mb:.0} MB)", csv.display());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();

    // Lakehouse: the bucket is a fresh data directory; the CSV is hard-linked into it.
    let data = dir.join("lakehouse-data");
    let _ = std::fs::remove_dir_all(&data);
    let landing = data.join("buckets/primary/landing");
    std::fs::create_dir_all(&landing).unwrap();
    std::fs::hard_link(&csv, landing.join("lineitem.csv"))
        .or_else(|_| std::fs::copy(&csv, landing.join("lineitem.csv")).map(drop))
        .unwrap();
    reset_peak_rss();
    let (lakehouse_s, rows) = runtime.block_on(async {
        let settings = Settings::resolve(ServeArgs {
            data_dir: Some(data.clone()),
            memory_limit: Some("8GiB".into()),
            ..Default::default()
        })
        .unwrap();
        let engine = std::sync::Arc::new(open_engine(&settings).await.unwrap());
        let request = IngestFileRequest {
            path: "landing/lineitem.csv".into(),
            table: "lineitem".into(),
            ..Default::default()
        };
        let started = Instant::now();
        let last = file::ingest_and_wait(engine, &request).await.unwrap();
        let elapsed = started.elapsed().as_secs_f64();
        assert_eq!(last.state, JobState::Succeeded as i32, "{}", last.error);
        let Some(job::Result::Ingest(result)) = last.result else {
            panic!()
        };
        (elapsed, result.rows)
    });
    let lakehouse_rss = peak_rss_mib();
    std::fs::remove_dir_all(&data).ok();

    // DataFusion: the same file to Parquet, in-process.
    let out = dir.join("datafusion-out");
    let _ = std::fs::remove_dir_all(&out);
    reset_peak_rss();
    let datafusion_s = runtime.block_on(async {
        let ctx = SessionContext::new_with_config(SessionConfig::new());
        let started = Instant::now();
        let frame = ctx
            .read_csv(
                csv.to_str().unwrap(),
                CsvReadOptions::new().has_header(true),
            )
            .await
            .unwrap();
        frame
            .write_parquet(out.to_str().unwrap(), DataFrameWriteOptions::new(), None)
            .await
            .unwrap();
        started.elapsed().as_secs_f64()
    });
    let datafusion_rss = peak_rss_mib();
    std::fs::remove_dir_all(&out).ok();

    let lakehouse_mbps = mb / lakehouse_s;
    let datafusion_mbps = mb / datafusion_s;
    let ratio = lakehouse_mbps / datafusion_mbps;
    println!("rows: {rows}");
    println!(
        "lakehouse.ingest.file  {lakehouse_s:7.2} s  {lakehouse_mbps:7.1} MB/s  peak RSS {lakehouse_rss} MiB"
    );
    println!(
        "DataFusion CSV→Parquet {datafusion_s:7.2} s  {datafusion_mbps:7.1} MB/s  peak RSS {datafusion_rss} MiB"
    );
    println!("ratio Lakehouse / DataFusion: {ratio:.2}");
    let results = Path::new(env!("CARGO_MANIFEST_DIR")).join("../benches/results");
    std::fs::create_dir_all(&results).unwrap();
    let json = serde_json::json!({
        "input_bytes": size, "rows": rows, "scale": scale,
        "lakehouse_seconds": lakehouse_s, "lakehouse_mb_per_s": lakehouse_mbps, "lakehouse_peak_rss_mib": lakehouse_rss,
        "datafusion_seconds": datafusion_s, "datafusion_mb_per_s": datafusion_mbps, "datafusion_peak_rss_mib": datafusion_rss,
        "ratio": ratio,
    });
    std::fs::write(
        results.join("csv_ingest.json"),
        serde_json::to_vec_pretty(&json).unwrap(),
    )
    .unwrap();
}

fn generate(path: &Path, scale: f64) {
    println!("generating TPC-H lineitem at scale {scale} as CSV (once) ...");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let tmp = path.with_extension("tmp");
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp).unwrap());
    writeln!(out, "{}", LineItemCsv::header()).unwrap();
    for item in LineItemGenerator::new(scale, 1, 1).iter() {
        writeln!(out, "{}", LineItemCsv::new(item)).unwrap();
    }
    out.flush().unwrap();
    drop(out);
    std::fs::rename(&tmp, path).unwrap();
}

/// Resets the kernel's peak-RSS counter of this process (Linux).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}
