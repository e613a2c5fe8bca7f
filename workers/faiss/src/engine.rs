//! A safe wrapper over the C shim (`shim.cpp`) around Faiss's C++ API. Built
//! without Faiss (`cfg(not(faiss))`), every constructor fails with [`missing`].

use std::ffi::CString;
use std::path::Path;

/// A Faiss failure, in Faiss's words (or why Faiss is not there).
#[derive(Debug, Clone, PartialEq)]
pub struct EngineError(pub String);

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether this build has Faiss, and if not, how to get it.
pub fn availability() -> Result<(), EngineError> {
    if cfg!(faiss) { Ok(()) } else { Err(missing()) }
}

/// The error of a worker built without Faiss.
pub fn missing() -> EngineError {
    EngineError(
        "this Faiss worker was built without Faiss (libfaiss was not found at build time): \
         install it (Debian: apt-get install libfaiss-dev libopenblas-dev, or set FAISS_DIR) \
         and rebuild with cargo build --workspace"
            .into(),
    )
}

#[cfg(faiss)]
mod ffi {
    use std::ffi::{c_char, c_int, c_void};

    unsafe extern "C" {
        pub fn lh_faiss_new(
            dimension: c_int,
            factory: *const c_char,
            inner_product: c_int,
            err: *mut c_char,
            err_len: usize,
        ) -> *mut c_void;
        pub fn lh_faiss_free(index: *mut c_void);
        pub fn lh_faiss_ntotal(index: *const c_void) -> i64;
        pub fn lh_faiss_is_trained(index: *const c_void) -> c_int;
        pub fn lh_faiss_dimension(index: *const c_void) -> c_int;
        pub fn lh_faiss_hnsw_ef(index: *const c_void) -> c_int;
        pub fn lh_faiss_set_hnsw_ef(index: *mut c_void, ef: c_int);
        pub fn lh_faiss_train(
            index: *mut c_void,
            n: i64,
            vectors: *const f32,
            err: *mut c_char,
            err_len: usize,
        ) -> c_int;
        pub fn lh_faiss_add(
            index: *mut c_void,
            n: i64,
            vectors: *const f32,
            err: *mut c_char,
            err_len: usize,
        ) -> c_int;
        #[allow(clippy::too_many_arguments)]
        pub fn lh_faiss_search(
            index: *const c_void,
            nq: i64,
            queries: *const f32,
            k: i64,
            nprobe: i64,
            ef_search: i64,
            allowed: *const u8,
            allowed_bits: i64,
            distances: *mut f32,
            ids: *mut i64,
            err: *mut c_char,
            err_len: usize,
        ) -> c_int;
        pub fn lh_faiss_write(
            index: *const c_void,
            path: *const c_char,
            err: *mut c_char,
            err_len: usize,
        ) -> c_int;
        pub fn lh_faiss_read(path: *const c_char, err: *mut c_char, err_len: usize) -> *mut c_void;
    }
}

/// Room for a Faiss error message.
#[cfg(faiss)]
const ERR_LEN: usize = 1024;

#[cfg(faiss)]
fn message(buffer: &[u8]) -> EngineError {
    let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
    let text = String::from_utf8_lossy(&buffer[..end]);
    // Faiss prefixes its messages with the C++ file and line that threw.
    let text = text
        .split_once(" Error: ")
        .map_or(text.as_ref(), |(_, rest)| rest)
        .trim();
    EngineError(if text.is_empty() {
        "Faiss failed without a message".into()
    } else {
        text.to_string()
    })
}

fn c_string(text: &str, what: &str) -> Result<CString, EngineError> {
    CString::new(text).map_err(|_| EngineError(format!("{what} contains a NUL byte")))
}

/// One Faiss index (owned; freed on drop). Searches take `&self` and may run
/// concurrently (Faiss's const search is thread-safe); training and adding take
/// `&mut self`.
#[derive(Debug)]
pub struct Index {
    #[cfg(faiss)]
    raw: std::ptr::NonNull<std::ffi::c_void>,
}

// SAFETY: a Faiss index has no thread affinity; `&self` methods call only const
// Faiss methods (search, ntotal, write), which Faiss allows from several threads,
// and mutation goes through `&mut self`.
unsafe impl Send for Index {}
// SAFETY: see `Send`.
unsafe impl Sync for Index {}

