# syntax=docker/dockerfile:1.7
# The GPU worker: the Rust binary linked against the CUDA build of libtorch
# that PyPI's torch==2.13.0 ships (the version tch 0.26 expects). The build
# stage installs that wheel; the runtime stage gets only its shared libraries
# (torch/lib and the nvidia/* CUDA libraries it loads), at the same path, so
# the rpath that worker/build.rs bakes in (and libtorch's own $ORIGIN-relative
# rpaths to ../../nvidia/*/lib) resolve without LD_LIBRARY_PATH.
# Build from the repository root:
#   docker build -f docker/worker.Dockerfile -t mll-worker:0.1.0 .
ARG RUST_VERSION=1.95
ARG TORCH_VERSION=2.13.0
# Any CUDA 13 runtime image whose glibc is at least bookworm's (2.36) works;
# the CUDA libraries libtorch uses come from the wheel, the driver from the host.
# A CPU-only run (scripts/images) passes a Debian bookworm base here.
ARG CUDA_IMAGE=nvidia/cuda:13.0.1-runtime-ubuntu24.04
# The build base, a build argument so a machine without a registry can pass a
# locally made one (scripts/images); the default is the registry's.
ARG RUST_IMAGE=rust:${RUST_VERSION}-bookworm

FROM ${RUST_IMAGE} AS build
ARG TORCH_VERSION
# Unset unless passed: pip's own variables, for installing from a local wheel
# folder (scripts/images: PIP_NO_INDEX=1, PIP_FIND_LINKS=/wheels).
ARG PIP_FIND_LINKS
ARG PIP_NO_INDEX
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3-venv \
 && rm -rf /var/lib/apt/lists/*
# /opt/torch/lib/python3.11/site-packages/torch/lib is where the binary will
# look for libtorch at run time, in this stage and the next.
RUN python3 -m venv /opt/torch \
 && /opt/torch/bin/pip install --no-cache-dir "torch==${TORCH_VERSION}"
ENV PATH=/opt/torch/bin:$PATH \
    LIBTORCH_USE_PYTORCH=1
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release -p mll-worker --bin worker \
        $( [ -f Cargo.lock ] && echo --locked ) \
 && install -D -m 0755 target/release/worker /out/worker
# Copy libtorch out, and fail here (not on the GPU node) if the binary's rpath
# does not point where the runtime stage puts it.
RUN site="$(python3 -c 'import site; print(site.getsitepackages()[0])')" \
 && test "$site" = /opt/torch/lib/python3.11/site-packages \
 && mkdir -p /out/site-packages/torch \
 && cp -a "$site/torch/lib" /out/site-packages/torch/lib \
 && cp -a "$site/nvidia" /out/site-packages/nvidia \
 && readelf -d /out/worker | grep -q "$site/torch/lib"

FROM ${CUDA_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libgomp1 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin mll
COPY --from=build /out/site-packages/ /opt/torch/lib/python3.11/site-packages/
COPY --from=build /out/worker /usr/local/bin/worker
COPY configs/ /etc/mll/defaults/
ENV MLL_CONFIG_DIR=/etc/mll/defaults \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
USER 10001:10001
EXPOSE 9100
ENTRYPOINT ["/usr/local/bin/worker"]
CMD ["--help"]
