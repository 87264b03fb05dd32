//! open_clip models on libtorch.
pub mod artifact;
pub mod cache;
pub mod classifier;
pub mod device;
pub mod error;
pub mod image;
pub mod minilm;
pub mod model;
pub mod text_clean;
pub mod tokenizer;

pub use artifact::{Interpolation, ModelArtifact, ModelMeta, ResizeMode, TextClean, TokenizerKind};
pub use cache::ModelCache;
pub use classifier::{build_classifier, ClassifierProtocol};
pub use device::{pick_device, DeviceChoice, Precision};
pub use error::EngineError;
pub use model::LoadedModel;
pub use tokenizer::TextTokenizer;
