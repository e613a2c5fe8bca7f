//! Model profiles and the single GPU slot.
//!
//! Owns: the catalog's `profiles` and `active_profile`, and the slot's state. May
//! call: `vector` (the built-in model, embedder pins), `query`, `catalog`, `storage`,
//! `jobs`, the leaves `config`, `observe`, `rows`; Ollama over HTTP, NVML. Invariants:
//! - one activation runs at a time; the slot's state names the profile holding it;
//! - activating unloads the models only the previous profile used, preloads and pins
//!   those only the new one uses, and leaves the shared ones loaded;
//! - the active profile is recorded in the catalog only once its models are loaded,
//!   and the server activates it again when it starts;
//! - a profile that holds the slot, or owns indexes, is not dropped.
//!
//! Where a model runs: the built-in model in this process on the CPU (activation
//! loads it; it is never unloaded, as indexes outside any profile use it too); an
//! Ollama model in Ollama, loaded with `keep_alive: -1` and unloaded with
//! `keep_alive: 0`; a model behind an OpenAI-compatible URL is the service's to
//! manage, so the slot only records it.

pub(crate) mod gpu;
mod ollama;
mod slot;
pub(crate) mod system;

use slot::plan;
pub(crate) use slot::{Model, Slot, SlotState, SlotView};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use lakehouse_flight_ext::v1::{Profile, ProfileActivation, ProfileCreateRequest, ProfileList};

use crate::catalog::{Catalog, CatalogDocument, CatalogError, ProfileEntry, validate_name};
use crate::config::{EmbedderConfig, LlmConfig};
use crate::jobs::JobContext;
use crate::storage::PRIMARY;
use crate::vector::embed::BUILTIN;
use crate::vector::{Backend, VectorIndexes};

/// How long loading one model may take unless its configuration says otherwise.
const LOAD_TIMEOUT: Duration = Duration::from_secs(300);
/// How long an unload request may take.
const UNLOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// Errors of profile calls, each with the status a client gets.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProfileError {
    /// The request is wrong: a bad name or model list.
    #[error("{0}")]
    Invalid(String),
    /// No such profile.
    #[error("{0}")]
    NotFound(String),
    /// A profile of that name exists.
    #[error("{0}")]
    Exists(String),
    /// The profile is in use, or names something no longer configured.
    #[error("{0}")]
    Precondition(String),
    /// A model could not be loaded; the service that serves it may come back.
    #[error("{0}")]
    Unavailable(String),
    /// The activation job was cancelled.
    #[error("the activation was cancelled; the slot holds what was loaded by then")]
    Cancelled,
    /// The catalog could not be written.
    #[error(transparent)]
    Catalog(Box<CatalogError>),
}

impl From<CatalogError> for ProfileError {
    fn from(error: CatalogError) -> Self {
        Self::Catalog(Box::new(error))
    }
}

/// The server's model profiles and its GPU slot.
pub(crate) struct Profiles {
    catalog: Arc<Catalog>,
    vectors: Arc<VectorIndexes>,
    embedders: HashMap<String, EmbedderConfig>,
    llms: HashMap<String, LlmConfig>,
    slot: Arc<Slot>,
    /// Held by an activation from start to end.
    activation: tokio::sync::Mutex<()>,
    ollama: ollama::Ollama,
}

impl std::fmt::Debug for Profiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profiles")
            .field("slot", &self.slot.view())
            .finish_non_exhaustive()
    }
}

/// A profile as the protocol describes it.
pub(crate) fn profile_of(entry: &ProfileEntry, doc: &CatalogDocument, slot: &SlotView) -> Profile {
    Profile {
        name: entry.name.clone(),
        embedder: entry.embedder.clone(),
        llm: entry.llm.clone(),
        bucket: entry.bucket.clone(),
        backend: entry.backend.clone(),
        created_at: entry.created_at.clone(),
        active: slot.state == SlotState::Active && slot.profile == entry.name,
        indexes: doc
            .indexes
            .iter()
            .filter(|i| i.profile == entry.name)
            .count() as u32,
    }
}

impl Profiles {
    /// Profiles over `catalog`, loading models through `vectors` and the configured
    /// services.
    pub(crate) fn new(
        catalog: Arc<Catalog>,
        vectors: Arc<VectorIndexes>,
        embedders: HashMap<String, EmbedderConfig>,
        llms: HashMap<String, LlmConfig>,
    ) -> Self {
        let slot = Arc::new(Slot::new());
        Self {
            catalog,
            vectors,
            embedders,
            llms,
            slot,
            activation: tokio::sync::Mutex::new(()),
            ollama: ollama::Ollama::new(),
        }
    }

