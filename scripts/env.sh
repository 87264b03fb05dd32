# Shared environment for the project's scripts: where the cached venv and cargo
# target live, and how cargo finds libtorch. Source it; it changes nothing on disk.
export MLL_TORCH_VERSION="2.13.0"
MLL_CACHE_DIR="${MLL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mll-cluster}"
export MLL_CACHE_DIR
_py="$(python3 -c 'import sys; print(f"py{sys.version_info[0]}.{sys.version_info[1]}")')"
_req_hash="$(sha256sum "$(dirname "${BASH_SOURCE[0]}")/requirements.txt" | cut -c1-12)"
export MLL_VENV="${MLL_VENV:-$MLL_CACHE_DIR/venv-torch$MLL_TORCH_VERSION-$_py-$_req_hash}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$MLL_CACHE_DIR/target-torch$MLL_TORCH_VERSION}"
# tch's torch-sys finds libtorch inside the venv's torch package.
export LIBTORCH_USE_PYTORCH=1
export PATH="$MLL_VENV/bin:$PATH"
unset _py _req_hash
