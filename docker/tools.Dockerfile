# syntax=docker/dockerfile:1.7
# The input tools for the cluster's prepare and export Jobs (CPU nodes):
# scripts/prepare-data, scripts/export-hub (open_clip + torch, and the worker
# binary for `worker check`) and scripts/data/wait_inputs.py. torch is PyPI's
# torch==2.13.0, the libtorch the worker binary links, at the same path as in
# the worker image. Build from the repository root:
#   docker build -f docker/tools.Dockerfile -t mll-tools:0.1.0 .
ARG RUST_VERSION=1.95
# The bases, as build arguments so a machine without a registry can pass
# locally made ones (scripts/images); the defaults are the registry's.
ARG RUST_IMAGE=rust:${RUST_VERSION}-bookworm
ARG BASE_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
# Unset unless passed: pip's own variables, for installing from a local wheel
# folder (scripts/images: PIP_NO_INDEX=1, PIP_FIND_LINKS=/wheels).
ARG PIP_FIND_LINKS
ARG PIP_NO_INDEX
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3-venv \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The project's Python packages (scripts/requirements.txt: torch, torchvision,
# open_clip...) and the data tools' (scripts/data/requirements.txt: h5py, PyAV).
RUN python3 -m venv /opt/torch \
 && /opt/torch/bin/pip install --no-cache-dir -r scripts/requirements.txt -r scripts/data/requirements.txt
ENV PATH=/opt/torch/bin:$PATH \
    LIBTORCH_USE_PYTORCH=1
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release -p mll-worker --bin worker \
        $( [ -f Cargo.lock ] && echo --locked ) \
 && install -D -m 0755 target/release/worker /out/worker

FROM ${BASE_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates python3 libgomp1 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin mll
COPY --from=build /opt/torch /opt/torch
COPY --from=build /out/worker /usr/local/bin/worker
COPY scripts/ /opt/mll/scripts/
COPY configs/ /opt/mll/configs/
ENV PATH=/opt/torch/bin:$PATH \
    MLL_VENV=/opt/torch \
    MLL_CONFIG_DIR=/opt/mll/configs \
    HF_HOME=/data/cache/huggingface
USER 10001:10001
WORKDIR /opt/mll
CMD ["python", "scripts/data/prepare.py", "--help"]