#[cfg(faiss)]
impl Drop for Index {
    fn drop(&mut self) {
        // SAFETY: `raw` came from lh_faiss_new/read and is freed once, here.
        unsafe { ffi::lh_faiss_free(self.raw.as_ptr()) }
    }
}

#[cfg(faiss)]
impl Index {
    /// `index_factory(dimension, factory, metric)`.
    pub fn new(dimension: usize, factory: &str, inner_product: bool) -> Result<Self, EngineError> {
        let d = i32::try_from(dimension)
            .ok()
            .filter(|&d| d > 0)
            .ok_or_else(|| EngineError(format!("dimension {dimension} is out of range")))?;
        let factory = c_string(factory, "the factory string")?;
        let mut err = [0u8; ERR_LEN];
        // SAFETY: valid C string and error buffer of the stated length.
        let raw = unsafe {
            ffi::lh_faiss_new(
                d,
                factory.as_ptr(),
                i32::from(inner_product),
                err.as_mut_ptr().cast(),
                ERR_LEN,
            )
        };
        std::ptr::NonNull::new(raw)
            .map(|raw| Self { raw })
            .ok_or_else(|| message(&err))
    }

    /// Reads an index written by [`Index::write`].
    pub fn read(path: &Path) -> Result<Self, EngineError> {
        let path = c_string(&path.to_string_lossy(), "the path")?;
        let mut err = [0u8; ERR_LEN];
        // SAFETY: valid C string and error buffer.
        let raw = unsafe { ffi::lh_faiss_read(path.as_ptr(), err.as_mut_ptr().cast(), ERR_LEN) };
        std::ptr::NonNull::new(raw)
            .map(|raw| Self { raw })
            .ok_or_else(|| message(&err))
    }

    pub fn count(&self) -> usize {
        // SAFETY: `raw` is a live index.
        usize::try_from(unsafe { ffi::lh_faiss_ntotal(self.raw.as_ptr()) }).unwrap_or(0)
    }

    pub fn is_trained(&self) -> bool {
        // SAFETY: `raw` is a live index.
        unsafe { ffi::lh_faiss_is_trained(self.raw.as_ptr()) != 0 }
    }

    pub fn dimension(&self) -> usize {
        // SAFETY: `raw` is a live index.
        usize::try_from(unsafe { ffi::lh_faiss_dimension(self.raw.as_ptr()) }).unwrap_or(0)
    }

    /// The HNSW candidates a search keeps (0: not an HNSW index).
    pub fn hnsw_ef(&self) -> usize {
        // SAFETY: `raw` is a live index.
        usize::try_from(unsafe { ffi::lh_faiss_hnsw_ef(self.raw.as_ptr()) }).unwrap_or(0)
    }

    /// Sets the HNSW candidates of later searches (no-op for other indexes). Faiss
    /// 1.7.3 ignores a per-search efSearch, hence `&mut self`.
    pub fn set_hnsw_ef(&mut self, ef: usize) {
        let ef = i32::try_from(ef.max(1)).unwrap_or(i32::MAX);
        // SAFETY: `raw` is a live index, exclusively borrowed.
        unsafe { ffi::lh_faiss_set_hnsw_ef(self.raw.as_ptr(), ef) }
    }

    fn rows(&self, vectors: &[f32]) -> Result<i64, EngineError> {
        let d = self.dimension();
        if d == 0 || !vectors.len().is_multiple_of(d) {
            return Err(EngineError(format!(
                "{} values are not whole vectors of {d}",
                vectors.len()
            )));
        }
        i64::try_from(vectors.len() / d).map_err(|e| EngineError(e.to_string()))
    }

