//! TPC-H through Flight SQL vs the same queries in-process with DataFusion.
//!
//! ```text
//! cargo bench -p lakehouse --bench tpch -- [--data-dir DIR] [--scale 1] [--runs 3]
//! ```
//! Creates the TPC-H tables (Delta Lake, once, in DIR), starts the Lakehouse
//! server on loopback, then for each of the 22 queries takes the median of
//! `runs` timings (after one warm-up) of:
//! - **in-process**: the same `QueryEngine` (same Delta tables, same settings),
//!   planned and collected directly;
//! - **Flight SQL**: GetFlightInfo + DoGet of every batch with arrow-rs's
//!   `FlightSqlServiceClient`, decoded to record batches.
//!
//! Prints a table and the total ratio (goal ≤ 1.10) and writes
//! `benches/results/tpch.json`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use arrow_flight::sql::client::FlightSqlServiceClient;
use futures::TryStreamExt;
use lakehouse::config::{ServeArgs, Settings};
use lakehouse::query::{QueryEngine, SessionDefaults};
use tonic::transport::Channel;

struct Args {
    data_dir: PathBuf,
    scale: f64,
    runs: usize,
    memory_limit: String,
}

fn args() -> Args {
    let mut args = Args {
        data_dir: dirs_cache().join("tpch-sf1"),
        scale: 1.0,
        runs: 3,
        memory_limit: "8GiB".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--data-dir" => args.data_dir = it.next().expect("--data-dir DIR").into(),
            "--scale" => args.scale = it.next().expect("--scale N").parse().expect("a number"),
            "--runs" => args.runs = it.next().expect("--runs N").parse().expect("a number"),
            "--memory-limit" => args.memory_limit = it.next().expect("--memory-limit SIZE"),
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

fn dirs_cache() -> PathBuf {
    std::env::var_os("LAKEHOUSE_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/tmp".into()))
                .join(".cache/lakehouse/bench")
        })
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

async fn flight_run(client: &mut FlightSqlServiceClient<Channel>, sql: &str) -> usize {
    let info = client.execute(sql.to_string(), None).await.unwrap();
    let mut rows = 0;
    for endpoint in info.endpoint {
        let mut stream = client.do_get(endpoint.ticket.unwrap()).await.unwrap();
        while let Some(batch) = stream.try_next().await.unwrap() {
            rows += batch.num_rows();
        }
    }
    rows
}

async fn local_run(engine: &QueryEngine, sql: &str) -> usize {
    let ctx = engine.session(&SessionDefaults::default());
    let plan = engine.plan(&ctx, sql).await.unwrap();
    let batches: Vec<_> = engine
        .execute(&ctx, plan)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    batches.iter().map(|b| b.num_rows()).sum()
}

fn main() {
    let args = args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(args));
}

async fn run(args: Args) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let serve = ServeArgs {
        data_dir: Some(args.data_dir.clone()),
        listen: Some("127.0.0.1:0".into()),
        memory_limit: Some(args.memory_limit.clone()),
        demo: Some(true),
        demo_scale: Some(args.scale),
        ..Default::default()
    };
    let settings = Settings::resolve(serve).unwrap();
    eprintln!(
        "data: {} (TPC-H SF{}; generated on first use)",
        args.data_dir.display(),
        args.scale
    );

    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server_settings = settings.clone();
    let server = tokio::spawn(async move {
        lakehouse::server::serve(
            server_settings,
            move |addr| {
                let _ = addr_tx.send(addr);
            },
            async move {
                let _ = stop_rx.await;
            },
        )
        .await
        .unwrap();
    });
    let addr = addr_rx.await.expect("server failed to start");
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = FlightSqlServiceClient::new(channel);

    let engine = lakehouse::server::open_engine(&settings).await.unwrap();

    let queries = lakehouse::demo::tpch_queries(&root.join("benches/tpch")).unwrap();

    println!(
        "{:<6} {:>8} {:>14} {:>14} {:>8}",
        "query", "rows", "in-process ms", "flight sql ms", "ratio"
    );
    let (mut total_local, mut total_flight) = (Duration::ZERO, Duration::ZERO);
    let mut results = Vec::new();
    for (name, sql) in queries {
        // Warm-up: file system cache, Delta log, plan caches.
        let rows = local_run(&engine, &sql).await;
        assert_eq!(
            flight_run(&mut client, &sql).await,
            rows,
            "{name}: row counts differ"
        );
        let (mut local, mut flight) = (Vec::new(), Vec::new());
        for _ in 0..args.runs {
            // Alternate the two paths so machine noise hits both alike.
            let started = Instant::now();
            local_run(&engine, &sql).await;
            local.push(started.elapsed());
            let started = Instant::now();
            flight_run(&mut client, &sql).await;
            flight.push(started.elapsed());
        }
        let (local, flight) = (median(local), median(flight));
        total_local += local;
        total_flight += flight;
        let ratio = flight.as_secs_f64() / local.as_secs_f64();
        println!(
            "{name:<6} {rows:>8} {:>14.1} {:>14.1} {ratio:>8.3}",
            ms(local),
            ms(flight)
        );
        results.push(format!(
            "{{\"query\":\"{name}\",\"rows\":{rows},\"in_process_ms\":{:.3},\"flight_sql_ms\":{:.3},\"ratio\":{ratio:.4}}}",
            ms(local),
            ms(flight)
        ));
    }
    let ratio = total_flight.as_secs_f64() / total_local.as_secs_f64();
    println!(
        "{:<6} {:>8} {:>14.1} {:>14.1} {ratio:>8.3}",
        "total",
        "",
        ms(total_local),
        ms(total_flight)
    );
    println!(
        "TPC-H SF{} total Flight SQL / in-process = {ratio:.3} (goal <= 1.10)",
        args.scale
    );

    let out = root.join("benches/results");
    std::fs::create_dir_all(&out).unwrap();
    let json = format!(
        "{{\"benchmark\":\"tpch\",\"scale\":{},\"runs\":{},\"total_in_process_ms\":{:.3},\"total_flight_sql_ms\":{:.3},\"ratio\":{ratio:.4},\"queries\":[{}]}}\n",
        args.scale,
        args.runs,
        ms(total_local),
        ms(total_flight),
        results.join(",")
    );
    std::fs::write(out.join("tpch.json"), json).unwrap();
    eprintln!("wrote {}", out.join("tpch.json").display());
    let _ = stop_tx.send(());
    let _ = server.await;
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
