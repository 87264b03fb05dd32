# syntax=docker/dockerfile:1.7
# The coordinator for the cluster. It links libtorch today: the embedded local
# mode (`coordinator run --local`) runs the worker's executors in process, and
# planning reads datasets through the worker crate. Until that is split behind
# a cargo feature, the image carries libtorch's shared libraries the same way
# the worker image does (CPU use only; no GPU is requested). Build from the
# repository root:
#   docker build -f docker/coordinator.Dockerfile -t mll-coordinator:0.1.0 .
ARG RUST_VERSION=1.95
ARG TORCH_VERSION=2.13.0
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS build
ARG TORCH_VERSION
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3-venv \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/torch \
 && /opt/torch/bin/pip install --no-cache-dir "torch==${TORCH_VERSION}"
ENV PATH=/opt/torch/bin:$PATH \
    LIBTORCH_USE_PYTORCH=1
WORKDIR /src
COPY . .
# Cache mounts keep the registry and target between builds; the binary is
# copied out of the cached target before the layer ends.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release -p mll-coordinator --bin coordinator \
        $( [ -f Cargo.lock ] && echo --locked ) \
 && install -D -m 0755 target/release/coordinator /out/coordinator
# libtorch at the path the binary's rpath names (coordinator/build.rs).
RUN site="$(python3 -c 'import site; print(site.getsitepackages()[0])')" \
 && test "$site" = /opt/torch/lib/python3.11/site-packages \
 && mkdir -p /out/site-packages/torch \
 && cp -a "$site/torch/lib" /out/site-packages/torch/lib \
 && cp -a "$site/nvidia" /out/site-packages/nvidia \
 && readelf -d /out/coordinator | grep -q "$site/torch/lib"

FROM debian:${DEBIAN_RELEASE}-slim
# ca-certificates: amqps:// and rediss:// to servers with public or mounted CAs.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libgomp1 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin mll
COPY --from=build /out/site-packages/ /opt/torch/lib/python3.11/site-packages/
COPY --from=build /out/coordinator /usr/local/bin/coordinator
# The defaults are compiled in; profiles come from --config (the ConfigMap).
COPY configs/ /etc/mll/defaults/
ENV MLL_CONFIG_DIR=/etc/mll/defaults
USER 10001:10001
EXPOSE 9101
ENTRYPOINT ["/usr/local/bin/coordinator"]
CMD ["--help"]
