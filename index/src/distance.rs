//! Distances between `f32` vectors: AVX2 with FMA where the CPU has them (checked at
//! run time), portable code the compiler vectorises elsewhere.

/// Dot product: AVX2 with FMA where the CPU has them (checked at run time; the
/// portable build only assumes SSE2), else 8 independent lanes the compiler
/// vectorises.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if avx2::available() {
        // SAFETY: the CPU has AVX2 and FMA (just checked).
        return unsafe { avx2::dot(a, b) };
    }
    dot_portable(a, b)
}

/// Squared Euclidean distance, dispatched like [`dot`].
pub fn squared_l2(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if avx2::available() {
        // SAFETY: the CPU has AVX2 and FMA (just checked).
        return unsafe { avx2::squared_l2(a, b) };
    }
    squared_l2_portable(a, b)
}

pub(crate) fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    lanes.iter().sum::<f32>() + tail
}

pub(crate) fn squared_l2_portable(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            let d = x[i] - y[i];
            lanes[i] += d * d;
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| (x - y) * (x - y)).sum();
    lanes.iter().sum::<f32>() + tail
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::{
        __m256, _mm_add_ps, _mm_cvtss_f32, _mm_hadd_ps, _mm256_add_ps, _mm256_castps256_ps128,
        _mm256_extractf128_ps, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_setzero_ps, _mm256_sub_ps,
    };

    /// Whether the CPU runs AVX2 and FMA (std caches the answer).
    pub fn available() -> bool {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }

    /// The sum of the 8 lanes.
    #[target_feature(enable = "avx2,fma")]
    fn sum(v: __m256) -> f32 {
        let half = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let pair = _mm_hadd_ps(half, half);
        _mm_cvtss_f32(_mm_hadd_ps(pair, pair))
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut i = 0;
        // SAFETY: every load reads 8 floats at i or i + 8, with i + 16 <= n (or
        // i + 8 <= n), inside both slices.
        unsafe {
            while i + 16 <= n {
                let (pa, pb) = (a.as_ptr().add(i), b.as_ptr().add(i));
                acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa), _mm256_loadu_ps(pb), acc0);
                acc1 =
                    _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(8)), _mm256_loadu_ps(pb.add(8)), acc1);
                i += 16;
            }
            if i + 8 <= n {
                let (pa, pb) = (a.as_ptr().add(i), b.as_ptr().add(i));
                acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa), _mm256_loadu_ps(pb), acc0);
                i += 8;
            }
        }
        let tail: f32 = a[i..n].iter().zip(&b[i..n]).map(|(x, y)| x * y).sum();
        sum(_mm256_add_ps(acc0, acc1)) + tail
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn squared_l2(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut i = 0;
        // SAFETY: as in `dot`.
        unsafe {
            while i + 16 <= n {
                let (pa, pb) = (a.as_ptr().add(i), b.as_ptr().add(i));
                let d0 = _mm256_sub_ps(_mm256_loadu_ps(pa), _mm256_loadu_ps(pb));
                let d1 = _mm256_sub_ps(_mm256_loadu_ps(pa.add(8)), _mm256_loadu_ps(pb.add(8)));
                acc0 = _mm256_fmadd_ps(d0, d0, acc0);
                acc1 = _mm256_fmadd_ps(d1, d1, acc1);
                i += 16;
            }
            if i + 8 <= n {
                let (pa, pb) = (a.as_ptr().add(i), b.as_ptr().add(i));
                let d = _mm256_sub_ps(_mm256_loadu_ps(pa), _mm256_loadu_ps(pb));
                acc0 = _mm256_fmadd_ps(d, d, acc0);
                i += 8;
            }
        }
        let tail: f32 = a[i..n]
            .iter()
            .zip(&b[i..n])
            .map(|(x, y)| (x - y) * (x - y))
            .sum();
        sum(_mm256_add_ps(acc0, acc1)) + tail
    }
}

/// `v / |v|` (zero vectors stay zero).
pub fn normalized(v: &[f32]) -> Vec<f32> {
    let norm = dot(v, v).sqrt();
    if norm > 0.0 {
        v.iter().map(|x| x / norm).collect()
    } else {
        v.to_vec()
    }
}
