# The broker and the store for scripts/cluster-containers, from Debian's own
# packages on the local base: the manifests' upstream images (rabbitmq:*,
# redis:*) cannot be pulled on a machine with no registry. Not for production:
# k8s/ keeps the upstream images.
#   podman build -f docker/local/services.Dockerfile --target rabbitmq -t localhost/mll-rabbitmq:local .
#   podman build -f docker/local/services.Dockerfile --target redis -t localhost/mll-redis:local .
ARG BASE_IMAGE=debian:bookworm-slim

FROM ${BASE_IMAGE} AS rabbitmq
RUN apt-get update \
 && apt-get install -y --no-install-recommends rabbitmq-server \
 && rm -rf /var/lib/apt/lists/*
# guest/guest from any address (the default allows loopback only), and the
# ports the environment names (a second broker beside a host's own).
RUN printf '%s\n' 'loopback_users = none' > /etc/rabbitmq/rabbitmq.conf
USER rabbitmq
ENV RABBITMQ_NODENAME=rabbit@localhost HOME=/var/lib/rabbitmq
ENTRYPOINT ["/usr/sbin/rabbitmq-server"]

FROM ${BASE_IMAGE} AS redis
RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/*
USER redis
ENTRYPOINT ["/usr/bin/redis-server", "--save", "", "--appendonly", "no", "--protected-mode", "no", "--bind", "0.0.0.0"]
