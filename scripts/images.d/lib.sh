# Shared by scripts/images, scripts/cluster-containers and
# scripts/check-manifest-images: podman set-up, the local bases, smoke tests.
# Source it from the repository root after `here` is set.
# shellcheck shell=bash

# shellcheck source=scripts/env.sh
source "$here/scripts/env.sh"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$here/docker/local/containers.conf}"
IMG_CACHE="$MLL_CACHE_DIR/images"
IMG_BASE=localhost/debian:bookworm-slim
IMG_BASE_TAR="$IMG_CACHE/debian-bookworm-minbase.tar"
IMG_PREFIX="${IMG_PREFIX:-[images]}"

img_log() { printf '%s %s\n' "$IMG_PREFIX" "$*" >&2; }
img_die() { printf '%s FAILED: %s\n' "$IMG_PREFIX" "$*" >&2; exit 1; }

img_preflight() {
  local missing=()
  for t in podman buildah runc; do command -v "$t" >/dev/null || missing+=("$t"); done
  [ -f "$IMG_BASE_TAR" ] || command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
  [ "$(id -u)" = 0 ] || img_die "run as root: rootful podman (rootless cannot use this host's cgroup layout)"
  # Installed as scripts/setup installs its Debian tools, so that scripts/test
  # runs on a fresh machine; elsewhere, say what to install.
  if [ ${#missing[@]} -gt 0 ] && command -v apt-get >/dev/null; then
    img_log "installing Debian's ${missing[*]} (apt-get, about 10 s)"
    apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null && apt-get install -y -q "${missing[@]}" >/dev/null; } \
      || img_die "apt-get could not install ${missing[*]} (above); install them by hand"
    missing=()
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    img_die "missing ${missing[*]}: install them with apt-get install -y podman buildah runc mmdebstrap (as root)"
  fi
  mkdir -p "$IMG_CACHE"
}

# The Debian base: mmdebstrap once (cached tarball), imported when missing.
img_base() {
  if [ ! -f "$IMG_BASE_TAR" ]; then
    img_log "making the Debian bookworm minbase tarball with mmdebstrap (about 100 s, 170 MB) -> $IMG_BASE_TAR"
    local sources=/etc/apt/sources.list.d/debian.sources
    [ -f "$sources" ] || sources=/etc/apt/sources.list
    local t0=$SECONDS
    mmdebstrap --variant=minbase --format=tar bookworm "$IMG_BASE_TAR.partial.tar" "$sources" \
      || img_die "mmdebstrap failed (above); check that apt-get update works on this machine"
    mv "$IMG_BASE_TAR.partial.tar" "$IMG_BASE_TAR"
    img_log "base tarball made in $((SECONDS - t0)) s"
    podman image rm -f "$IMG_BASE" >/dev/null 2>&1 || true
  fi
  if ! podman image exists "$IMG_BASE"; then
    img_log "importing $IMG_BASE_TAR as $IMG_BASE"
    podman import --change 'CMD ["/bin/bash"]' "$IMG_BASE_TAR" "$IMG_BASE" >/dev/null \
      || img_die "podman import failed (above)"
  fi
}

# localhost/mll-rust:<version>: the local stand-in for rust:<version>-bookworm.
img_rust() {
  local sysroot version
  sysroot="$(rustc --print sysroot)" || img_die "no rustc on PATH: the Rust build image copies the host's toolchain"
  version="$(rustc --version | awk '{print $2}')"
  [ -x "$sysroot/bin/cargo" ] || img_die "$sysroot/bin/cargo is missing: the toolchain must include cargo (rustup's does)"
  IMG_RUST="localhost/mll-rust:$version"
  local ign="$IMG_CACHE/rust.ignore"
  printf '%s\n' 'share/doc' 'share/man' 'lib/rustlib/src' 'lib/rustlib/rustc-src' >"$ign"
  local ca=()
  [ -d /usr/local/share/ca-certificates ] && ca=(-v /usr/local/share/ca-certificates:/mnt/extra-ca:ro)
  img_log "building $IMG_RUST (local base + build-essential + the host's Rust $version; cached after the first time)"
  local t0=$SECONDS
  podman build --network host --layers -f "$here/docker/local/rust.Dockerfile" --ignorefile "$ign" \
    --build-arg "BASE_IMAGE=$IMG_BASE" "${ca[@]}" -t "$IMG_RUST" "$sysroot" 2>&1 | sed -u 's/^/[rust] /' \
    || img_die "building $IMG_RUST failed (above)"
  img_log "$IMG_RUST ready in $((SECONDS - t0)) s"
}

# The wheels of scripts/requirements.txt + scripts/data/requirements.txt for
# python3.11 (bookworm's, the host's too), downloaded once with the project
# venv's pip.
img_wheels() {
  IMG_WHEELS="$IMG_CACHE/wheels-torch$MLL_TORCH_VERSION"
  if [ -f "$IMG_WHEELS/.complete" ] && [ "$IMG_WHEELS/.complete" -nt "$here/scripts/requirements.txt" ] \
    && [ "$IMG_WHEELS/.complete" -nt "$here/scripts/data/requirements.txt" ]; then
    return
  fi
  local pip="$MLL_VENV/bin/pip"
  [ -x "$pip" ] || pip="pip3"
  img_log "downloading the wheels for the worker and tools images into $IMG_WHEELS (about 4.5 GB, once)"
  mkdir -p "$IMG_WHEELS"
  "$pip" download --progress-bar off -d "$IMG_WHEELS" \
    -r "$here/scripts/requirements.txt" -r "$here/scripts/data/requirements.txt" pip setuptools wheel \
    | grep -E --line-buffered '^(Collecting|Saved|Successfully)' >&2 \
    || img_die "pip download failed (above); rerun scripts/images (finished wheels are kept)"
  touch "$IMG_WHEELS/.complete"
}

# The secret files the manifests mount (k8s/base/*.yaml: key `password`).
img_fake_secrets() { # DIR
  mkdir -p "$1/amqp" "$1/redis"
  printf 'guest' >"$1/amqp/password"
  printf '' >"$1/redis/password"
  chmod -R a+rX "$1"
}

# Runs an image the way the manifests do: uid 10001, read-only root (no
# podman tmpfs on /run, /var/tmp: only /tmp, the manifests' emptyDir), no network.
img_run() { # IMAGE [podman run args...] -- [command args...]
  local image="$1"; shift
  local opts=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do opts+=("$1"); shift; done
  [ "${1:-}" = -- ] && shift
  podman run --rm --read-only --read-only-tmpfs=false --tmpfs /tmp --user 10001:10001 --network none \
    "${opts[@]}" "$image" "$@"
}

# The image's own USER is the manifests' non-root uid (runAsNonRoot needs a number).
img_check_user() { # IMAGE
  local u
  u="$(podman image inspect --format '{{.Config.User}}' "$1")"
  [ "$u" = "10001:10001" ] || img_die "$1 runs as '$u', not 10001:10001 (USER in its Dockerfile; the manifests' runAsUser)"
  img_log "smoke $1: USER $u, runs with a read-only root: OK"
}

img_smoke_check() { # NAME OUTPUT-FILE GREP-PATTERN
  if grep -q -- "$3" "$2"; then
    img_log "smoke $1: OK"
  else
    sed 's/^/    /' "$2" >&2
    img_die "smoke $1: the output above lacks '$3'"
  fi
}

img_smoke_coordinator() {
  img_check_user "$1"
  local image="$1" out
  out="$(mktemp)"
  img_run "$image" -- --help >"$out" 2>&1 || { cat "$out" >&2; img_die "smoke coordinator --help exited non-zero"; }
  img_smoke_check "coordinator --help" "$out" "submit"
  local sec
  sec="$(mktemp -d)"
  img_fake_secrets "$sec"
  img_run "$image" -v "$here/k8s/base/config:/etc/mll:ro" -v "$sec/amqp:/var/run/secrets/mll/amqp:ro" \
    -v "$sec/redis:/var/run/secrets/mll/redis:ro" -- config --config /etc/mll/cluster.toml >"$out" 2>&1 \
    || { cat "$out" >&2; img_die "smoke coordinator config (the cluster profile, as the manifests mount it) failed"; }
  img_smoke_check "coordinator config --config /etc/mll/cluster.toml" "$out" "rabbitmq:5672"
  rm -rf "$out" "$sec"
}

# The toy world's first model export (scripts/toy-world generate makes it).
img_toy_model() {
  local world="$here/out/toy-world"
  if [ ! -d "$world/models" ]; then
    img_log "generating the toy world into $world (scripts/toy-world generate)"
    bash "$here/scripts/toy-world" generate --out "$world" >&2 || img_die "scripts/toy-world generate failed (above)"
  fi
  IMG_TOY_MODEL="$(find "$world/models" -name model.json | sort | head -1)"
  IMG_TOY_MODEL="${IMG_TOY_MODEL%/model.json}"
  [ -n "$IMG_TOY_MODEL" ] || img_die "no model export under $world/models; rerun scripts/toy-world generate --out $world --force"
}

img_smoke_worker() {
  img_check_user "$1"
  local image="$1" out
  out="$(mktemp)"
  img_run "$image" -- --help >"$out" 2>&1 || { cat "$out" >&2; img_die "smoke worker --help exited non-zero"; }
  img_smoke_check "worker --help" "$out" "check"
  img_toy_model
  chmod -R a+rX "$IMG_TOY_MODEL"
  img_run "$image" -v "$IMG_TOY_MODEL:/model:ro" -e MLL__WORKER__DEVICE=cpu -- check /model --json >"$out" 2>&1 \
    || { cat "$out" >&2; img_die "smoke worker check on the toy model $IMG_TOY_MODEL failed (libtorch in the image?)"; }
  img_smoke_check "worker check (toy model, libtorch loaded)" "$out" '"image_embeddings_shape"'
  rm -f "$out"
}

img_smoke_tools() {
  img_check_user "$1"
  local image="$1" out data
  out="$(mktemp)"
  img_run "$image" -- worker --help >"$out" 2>&1 || { cat "$out" >&2; img_die "smoke tools: worker --help failed"; }
  img_smoke_check "tools: worker --help" "$out" "check"
  data="$(mktemp -d)"
  chown 10001:10001 "$data"
  img_run "$image" -v "$data:/data" -- python /opt/mll/scripts/data/prepare.py --out /data --only digits --no-progress \
    >"$out" 2>&1 || { cat "$out" >&2; img_die "smoke tools: prepare.py --only digits into a volume failed"; }
  [ -f "$data/manifest.json" ] && [ -d "$data/datasets/digits" ] \
    || { cat "$out" >&2; ls -R "$data" | head -20 >&2; img_die "smoke tools: prepare.py wrote no /data/manifest.json and datasets/digits"; }
  img_log "smoke tools: prepare.py --only digits wrote $(find "$data/datasets/digits" -type f | wc -l) files: OK"
  rm -rf "$out" "$data"
}