    /// The slot.
    pub(crate) fn slot(&self) -> &Arc<Slot> {
        &self.slot
    }

    /// The `system` tables of profiles: `profiles` and `gpu_slot`.
    pub(crate) fn system_tables(&self) -> [Arc<dyn crate::query::SystemTable>; 2] {
        system::ProfileTable::all(&self.catalog, &self.slot)
    }

    /// The profile `name`.
    pub(crate) fn get(&self, name: &str) -> Result<ProfileEntry, ProfileError> {
        self.catalog
            .snapshot()
            .profile(name)
            .cloned()
            .ok_or_else(|| self.not_found(name))
    }

    fn not_found(&self, name: &str) -> ProfileError {
        let doc = self.catalog.snapshot();
        let known: Vec<&str> = doc.profiles.iter().map(|p| p.name.as_str()).collect();
        let known = if known.is_empty() {
            "none yet; create one with lakehouse.profile.create".to_string()
        } else {
            known.join(", ")
        };
        ProfileError::NotFound(format!(
            "profile {name:?} does not exist; profiles: {known}"
        ))
    }

    /// Every profile, with the slot.
    pub(crate) fn list(&self) -> ProfileList {
        let doc = self.catalog.snapshot();
        let slot = self.slot.view();
        let mut profiles: Vec<Profile> = doc
            .profiles
            .iter()
            .map(|p| profile_of(p, &doc, &slot))
            .collect();
        profiles.sort_by(|a, b| a.name.cmp(&b.name));
        ProfileList {
            profiles,
            slot: Some(self.slot.report()),
        }
    }

    /// Creates (or with `replace`, replaces) a profile.
    pub(crate) async fn create(
        &self,
        request: ProfileCreateRequest,
    ) -> Result<Profile, ProfileError> {
        let name = request.name.trim().to_string();
        validate_name(&name).map_err(|e| ProfileError::Invalid(format!("name: {e}")))?;
        let embedder = match request.embedder.trim() {
            "" => BUILTIN.to_string(),
            other => other.to_string(),
        };
        self.vectors
            .check_embedder(&embedder)
            .map_err(|e| ProfileError::Invalid(format!("embedder: {e}")))?;
        let llm = request.llm.trim().to_string();
        if !llm.is_empty() && !self.llms.contains_key(&llm) {
            let mut known: Vec<&str> = self.llms.keys().map(String::as_str).collect();
            known.sort_unstable();
            let known = if known.is_empty() {
                "none; configure one under [llms.NAME]".to_string()
            } else {
                known.join(", ")
            };
            return Err(ProfileError::Invalid(format!(
                "llm: {llm:?} is not configured on this server; known: {known}"
            )));
        }
        let backend = Backend::named(&request.backend)
            .map_err(|e| ProfileError::Invalid(e.to_string()))?
            .name()
            .to_string();
        let bucket = match request.bucket.trim() {
            "" => PRIMARY.to_string(),
            other => other.to_string(),
        };
        self.catalog
            .buckets()
            .get(&bucket)
            .map_err(|e| ProfileError::NotFound(format!("bucket: {e}")))?;
        let entry = ProfileEntry {
            name: name.clone(),
            embedder,
            llm,
            bucket,
            backend,
            created_at: Utc::now().to_rfc3339(),
        };
        let record = entry.clone();
        let replace = request.replace;
        self.catalog
            .change(|doc| {
                let slot = self.slot.view();
                match doc.profiles.iter_mut().find(|p| p.name == name) {
                    Some(_) if !replace => {
                        return Err(ProfileError::Exists(format!(
                            "profile {name} already exists; set replace to change it"
                        )));
                    }
                    Some(_) if slot.holds(&name) => {
                        return Err(ProfileError::Precondition(format!(
                            "profile {name} holds the GPU slot; activate another profile (or release the slot) before changing it"
                        )));
                    }
                    Some(existing) => {
                        *existing = ProfileEntry {
                            created_at: existing.created_at.clone(),
                            ..record
                        }
                    }
                    None => doc.profiles.push(record),
                }
                Ok(())
            })
            .await?;
        let doc = self.catalog.snapshot();
        let stored = doc.profile(&entry.name).unwrap_or(&entry);
        Ok(profile_of(stored, &doc, &self.slot.view()))
    }