    /// Runs `step` (train or add) over `vectors` (row-major, `dimension` values each).
    fn with_rows(
        &mut self,
        vectors: &[f32],
        step: unsafe extern "C" fn(
            *mut std::ffi::c_void,
            i64,
            *const f32,
            *mut std::ffi::c_char,
            usize,
        ) -> std::ffi::c_int,
    ) -> Result<(), EngineError> {
        let n = self.rows(vectors)?;
        let mut err = [0u8; ERR_LEN];
        // SAFETY: `vectors` holds n rows of d floats; error buffer of ERR_LEN; `step`
        // is lh_faiss_train or lh_faiss_add, which take exactly these.
        let ok = unsafe {
            step(
                self.raw.as_ptr(),
                n,
                vectors.as_ptr(),
                err.as_mut_ptr().cast(),
                ERR_LEN,
            )
        };
        if ok == 1 { Ok(()) } else { Err(message(&err)) }
    }

    /// Trains on `vectors` (row-major, `dimension` values each).
    pub fn train(&mut self, vectors: &[f32]) -> Result<(), EngineError> {
        self.with_rows(vectors, ffi::lh_faiss_train)
    }

    /// Appends `vectors`; they take the next keys (positions).
    pub fn add(&mut self, vectors: &[f32]) -> Result<(), EngineError> {
        self.with_rows(vectors, ffi::lh_faiss_add)
    }

    /// The `k` nearest keys to `query` with their distances, closest first, among
    /// the keys set in `allowed` (a bitmap of `allowed_bits`) when given.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        nprobe: usize,
        ef_search: usize,
        allowed: Option<(&[u8], usize)>,
    ) -> Result<Vec<(u64, f32)>, EngineError> {
        if query.len() != self.dimension() {
            return Err(EngineError(format!(
                "the query has {} values, the index {}",
                query.len(),
                self.dimension()
            )));
        }
        let k = k.min(self.count());
        if k == 0 {
            return Ok(Vec::new());
        }
        let (bitmap, bits) = match allowed {
            Some((bitmap, bits)) => {
                if bitmap.len() < bits.div_ceil(8) {
                    return Err(EngineError(format!(
                        "the allowed-keys bitmap has {} bytes, {bits} bits need {}",
                        bitmap.len(),
                        bits.div_ceil(8)
                    )));
                }
                (bitmap.as_ptr(), bits)
            }
            None => (std::ptr::null(), 0),
        };
        let mut distances = vec![0f32; k];
        let mut ids = vec![-1i64; k];
        let mut err = [0u8; ERR_LEN];
        let as_i64 = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
        // SAFETY: query holds d floats; the output buffers hold k entries; the
        // bitmap (when not null) holds at least ceil(bits / 8) bytes.
        let ok = unsafe {
            ffi::lh_faiss_search(
                self.raw.as_ptr(),
                1,
                query.as_ptr(),
                as_i64(k),
                as_i64(nprobe),
                as_i64(ef_search),
                bitmap,
                as_i64(bits),
                distances.as_mut_ptr(),
                ids.as_mut_ptr(),
                err.as_mut_ptr().cast(),
                ERR_LEN,
            )
        };
        if ok != 1 {
            return Err(message(&err));
        }
        Ok(ids
            .into_iter()
            .zip(distances)
            .filter_map(|(id, distance)| u64::try_from(id).ok().map(|id| (id, distance)))
            .collect())
    }

    /// Writes the index to `path`.
    pub fn write(&self, path: &Path) -> Result<(), EngineError> {
        let path = c_string(&path.to_string_lossy(), "the path")?;
        let mut err = [0u8; ERR_LEN];
        // SAFETY: valid C string and error buffer.
        let ok = unsafe {
            ffi::lh_faiss_write(
                self.raw.as_ptr(),
                path.as_ptr(),
                err.as_mut_ptr().cast(),
                ERR_LEN,
            )
        };
        if ok == 1 { Ok(()) } else { Err(message(&err)) }
    }
}

#[cfg(not(faiss))]
impl Index {
    pub fn new(_: usize, _: &str, _: bool) -> Result<Self, EngineError> {
        Err(missing())
    }
    pub fn read(_: &Path) -> Result<Self, EngineError> {
        Err(missing())
    }
    pub fn count(&self) -> usize {
        0
    }
    pub fn is_trained(&self) -> bool {
        false
    }
    pub fn dimension(&self) -> usize {
        0
    }
    pub fn hnsw_ef(&self) -> usize {
        0
    }
    pub fn set_hnsw_ef(&mut self, _: usize) {}
    pub fn train(&mut self, _: &[f32]) -> Result<(), EngineError> {
        Err(missing())
    }
    pub fn add(&mut self, _: &[f32]) -> Result<(), EngineError> {
        Err(missing())
    }
    pub fn search(
        &self,
        _: &[f32],
        _: usize,
        _: usize,
        _: usize,
        _: Option<(&[u8], usize)>,
    ) -> Result<Vec<(u64, f32)>, EngineError> {
        Err(missing())
    }
    pub fn write(&self, _: &Path) -> Result<(), EngineError> {
        Err(missing())
    }
}

