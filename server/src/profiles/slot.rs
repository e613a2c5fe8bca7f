//! The single GPU slot: what it is doing ([`SlotState`]), the models it holds, the
//! GPUs NVML sees, and the plan of an activation (what to unload, load and keep).

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lakehouse_flight_ext::v1::{GpuSlot, SlotModel};

use super::gpu;

/// What the slot is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SlotState {
    /// No profile holds it.
    Empty,
    /// A profile's models are being loaded (or the slot released).
    Activating,
    /// A profile holds it with its models loaded.
    Active,
    /// The last activation failed; `error` says why.
    Failed,
}

impl SlotState {
    /// Every state, as metrics and tables name them.
    pub(crate) const ALL: [SlotState; 4] =
        [Self::Empty, Self::Activating, Self::Active, Self::Failed];

    /// The state's name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::Activating => "activating",
            Self::Active => "active",
            Self::Failed => "failed",
        }
    }
}

/// One model of a profile.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Model {
    /// `embedder` or `llm`.
    pub role: &'static str,
    /// The configured name.
    pub name: String,
    /// `builtin`, `ollama` or `openai`.
    pub protocol: String,
    pub url: String,
    pub model: String,
    pub(super) timeout: Duration,
    /// Memory, as Ollama reports it once loaded.
    pub size_bytes: Option<u64>,
    pub vram_bytes: Option<u64>,
}

impl Model {
    pub(super) fn new(
        role: &'static str,
        name: &str,
        protocol: &str,
        url: &str,
        model: &str,
        timeout: Duration,
    ) -> Self {
        Self {
            role,
            name: name.to_string(),
            protocol: protocol.to_string(),
            url: url.trim_end_matches('/').to_string(),
            model: model.to_string(),
            timeout,
            size_bytes: None,
            vram_bytes: None,
        }
    }

    /// Two profiles share a model when the same service serves the same model.
    pub(super) fn same(&self, other: &Self) -> bool {
        self.protocol == other.protocol && self.url == other.url && self.model == other.model
    }

    /// Where it runs: `cpu`, `ollama` or `remote`.
    pub(crate) fn placement(&self) -> &'static str {
        match self.protocol.as_str() {
            "builtin" => "cpu",
            "ollama" => "ollama",
            _ => "remote",
        }
    }

    /// `name (model)`, as activation results list it.
    pub(super) fn label(&self) -> String {
        format!("{} ({})", self.name, self.model)
    }

    pub(super) fn to_proto(&self) -> SlotModel {
        SlotModel {
            role: self.role.to_string(),
            name: self.name.clone(),
            protocol: self.protocol.clone(),
            model: self.model.clone(),
            placement: self.placement().to_string(),
            size_bytes: self.size_bytes,
            vram_bytes: self.vram_bytes,
        }
    }
}

/// The slot as it is now.
#[derive(Debug, Clone)]
pub(crate) struct SlotView {
    pub state: SlotState,
    /// The profile holding (or taking) it; empty when none.
    pub profile: String,
    pub since: DateTime<Utc>,
    pub error: String,
    /// The models loaded for it.
    pub models: Vec<Model>,
}

impl SlotView {
    /// Whether profile `name` holds the slot or is taking it (a failed activation
    /// holds nothing for its profile).
    pub(crate) fn holds(&self, name: &str) -> bool {
        self.profile == name && matches!(self.state, SlotState::Active | SlotState::Activating)
    }
}

/// The single GPU slot: its state, and the GPUs NVML sees.
#[derive(Debug)]
pub(crate) struct Slot {
    pub(super) view: Mutex<SlotView>,
    pub(super) gpus: gpu::Gpus,
}

impl Slot {
    /// An empty slot; NVML is probed once, here.
    pub(crate) fn new() -> Self {
        Self {
            view: Mutex::new(SlotView {
                state: SlotState::Empty,
                profile: String::new(),
                since: Utc::now(),
                error: String::new(),
                models: Vec::new(),
            }),
            gpus: gpu::Gpus::probe(),
        }
    }

    /// The slot now.
    pub(crate) fn view(&self) -> SlotView {
        self.lock().clone()
    }

    /// The GPUs now, or why none is reported.
    pub(crate) fn gpus(&self) -> Result<Vec<lakehouse_flight_ext::v1::Gpu>, String> {
        self.gpus.read()
    }

    /// The slot as the protocol reports it (GPU memory read now).
    pub(crate) fn report(&self) -> GpuSlot {
        let view = self.view();
        let (gpus, gpu_absent) = match self.gpus() {
            Ok(gpus) => (gpus, String::new()),
            Err(why) => (Vec::new(), why),
        };
        GpuSlot {
            state: view.state.name().to_string(),
            profile: view.profile,
            since: view.since.to_rfc3339(),
            error: view.error,
            models: view.models.iter().map(Model::to_proto).collect(),
            gpus,
            gpu_absent,
        }
    }

    pub(super) fn set(&self, state: SlotState, profile: &str, error: String, models: Vec<Model>) {
        let mut view = self.lock();
        *view = SlotView {
            state,
            profile: profile.to_string(),
            since: Utc::now(),
            error,
            models,
        };
    }

    pub(super) fn begin(&self, profile: &str) {
        let mut view = self.lock();
        view.state = SlotState::Activating;
        view.profile = profile.to_string();
        view.since = Utc::now();
        view.error.clear();
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, SlotView> {
        self.view.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Default for Slot {
    fn default() -> Self {
        Self::new()
    }
}

/// Which models to unload, load and keep when `held` makes way for `wanted`. Kept
/// models carry the new profile's names.
pub(super) fn plan(held: &[Model], wanted: &[Model]) -> (Vec<Model>, Vec<Model>, Vec<Model>) {
    let mut unload = Vec::new();
    for model in held {
        if !wanted.iter().any(|w| w.same(model)) && !unload.iter().any(|u: &Model| u.same(model)) {
            unload.push(model.clone());
        }
    }
    let (mut load, mut keep) = (Vec::new(), Vec::new());
    for model in wanted {
        match held.iter().find(|h| h.same(model)) {
            Some(loaded) => keep.push(Model {
                size_bytes: loaded.size_bytes,
                vram_bytes: loaded.vram_bytes,
                ..model.clone()
            }),
            None => load.push(model.clone()),
        }
    }
    (unload, load, keep)
}
