# syntax=docker/dockerfile:1.7
# A stand-in for rust:<version>-bookworm on a machine with no registry
# (scripts/images builds it): the local Debian base, Debian's C toolchain, and
# the host's Rust toolchain (`rustc --print sysroot`, the build context) laid
# out where the official image has cargo, so the Dockerfiles in docker/ build
# unchanged with --build-arg RUST_IMAGE=localhost/mll-rust:<version>.
# The machine's extra CA certificates (an egress proxy's; mounted at
# /mnt/extra-ca by scripts/images) are trusted, so cargo and pip reach their
# registries through it.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential pkg-config ca-certificates binutils \
    python3 python3-venv \
 && rm -rf /var/lib/apt/lists/* \
 && if [ -d /mnt/extra-ca ]; then cp /mnt/extra-ca/*.crt /usr/local/share/ca-certificates/; fi \
 && update-ca-certificates
COPY . /usr/local/rust/
ENV CARGO_HOME=/usr/local/cargo \
    PATH=/usr/local/cargo/bin:/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    CARGO_HTTP_CAINFO=/etc/ssl/certs/ca-certificates.crt \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt
RUN mkdir -p /usr/local/cargo/bin && rustc --version && cargo --version
