// The coordinator links libtorch through the worker crate (embedded local
// mode), so its binaries need the same rpath and --no-as-needed flags.
include!("../worker/build.rs");
