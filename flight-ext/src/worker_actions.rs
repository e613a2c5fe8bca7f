// Names shared by the server and its workers. Included (`include!`) by
// `flight-ext/src/lib.rs` and by `workers/lance/src/main.rs`: plain constants only.

/// `WorkerHealth`, empty body.
pub const HEALTH: &str = "health";
/// `FaissLoad` → `FaissIndexStats`.
pub const FAISS_LOAD: &str = "faiss.load";
/// `FaissDrop` → empty.
pub const FAISS_DROP: &str = "faiss.drop";
/// `FaissSearch` → `FaissHits`.
pub const FAISS_SEARCH: &str = "faiss.search";
/// `LanceIndexBuild` → `LanceStats`.
pub const LANCE_INDEX: &str = "lance.index";
/// `LanceSearch` → `LanceHits`.
pub const LANCE_SEARCH: &str = "lance.search";
/// `LanceDataset` → `LanceStats`.
pub const LANCE_OPTIMIZE: &str = "lance.optimize";
/// `LanceDataset` → `LanceStats`.
pub const LANCE_STATS: &str = "lance.stats";
/// `LanceDataset` → empty.
pub const LANCE_FORGET: &str = "lance.forget";
/// Environment variable carrying the bearer token a worker accepts.
pub const TOKEN_ENV: &str = "LAKEHOUSE_WORKER_TOKEN";
/// The line a worker prints on stdout once it listens: `LISTENING <addr>`.
pub const LISTENING: &str = "LISTENING";