    /// Drops a profile that neither holds the slot nor owns indexes.
    pub(crate) async fn drop_profile(&self, name: &str) -> Result<Profile, ProfileError> {
        let slot = self.slot.view();
        let doc = self.catalog.snapshot();
        let entry = doc
            .profile(name)
            .cloned()
            .ok_or_else(|| self.not_found(name))?;
        let dropped = profile_of(&entry, &doc, &slot);
        self.catalog
            .change(|doc| {
                let held = self.slot.view().holds(name);
                if held || doc.active_profile.as_deref() == Some(name) {
                    return Err(ProfileError::Precondition(format!(
                        "profile {name} holds the GPU slot; activate another profile (or release the slot with an empty name) first"
                    )));
                }
                let owned: Vec<&str> = doc
                    .indexes
                    .iter()
                    .filter(|i| i.profile == name)
                    .map(|i| i.name.as_str())
                    .collect();
                if !owned.is_empty() {
                    return Err(ProfileError::Precondition(format!(
                        "profile {name} owns indexes {}; they would be left without a profile",
                        owned.join(", ")
                    )));
                }
                doc.profiles.retain(|p| p.name != name);
                Ok(())
            })
            .await?;
        Ok(dropped)
    }

    /// The models profile `entry` uses.
    fn models_of(&self, entry: &ProfileEntry) -> Result<Vec<Model>, ProfileError> {
        let mut models = Vec::new();
        if entry.embedder == BUILTIN {
            models.push(Model::new(
                "embedder",
                BUILTIN,
                "builtin",
                "",
                crate::vector::embed::BUILTIN_MODEL,
                LOAD_TIMEOUT,
            ));
        } else {
            let config = self.embedders.get(&entry.embedder).ok_or_else(|| {
                ProfileError::Precondition(format!(
                    "profile {} embeds with {:?}, which is no longer configured ([embedders.{}])",
                    entry.name, entry.embedder, entry.embedder
                ))
            })?;
            // An embedder's timeout is per request; a first load may need longer.
            let timeout = config
                .timeout_secs
                .map_or(LOAD_TIMEOUT, Duration::from_secs)
                .max(Duration::from_secs(60));
            models.push(Model::new(
                "embedder",
                &entry.embedder,
                &config.protocol,
                &config.url,
                &config.model,
                timeout,
            ));
        }
        if !entry.llm.is_empty() {
            let config = self.llms.get(&entry.llm).ok_or_else(|| {
                ProfileError::Precondition(format!(
                    "profile {} uses LLM {:?}, which is no longer configured ([llms.{}])",
                    entry.name, entry.llm, entry.llm
                ))
            })?;
            let timeout = config
                .timeout_secs
                .map_or(LOAD_TIMEOUT, Duration::from_secs);
            models.push(Model::new(
                "llm",
                &entry.llm,
                &config.protocol,
                &config.url,
                &config.model,
                timeout,
            ));
        }
        Ok(models)
    }

    /// Checks that `name` can be activated ("" releases the slot), before a job starts.
    pub(crate) fn check_activation(&self, name: &str) -> Result<(), ProfileError> {
        if name.is_empty() {
            return Ok(());
        }
        let entry = self.get(name)?;
        self.models_of(&entry).map(drop)
    }

