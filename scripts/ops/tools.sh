# Sourced by the ops checks: finds or installs, idempotently, the tools they
# need. Everything goes to $MLL_CACHE_DIR/tools, outside the clone:
#   OPS_PYTHON  a small venv with scripts/ops/requirements.txt
#   KUBECTLS    Debian's kubectl (package kubernetes-client, kustomize v2.0.3),
#               unpacked from the .deb (it would clash with another kubectl
#               package), plus the kubectl on PATH when there is a different one
#   promtool / prometheus  from Debian's package prometheus
# shellcheck shell=bash
ops_here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ops_repo="$(cd "$ops_here/../.." && pwd)"
# shellcheck source=scripts/env.sh
source "$ops_repo/scripts/env.sh"
OPS_TOOLS="$MLL_CACHE_DIR/tools"
mkdir -p "$OPS_TOOLS"

ops_log() { printf '[%s] %s\n' "${OPS_CHECK:-ops}" "$*" >&2; }

# apt-get install, running `apt-get update` once if the package is unknown.
ops_apt_install() {
  command -v apt-get >/dev/null || { ops_log "no apt-get: install Debian packages $* by hand"; return 1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null; }
}

ops_python() {
  local hash venv
  hash="$(sha256sum "$ops_here/requirements.txt" | cut -c1-12)"
  venv="$OPS_TOOLS/ops-venv-$hash"
  if [ ! -f "$venv/.complete" ]; then
    ops_log "creating $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$ops_here/requirements.txt"
    touch "$venv/.complete"
  fi
  OPS_PYTHON="$venv/bin/python"
  export OPS_PYTHON
}

ops_kubectls() {
  local dir="$OPS_TOOLS/kubernetes-client"
  if [ ! -x "$dir/usr/bin/kubectl" ]; then
    ops_log "unpacking Debian's kubernetes-client into $dir"
    local tmp
    tmp="$(mktemp -d)"
    # _apt cannot write into a root-only temp folder; it is fine unsandboxed.
    (cd "$tmp" && { apt-get download -q kubernetes-client >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null 2>&1 && apt-get download -q kubernetes-client >/dev/null 2>&1; }; }) \
      || { ops_log "cannot download Debian's kubernetes-client (apt-get download kubernetes-client)"; rm -rf "$tmp"; return 1; }
    rm -rf "$dir.part" && dpkg -x "$tmp"/kubernetes-client_*.deb "$dir.part" && mv "$dir.part" "$dir"
    rm -rf "$tmp"
  fi
  KUBECTLS=("$dir/usr/bin/kubectl")
  local other
  other="$(command -v kubectl || true)"
  if [ -n "$other" ] && ! cmp -s "$other" "$dir/usr/bin/kubectl"; then
    KUBECTLS+=("$other")
  fi
}

ops_prometheus() {
  if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
    ops_log "installing Debian's prometheus (promtool, prometheus)"
    ops_apt_install prometheus || { ops_log "cannot install Debian's prometheus"; return 1; }
  fi
}
