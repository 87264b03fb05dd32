//! open_clip models on libtorch.
pub mod artifact;
pub mod cache;
pub mod device;
pub mod error;
pub mod image;
pub mod minilm;
pub mod model;
pub mod text;

pub use artifact::{Interpolation, ModelArtifact, ModelMeta, ResizeMode, TextClean, TokenizerKind};
pub use cache::ModelCache;
pub use device::{pick_device, DeviceChoice, Precision};
pub use error::EngineError;
pub use model::LoadedModel;
pub use text::{build_classifier, ClassifierProtocol, TextTokenizer};
