# Sourced after scripts/env.sh: installs scripts/hosted/requirements.txt (a
# maintained OpenAI-compatible embedding server, for the hosted-embedder test
# only) into its own venv under MLL_CACHE_DIR, once per content of that file.
# The venv sees the project venv's packages (torch, sentence-transformers)
# through a .pth file, so torch is not downloaded twice; what the server pins
# differently is installed into its own venv and wins.
# Sets MLL_SERVER_VENV, or leaves it empty with the reason in
# MLL_SERVER_SKIP when the server cannot be installed here.
# shellcheck shell=bash
_srv_req="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/requirements.txt"
MLL_SERVER_VENV="$MLL_CACHE_DIR/server-venv-$(sha256sum "$_srv_req" | cut -c1-12)"
MLL_SERVER_SKIP=""
if [ ! -f "$MLL_SERVER_VENV/.installed" ]; then
  if [ ! -x "$MLL_VENV/bin/python" ]; then
    MLL_SERVER_SKIP="no project venv at $MLL_VENV (run scripts/setup first)"
  else
    echo "installing the embedding server ($_srv_req) into $MLL_SERVER_VENV" >&2
    rm -rf "$MLL_SERVER_VENV"
    "$MLL_VENV/bin/python" -m venv "$MLL_SERVER_VENV"
    _site="$("$MLL_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    _own="$("$MLL_SERVER_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    echo "$_site" > "$_own/mll-project-venv.pth"
    if "$MLL_SERVER_VENV/bin/pip" install --quiet --disable-pip-version-check -r "$_srv_req" >&2; then
      touch "$MLL_SERVER_VENV/.installed"
    else
      MLL_SERVER_SKIP="pip could not install $_srv_req into $MLL_SERVER_VENV (see the pip output above)"
    fi
    unset _site _own
  fi
fi
[ -z "$MLL_SERVER_SKIP" ] || MLL_SERVER_VENV=""
export MLL_SERVER_VENV MLL_SERVER_SKIP
unset _srv_req
