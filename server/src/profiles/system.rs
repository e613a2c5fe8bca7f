//! The profile tables of the `system` schema: `profiles` and `gpu_slot`.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field};
use arrow::error::ArrowError;
use async_trait::async_trait;
use lakehouse_flight_ext::v1::SlotModel;

use super::{Slot, SlotState};
use crate::catalog::{Catalog, ProfileEntry};
use crate::query::SystemTable;
use crate::rows::{batch, micros, timestamp_field, timestamps, utf8};

/// `profiles` or `gpu_slot`.
#[derive(Debug)]
pub(crate) struct ProfileTable {
    name: &'static str,
    catalog: Arc<Catalog>,
    slot: Arc<Slot>,
}

impl ProfileTable {
    /// Both profile tables, over `catalog` and the GPU `slot`.
    pub(crate) fn all(catalog: &Arc<Catalog>, slot: &Arc<Slot>) -> [Arc<dyn SystemTable>; 2] {
        ["profiles", "gpu_slot"].map(|name| {
            Arc::new(Self {
                name,
                catalog: Arc::clone(catalog),
                slot: Arc::clone(slot),
            }) as Arc<dyn SystemTable>
        })
    }
}

#[async_trait]
impl SystemTable for ProfileTable {
    fn name(&self) -> &str {
        self.name
    }

    async fn rows(&self, _profile: Option<&str>) -> datafusion::error::Result<RecordBatch> {
        Ok(if self.name == "profiles" {
            profiles(&self.catalog, &self.slot)?
        } else {
            gpu_slot(&self.slot)?
        })
    }
}

/// Profiles, and whether each holds the GPU slot.
fn profiles(catalog: &Catalog, slot: &Slot) -> Result<RecordBatch, ArrowError> {
    let doc = catalog.snapshot();
    let slot = slot.view();
    let mut entries: Vec<_> = doc.profiles.iter().collect();
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    let strings = |f: &dyn Fn(&ProfileEntry) -> Option<String>| -> ArrayRef {
        Arc::new(StringArray::from(
            entries.iter().map(|p| f(p)).collect::<Vec<_>>(),
        ))
    };
    batch(
        vec![
            utf8("name", false),
            utf8("embedder", false),
            utf8("llm", true),
            utf8("bucket", false),
            utf8("backend", false),
            Field::new("active", DataType::Boolean, false),
            Field::new("indexes", DataType::Int64, false),
            timestamp_field("created_at", true),
        ],
        vec![
            strings(&|p| Some(p.name.clone())),
            strings(&|p| Some(p.embedder.clone())),
            strings(&|p| (!p.llm.is_empty()).then(|| p.llm.clone())),
            strings(&|p| Some(p.bucket.clone())),
            strings(&|p| Some(p.backend.clone())),
            Arc::new(BooleanArray::from(
                entries
                    .iter()
                    .map(|p| slot.state == SlotState::Active && slot.profile == p.name)
                    .collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from_iter_values(entries.iter().map(|p| {
                doc.indexes.iter().filter(|i| i.profile == p.name).count() as i64
            }))),
            timestamps(entries.iter().map(|p| micros(&p.created_at)).collect()),
        ],
    )
}

/// The GPU slot: one row per model it holds (one row with null model columns when it
/// holds none), with the GPUs' memory as NVML reports it.
fn gpu_slot(slot: &Slot) -> Result<RecordBatch, ArrowError> {
    let report = slot.report();
    let rows: Vec<Option<&SlotModel>> = if report.models.is_empty() {
        vec![None]
    } else {
        report.models.iter().map(Some).collect()
    };
    let text = |f: &dyn Fn(&SlotModel) -> String| -> ArrayRef {
        Arc::new(StringArray::from(
            rows.iter().map(|m| m.map(f)).collect::<Vec<_>>(),
        ))
    };
    let same = |value: Option<String>| -> ArrayRef {
        Arc::new(StringArray::from(vec![value; rows.len()]))
    };
    let bytes = |f: &dyn Fn(&SlotModel) -> Option<u64>| -> ArrayRef {
        Arc::new(Int64Array::from(
            rows.iter()
                .map(|m| m.and_then(f).map(|b| b as i64))
                .collect::<Vec<_>>(),
        ))
    };
    let gpu_total: u64 = report.gpus.iter().map(|g| g.memory_total_bytes).sum();
    let gpu_used: u64 = report.gpus.iter().map(|g| g.memory_used_bytes).sum();
    let present = !report.gpus.is_empty();
    let gpu_bytes = |value: u64| -> ArrayRef {
        Arc::new(Int64Array::from(vec![
            present.then_some(value as i64);
            rows.len()
        ]))
    };
    let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_string());
    batch(
        vec![
            utf8("state", false),
            utf8("profile", true),
            timestamp_field("since", true),
            utf8("error", true),
            utf8("role", true),
            utf8("model_name", true),
            utf8("protocol", true),
            utf8("model", true),
            utf8("placement", true),
            Field::new("model_bytes", DataType::Int64, true),
            Field::new("model_vram_bytes", DataType::Int64, true),
            utf8("gpus", true),
            Field::new("gpu_memory_total_bytes", DataType::Int64, true),
            Field::new("gpu_memory_used_bytes", DataType::Int64, true),
            utf8("gpu_absent", true),
        ],
        vec![
            Arc::new(StringArray::from(vec![report.state.clone(); rows.len()])),
            same(nonempty(&report.profile)),
            timestamps(vec![micros(&report.since); rows.len()]),
            same(nonempty(&report.error)),
            text(&|m| m.role.clone()),
            text(&|m| m.name.clone()),
            text(&|m| m.protocol.clone()),
            text(&|m| m.model.clone()),
            text(&|m| m.placement.clone()),
            bytes(&|m| m.size_bytes),
            bytes(&|m| m.vram_bytes),
            same(present.then(|| {
                report
                    .gpus
                    .iter()
                    .map(|g| g.name.clone())
                    .collect::<Vec<_>>()
                    .join(", ")
            })),
            gpu_bytes(gpu_total),
            gpu_bytes(gpu_used),
            same(nonempty(&report.gpu_absent)),
        ],
    )
}
