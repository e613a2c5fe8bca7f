//! GPUs as NVML reports them. NVML is the NVIDIA driver's library, loaded at run
//! time: on a machine without it the server runs the same and reports why no GPU is
//! shown.

use lakehouse_flight_ext::v1::Gpu;
use nvml_wrapper::Nvml;

/// The driver's NVML, or why it could not be opened.
pub(crate) struct Gpus {
    nvml: Result<Nvml, String>,
}

impl std::fmt::Debug for Gpus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpus")
            .field("absent", &self.nvml.as_ref().err())
            .finish()
    }
}

impl Gpus {
    /// Opens NVML: `libnvidia-ml.so.1` (what the driver installs), else `libnvidia-ml.so`.
    pub(crate) fn probe() -> Self {
        let versioned = Nvml::builder()
            .lib_path(std::ffi::OsStr::new("libnvidia-ml.so.1"))
            .init();
        let nvml = versioned.or_else(|_| Nvml::init()).map_err(|error| {
            let why = match error {
                nvml_wrapper::error::NvmlError::LibloadingError(e) => {
                    format!("the NVIDIA driver's NVML library is not installed ({e})")
                }
                nvml_wrapper::error::NvmlError::DriverNotLoaded => {
                    "the NVIDIA driver is not loaded".to_string()
                }
                other => format!("NVML failed to start: {other}"),
            };
            format!("no GPU reported: {why}")
        });
        match &nvml {
            Ok(_) => tracing::info!("NVML opened: GPU memory is reported"),
            Err(why) => tracing::info!("{why}"),
        }
        Self { nvml }
    }

    /// The GPUs with their memory now, or why none is reported.
    pub(crate) fn read(&self) -> Result<Vec<Gpu>, String> {
        let nvml = self.nvml.as_ref().map_err(Clone::clone)?;
        let count = nvml
            .device_count()
            .map_err(|e| format!("NVML cannot count GPUs: {e}"))?;
        let mut gpus = Vec::new();
        for index in 0..count {
            let device = nvml
                .device_by_index(index)
                .map_err(|e| format!("NVML cannot open GPU {index}: {e}"))?;
            let memory = device
                .memory_info()
                .map_err(|e| format!("NVML cannot read the memory of GPU {index}: {e}"))?;
            gpus.push(Gpu {
                index,
                name: device.name().unwrap_or_default(),
                memory_total_bytes: memory.total,
                memory_used_bytes: memory.used,
            });
        }
        if gpus.is_empty() {
            return Err("no GPU reported: NVML sees no device".into());
        }
        Ok(gpus)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On a machine without the driver the probe explains itself; with one, every GPU
    /// has a name and memory figures that add up.
    #[test]
    fn reports_gpus_or_why_there_are_none() {
        match Gpus::probe().read() {
            Ok(gpus) => {
                for gpu in gpus {
                    assert!(gpu.memory_total_bytes > 0);
                    assert!(gpu.memory_used_bytes <= gpu.memory_total_bytes);
                }
            }
            Err(why) => assert!(why.starts_with("no GPU reported: "), "{why}"),
        }
    }
}