    /// Activates profile `name` ("" releases the slot): the body of the activation job.
    pub(crate) async fn activate(
        &self,
        name: &str,
        job: &JobContext,
    ) -> Result<ProfileActivation, ProfileError> {
        job.phase("waiting for the slot");
        let _one = self.activation.lock().await;
        let started = Instant::now();
        let wanted = match name {
            "" => Vec::new(),
            name => self.models_of(&self.get(name)?)?,
        };
        let held = self.slot.view().models;
        self.slot.begin(name);
        let (unload, load, keep) = plan(&held, &wanted);
        let mut result = ProfileActivation {
            kept: keep.iter().map(Model::label).collect(),
            ..ProfileActivation::default()
        };
        let mut now_held = keep;
        for model in &unload {
            job.phase(&format!("unloading {}", model.label()));
            self.unload(model).await;
            result.unloaded.push(model.label());
        }
        for model in load {
            if job.cancelled().is_cancelled() {
                self.fail(name, ProfileError::Cancelled.to_string(), now_held);
                return Err(ProfileError::Cancelled);
            }
            job.phase(&format!("loading {}", model.label()));
            let loading = self.load(&model);
            let outcome = tokio::select! {
                outcome = loading => outcome,
                () = job.cancelled().cancelled() => Err(ProfileError::Cancelled),
            };
            match outcome {
                Ok(()) => {
                    result.loaded.push(model.label());
                    now_held.push(model);
                }
                Err(error) => {
                    self.fail(name, error.to_string(), now_held);
                    return Err(error);
                }
            }
        }
        job.phase("recording");
        self.measure(&mut now_held).await;
        for model in &held {
            if model.role == "embedder" && !now_held.iter().any(|m| m.name == model.name) {
                self.vectors.pin_embedder(&model.name, false);
            }
        }
        for model in &now_held {
            if model.role == "embedder" && model.protocol == "ollama" {
                self.vectors.pin_embedder(&model.name, true);
            }
        }
        let active = (!name.is_empty()).then(|| name.to_string());
        if let Err(error) = self
            .catalog
            .change(|doc| {
                doc.active_profile = active;
                Ok::<_, CatalogError>(())
            })
            .await
        {
            self.fail(
                name,
                format!("the catalog could not record it: {error}"),
                now_held,
            );
            return Err(error.into());
        }
        let state = if name.is_empty() {
            SlotState::Empty
        } else {
            SlotState::Active
        };
        self.slot.set(state, name, String::new(), now_held);
        result.seconds = started.elapsed().as_secs_f64();
        result.slot = Some(self.slot.report());
        crate::observe::metrics().profile_activated("ok");
        tracing::info!(profile = name, unloaded = ?result.unloaded, loaded = ?result.loaded,
            kept = ?result.kept, seconds = result.seconds, "GPU slot changed");
        Ok(result)
    }

    fn fail(&self, name: &str, error: String, held: Vec<Model>) {
        tracing::warn!(profile = name, %error, "profile activation failed");
        crate::observe::metrics().profile_activated("error");
        self.slot.set(SlotState::Failed, name, error, held);
    }

    async fn load(&self, model: &Model) -> Result<(), ProfileError> {
        match model.protocol.as_str() {
            "builtin" => {
                self.vectors.builtin().await.map(drop).map_err(|e| {
                    ProfileError::Unavailable(format!("loading {}: {e}", model.label()))
                })
            }
            "ollama" => {
                let kind = if model.role == "llm" {
                    ollama::Kind::Generative
                } else {
                    ollama::Kind::Embedding
                };
                self.ollama
                    .load(&model.url, &model.model, kind, model.timeout)
                    .await
                    .map_err(|e| {
                        ProfileError::Unavailable(format!("loading {}: {e}", model.label()))
                    })
            }
            // An OpenAI-compatible service loads its models itself.
            _ => Ok(()),
        }
    }

    /// Unloads an Ollama model; a service that cannot be reached holds nothing, so a
    /// failure is logged, not fatal.
    async fn unload(&self, model: &Model) {
        if model.protocol != "ollama" {
            return;
        }
        if let Err(error) = self
            .ollama
            .unload(&model.url, &model.model, UNLOAD_TIMEOUT)
            .await
        {
            tracing::warn!(model = %model.label(), %error, "could not unload a model");
        }
    }

    /// Fills in the memory Ollama reports for each of `models`.
    async fn measure(&self, models: &mut [Model]) {
        let mut urls: Vec<String> = models
            .iter()
            .filter(|m| m.protocol == "ollama")
            .map(|m| m.url.clone())
            .collect();
        urls.dedup();
        for url in urls {
            let loaded = match self.ollama.loaded(&url).await {
                Ok(loaded) => loaded,
                Err(error) => {
                    tracing::debug!(%error, "cannot read loaded models");
                    continue;
                }
            };
            for model in models.iter_mut().filter(|m| m.url == url) {
                if let Some((_, found)) = loaded
                    .iter()
                    .find(|(name, _)| ollama::same_model(name, &model.model))
                {
                    model.size_bytes = found.size;
                    model.vram_bytes = found.size_vram;
                }
            }
        }
    }

    /// The profile recorded as active when the server last ran, to activate again.
    pub(crate) fn recorded_active(&self) -> Option<String> {
        self.catalog.snapshot().active_profile.clone()
    }
}

#[cfg(test)]
mod tests;
