//! `lakehouse profile`: model profiles and the GPU slot.

use clap::Subcommand;
use lakehouse_flight_ext::actions::{PROFILE_ACTIVATE, PROFILE_CREATE, PROFILE_DROP, PROFILE_LIST};
use lakehouse_flight_ext::v1::{
    GpuSlot, Profile, ProfileActivateRequest, ProfileActivation, ProfileCreateRequest,
    ProfileDropRequest, ProfileList, ProfileListRequest,
};
use prost::Message;

use super::{CliError, Client, JobFlags, print_json, start_job};

#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// Create (or with --replace, change) a profile.
    Create {
        name: String,
        /// builtin, or an [embedders.NAME] the server configures [default: builtin].
        #[arg(long)]
        embedder: Option<String>,
        /// An [llms.NAME] the server configures.
        #[arg(long)]
        llm: Option<String>,
        /// Home bucket of the profile's indexes [default: primary].
        #[arg(long)]
        bucket: Option<String>,
        /// hnsw, flat or faiss [default: hnsw].
        #[arg(long)]
        backend: Option<String>,
        #[arg(long)]
        replace: bool,
        #[arg(long)]
        json: bool,
    },
    /// Profiles and the GPU slot.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Give the GPU slot to a profile (its models loaded, the previous ones unloaded).
    Activate {
        name: String,
        #[command(flatten)]
        job: JobFlags,
    },
    /// Unload the active profile's models; the slot is then empty.
    Release {
        #[command(flatten)]
        job: JobFlags,
    },
    /// Drop a profile (not while it holds the slot or owns indexes).
    Drop { name: String },
}

pub(super) async fn run(client: &mut Client, command: ProfileCommand) -> Result<(), CliError> {
    match command {
        ProfileCommand::Create {
            name,
            embedder,
            llm,
            bucket,
            backend,
            replace,
            json,
        } => {
            let request = ProfileCreateRequest {
                name,
                embedder: embedder.unwrap_or_default(),
                llm: llm.unwrap_or_default(),
                bucket: bucket.unwrap_or_default(),
                backend: backend.unwrap_or_default(),
                replace,
            };
            let profile: Profile = client.action(PROFILE_CREATE, &request).await?;
            if json {
                return print_json(&profile);
            }
            println!(
                "profile {}: embedder {}, llm {}, {} indexes in bucket {}",
                profile.name,
                profile.embedder,
                if profile.llm.is_empty() {
                    "none"
                } else {
                    &profile.llm
                },
                profile.backend,
                profile.bucket
            );
            Ok(())
        }
        ProfileCommand::List { json } => {
            let list: ProfileList = client.action(PROFILE_LIST, &ProfileListRequest {}).await?;
            if json {
                return print_json(&list);
            }
            let mut table = comfy_table::Table::new();
            table.load_preset(comfy_table::presets::ASCII_MARKDOWN);
            table.set_header([
                "name", "embedder", "llm", "backend", "bucket", "indexes", "active",
            ]);
            for p in &list.profiles {
                table.add_row([
                    p.name.clone(),
                    p.embedder.clone(),
                    p.llm.clone(),
                    p.backend.clone(),
                    p.bucket.clone(),
                    p.indexes.to_string(),
                    if p.active { "yes" } else { "" }.to_string(),
                ]);
            }
            println!("{table}");
            print_slot(&list.slot.unwrap_or_default());
            Ok(())
        }
        ProfileCommand::Activate { name, job } => {
            let request = ProfileActivateRequest {
                name,
                detach: job.detach,
            };
            start_job(client, PROFILE_ACTIVATE, request.encode_to_vec(), &job).await
        }
        ProfileCommand::Release { job } => {
            let request = ProfileActivateRequest {
                name: String::new(),
                detach: job.detach,
            };
            start_job(client, PROFILE_ACTIVATE, request.encode_to_vec(), &job).await
        }
        ProfileCommand::Drop { name } => {
            let profile: Profile = client
                .action(PROFILE_DROP, &ProfileDropRequest { name })
                .await?;
            println!("profile {} dropped", profile.name);
            Ok(())
        }
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn print_slot(slot: &GpuSlot) {
    let holder = if slot.profile.is_empty() {
        String::new()
    } else {
        format!(" ({})", slot.profile)
    };
    println!("GPU slot: {}{holder} since {}", slot.state, slot.since);
    if !slot.error.is_empty() {
        println!("  last error: {}", slot.error);
    }
    for model in &slot.models {
        let vram = model
            .vram_bytes
            .map(|b| format!(", {} in VRAM", mib(b)))
            .unwrap_or_default();
        println!(
            "  {} {} = {} [{}{vram}]",
            model.role, model.name, model.model, model.placement
        );
    }
    for gpu in &slot.gpus {
        println!(
            "  GPU {} {}: {} of {} used",
            gpu.index,
            gpu.name,
            mib(gpu.memory_used_bytes),
            mib(gpu.memory_total_bytes)
        );
    }
    if !slot.gpu_absent.is_empty() {
        println!("  {}", slot.gpu_absent);
    }
}

/// What an activation did.
pub(super) fn print_activation(activation: &ProfileActivation) {
    for (what, models) in [
        ("unloaded", &activation.unloaded),
        ("loaded", &activation.loaded),
        ("kept", &activation.kept),
    ] {
        if !models.is_empty() {
            println!("{what}: {}", models.join(", "));
        }
    }
    println!("in {:.1} s", activation.seconds);
    print_slot(&activation.slot.clone().unwrap_or_default());
}
