//! The vector index a build asks for, as Lance's types: index type, metric and
//! parameters, checked against the dataset's width; and index type names as the
//! product writes them.

use lance::index::vector::VectorIndexParams;
use lance_index::IndexType;
use lance_index::vector::hnsw::builder::HnswBuildParams;
use lance_index::vector::ivf::IvfBuildParams;
use lance_index::vector::pq::PQBuildParams;
use lance_index::vector::sq::builder::SQBuildParams;
use lance_linalg::distance::DistanceType;

use crate::datasets::DatasetError;
use crate::v1::LanceIndexBuild;

pub(crate) fn metric_of(name: &str) -> Result<DistanceType, DatasetError> {
    match name {
        "l2" => Ok(DistanceType::L2),
        "dot" => Ok(DistanceType::Dot),
        other => Err(DatasetError::Invalid(format!(
            "metric: {other:?} is not l2 or dot"
        ))),
    }
}

/// The Lance index type and parameters `build` asks for, checked against `dimension`.
pub(crate) fn vector_params(
    build: &LanceIndexBuild,
    dimension: usize,
) -> Result<(IndexType, VectorIndexParams), DatasetError> {
    let metric = metric_of(&build.metric)?;
    let mut ivf = IvfBuildParams::new(build.partitions.max(1) as usize);
    if build.max_iterations > 0 {
        ivf.max_iters = build.max_iterations as usize;
    }
    if build.sample_rate > 0 {
        ivf.sample_rate = build.sample_rate as usize;
    }
    match build.index_type.to_ascii_uppercase().as_str() {
        "IVF_PQ" | "" => {
            let sub_vectors = build.sub_vectors as usize;
            if sub_vectors == 0 || dimension % sub_vectors != 0 {
                return Err(DatasetError::Invalid(format!(
                    "sub_vectors: {sub_vectors} does not divide the dimension {dimension}"
                )));
            }
            let mut pq = PQBuildParams {
                num_sub_vectors: sub_vectors,
                num_bits: if build.bits == 0 {
                    8
                } else {
                    build.bits as usize
                },
                ..Default::default()
            };
            if build.max_iterations > 0 {
                pq.max_iters = build.max_iterations as usize;
            }
            if build.sample_rate > 0 {
                pq.sample_rate = build.sample_rate as usize;
            }
            Ok((
                IndexType::IvfPq,
                VectorIndexParams::with_ivf_pq_params(metric, ivf, pq),
            ))
        }
        "IVF_HNSW_SQ" => {
            let mut hnsw = HnswBuildParams::default();
            if build.hnsw_m > 0 {
                hnsw.m = build.hnsw_m as usize;
            }
            if build.hnsw_ef_construction > 0 {
                hnsw.ef_construction = build.hnsw_ef_construction as usize;
            }
            let mut sq = SQBuildParams::default();
            if build.sample_rate > 0 {
                sq.sample_rate = build.sample_rate as usize;
            }
            Ok((
                IndexType::IvfHnswSq,
                VectorIndexParams::with_ivf_hnsw_sq_params(metric, ivf, hnsw, sq),
            ))
        }
        "IVF_FLAT" => Ok((
            IndexType::IvfFlat,
            VectorIndexParams::with_ivf_flat_params(metric, ivf),
        )),
        other => Err(DatasetError::Invalid(format!(
            "index_type: {other:?} is not IVF_PQ, IVF_HNSW_SQ or IVF_FLAT"
        ))),
    }
}

/// Lance's name of an index type ("IVF_PQ", "IvfPq", …) as this product writes it.
pub(crate) fn index_type_name(lance: &str) -> String {
    let squashed: String = lance
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_uppercase();
    match squashed.as_str() {
        "IVFPQ" => "IVF_PQ",
        "IVFHNSWSQ" => "IVF_HNSW_SQ",
        "IVFFLAT" => "IVF_FLAT",
        _ => lance,
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_types_are_named_as_the_product_writes_them() {
        assert_eq!(index_type_name("IVF_PQ"), "IVF_PQ");
        assert_eq!(index_type_name("IvfHnswSq"), "IVF_HNSW_SQ");
        assert_eq!(index_type_name("IVF_FLAT"), "IVF_FLAT");
    }

    #[test]
    fn parameters_are_checked() {
        let build = |index_type: &str, sub_vectors: u32| LanceIndexBuild {
            index_type: index_type.into(),
            metric: "l2".into(),
            partitions: 4,
            sub_vectors,
            ..Default::default()
        };
        assert!(vector_params(&build("IVF_PQ", 3), 8).is_err());
        assert!(vector_params(&build("IVF_PQ", 4), 8).is_ok());
        assert!(vector_params(&build("IVF_HNSW_SQ", 0), 8).is_ok());
        assert!(vector_params(&build("DISKANN", 0), 8).is_err());
        let wrong_metric = LanceIndexBuild {
            metric: "hamming".into(),
            ..build("IVF_FLAT", 0)
        };
        assert!(vector_params(&wrong_metric, 8).is_err());
    }
}