#[cfg(all(test, faiss))]
mod tests {
    use super::*;

    fn points(n: usize, d: usize) -> Vec<f32> {
        // A fixed pseudo-random cloud (xorshift), no dependency needed.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        (0..n * d)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect()
    }

    #[test]
    fn builds_searches_filters_and_reads_back() -> Result<(), EngineError> {
        let (n, d) = (2000, 16);
        let data = points(n, d);
        for factory in ["Flat", "IVF16,Flat", "HNSW16", "IVF16,PQ4"] {
            let mut index = Index::new(d, factory, false)?;
            if !index.is_trained() {
                index.train(&data)?;
            }
            index.add(&data)?;
            assert_eq!(index.count(), n, "{factory}");
            let query = &data[500 * d..501 * d];
            let hits = index.search(query, 5, 16, 64, None)?;
            assert_eq!(hits.len(), 5, "{factory}");
            if !factory.contains("PQ") {
                assert_eq!(
                    hits[0].0, 500,
                    "{factory}: a stored vector is its own nearest"
                );
            }
            // Only every third key.
            let mut bitmap = vec![0u8; n.div_ceil(8)];
            for key in (0..n).step_by(3) {
                bitmap[key / 8] |= 1 << (key % 8);
            }
            let kept = index.search(query, 5, 16, 64, Some((&bitmap, n)))?;
            assert!(!kept.is_empty(), "{factory}");
            assert!(
                kept.iter().all(|(key, _)| key % 3 == 0),
                "{factory}: {kept:?}"
            );
            let dir = std::env::temp_dir().join(format!("lh-faiss-{}", std::process::id()));
            std::fs::create_dir_all(&dir).map_err(|e| EngineError(e.to_string()))?;
            let path = dir.join(format!("{}.faiss", factory.replace(',', "_")));
            index.write(&path)?;
            let back = Index::read(&path)?;
            assert_eq!(back.count(), n);
            assert_eq!(back.search(query, 5, 16, 64, None)?, hits, "{factory}");
            let _ = std::fs::remove_dir_all(&dir);
        }
        Ok(())
    }

    #[test]
    fn hnsw_candidates_can_be_changed_between_searches() -> Result<(), EngineError> {
        let (n, d) = (3000, 32);
        let data = points(n, d);
        let mut index = Index::new(d, "HNSW8", false)?;
        index.add(&data)?;
        assert_eq!(index.hnsw_ef(), 16, "Faiss's default");
        let query = points(1, d);
        let exact = Index::new(d, "Flat", false).and_then(|mut flat| {
            flat.add(&data)?;
            flat.search(&query, 10, 0, 0, None)
        })?;
        index.set_hnsw_ef(512);
        assert_eq!(index.hnsw_ef(), 512);
        assert_eq!(index.search(&query, 10, 0, 0, None)?, exact);
        assert_eq!(Index::new(d, "Flat", false)?.hnsw_ef(), 0);
        Ok(())
    }

    #[test]
    fn errors_come_back_as_text() {
        let error = Index::new(8, "NoSuchIndex12", false).err();
        assert!(error.is_some_and(|e| !e.0.is_empty()));
        let Ok(mut index) = Index::new(8, "IVF64,Flat", false) else {
            return;
        };
        // Too few points for 64 lists.
        let error = index.train(&points(10, 8)).err();
        assert!(
            error.is_some_and(|e| e.0.contains("training points")),
            "needs training points"
        );
        assert!(index.search(&[0.0; 3], 1, 0, 0, None).is_err());
        assert!(Index::read(Path::new("/nonexistent/x.faiss")).is_err());
    }
}
