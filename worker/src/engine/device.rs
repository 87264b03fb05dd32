//! Which device and precision the engine runs on.

use super::error::EngineError;
use serde::{Deserialize, Serialize};
use std::str::FromStr;
use tch::Device;

/// The config's `device` (`worker.device`): auto, cpu or cuda.
pub use mll_common::config::DeviceChoice;

/// Whether libtorch can use CUDA in this process. False on a GPU host means
/// the binary was linked without libtorch_cuda (see worker/build.rs).
pub fn cuda_available() -> bool {
    tch::Cuda::is_available()
}

/// One worker process per GPU (CUDA_VISIBLE_DEVICES), so CUDA is always device 0.
pub fn pick_device(choice: DeviceChoice) -> Result<Device, EngineError> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Auto => Ok(if cuda_available() { Device::Cuda(0) } else { Device::Cpu }),
        DeviceChoice::Cuda if cuda_available() => Ok(Device::Cuda(0)),
        DeviceChoice::Cuda => Err(EngineError::Device(
            "device 'cuda' was asked for but libtorch sees no CUDA device (check the driver, \
             CUDA_VISIBLE_DEVICES and that the binary links libtorch_cuda), or set device = \"auto\""
                .into(),
        )),
    }
}

/// Compute precision. Reduced precision is autocast on CUDA (the traced module
/// stays fp32); on CPU everything runs in fp32 whatever is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    Fp32,
    /// CUDA autocast to float16.
    Fp16,
    /// CUDA autocast to bfloat16 — tch 0.26 exposes no way to set autocast's
    /// dtype, so this is refused rather than silently run as fp16.
    Bf16,
}

impl FromStr for Precision {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "fp32" | "float32" => Ok(Precision::Fp32),
            "fp16" | "float16" | "half" | "amp" => Ok(Precision::Fp16),
            "bf16" | "bfloat16" => Ok(Precision::Bf16),
            other => Err(EngineError::Device(format!("unknown precision '{other}' (use fp32 or fp16)"))),
        }
    }
}

impl Precision {
    /// What actually runs on `device`: autocast only on CUDA.
    pub fn effective(self, device: Device) -> Result<Precision, EngineError> {
        match (self, device) {
            (_, Device::Cpu) => Ok(Precision::Fp32),
            (Precision::Bf16, _) => {
                Err(EngineError::Device("precision bf16 is not available (tch 0.26 autocast is float16 only); use fp16 or fp32".into()))
            }
            (p, _) => Ok(p),
        }
    }

    pub fn autocast(self) -> bool {
        matches!(self, Precision::Fp16)
    }
}

/// What `worker check` prints about the device side.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceReport {
    pub cuda_available: bool,
    pub cuda_devices: i64,
    pub cudnn_available: bool,
    pub torch_threads: i32,
}

pub fn device_report() -> DeviceReport {
    DeviceReport {
        cuda_available: cuda_available(),
        cuda_devices: tch::Cuda::device_count(),
        cudnn_available: tch::Cuda::cudnn_is_available(),
        torch_threads: tch::get_num_threads(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_parse_and_cpu_is_always_there() {
        assert_eq!("AUTO".parse::<DeviceChoice>().unwrap(), DeviceChoice::Auto);
        assert!("tpu".parse::<DeviceChoice>().is_err());
        assert_eq!(pick_device(DeviceChoice::Cpu).unwrap(), Device::Cpu);
    }

    #[test]
    fn reduced_precision_is_cuda_only() {
        assert_eq!(Precision::Fp16.effective(Device::Cpu).unwrap(), Precision::Fp32);
        assert_eq!(Precision::Fp16.effective(Device::Cuda(0)).unwrap(), Precision::Fp16);
        assert!(Precision::Bf16.effective(Device::Cuda(0)).is_err());
        assert!("fp8".parse::<Precision>().is_err());
    }
}
