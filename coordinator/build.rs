// Local mode runs the worker's executors in process, so with the `local`
// feature the coordinator links libtorch the way the worker does (see
// worker/build.rs); cluster builds (--no-default-features) link nothing extra.
mod worker_build {
    include!("../worker/build.rs");

    pub fn run() {
        main()
    }
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=../worker/build.rs");
    if std::env::var_os("CARGO_FEATURE_LOCAL").is_some() {
        worker_build::run();
    }
}
