# syntax=docker/dockerfile:1.7
# The coordinator for the cluster: plans, publishes, aggregates and reports.
# Built without the `local` feature (embedded mode's in-process workers), so it
# links no libtorch and needs no GPU. Build from the repository root:
#   docker build -f docker/coordinator.Dockerfile -t mll-coordinator:0.1.0 .
ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm
# The two bases, as build arguments so a machine without a registry can pass
# locally made ones (scripts/images); the defaults are the registry's.
ARG RUST_IMAGE=rust:${RUST_VERSION}-${DEBIAN_RELEASE}
ARG BASE_IMAGE=debian:${DEBIAN_RELEASE}-slim

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
# Cache mounts keep the registry and target between builds; the binary is
# copied out of the cached target before the layer ends. The readelf check
# fails the build if libtorch ever creeps back into the link.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release -p mll-coordinator --bin coordinator --no-default-features \
        $( [ -f Cargo.lock ] && echo --locked ) \
 && install -D -m 0755 target/release/coordinator /out/coordinator \
 && ! readelf -d /out/coordinator | grep -q torch

FROM ${BASE_IMAGE}
# ca-certificates: amqps:// and rediss:// to servers with public or mounted CAs.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin mll
COPY --from=build /out/coordinator /usr/local/bin/coordinator
# The defaults are compiled in; profiles come from --config (the ConfigMap).
COPY configs/ /etc/mll/defaults/
ENV MLL_CONFIG_DIR=/etc/mll/defaults
USER 10001:10001
EXPOSE 9101
ENTRYPOINT ["/usr/local/bin/coordinator"]
CMD ["--help"]
