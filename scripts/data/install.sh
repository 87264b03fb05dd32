# Sourced after scripts/env.sh: installs scripts/data/requirements.txt into the
# project venv once per content of that file (stamp in the venv), so the data
# tools' extra packages do not change the venv's cache key.
# shellcheck shell=bash
# requirements-test.txt (the real CLIP_benchmark, for a test) comes with it.
_data_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
_data_req="$_data_dir/requirements.txt"
_data_test_req="$_data_dir/requirements-test.txt"
_data_stamp="$MLL_VENV/.mll-data-$(cat "$_data_req" "$_data_test_req" | sha256sum | cut -c1-12)"
if [ ! -f "$_data_stamp" ]; then
  [ -x "$MLL_VENV/bin/pip" ] || { echo "no venv at $MLL_VENV: run scripts/setup first" >&2; exit 1; }
  echo "installing the data tools' packages ($_data_req, $_data_test_req) into $MLL_VENV (a few minutes the first time)" >&2
  "$MLL_VENV/bin/pip" install --disable-pip-version-check --progress-bar on -r "$_data_req" -r "$_data_test_req" \
    | grep -E "^(Collecting|Successfully)" >&2 || true
  "$MLL_VENV/bin/python" -c "import h5py, av, pytest, clip_benchmark.datasets.builder" \
    || { echo "installing the data tools' packages into $MLL_VENV failed (see pip's output above)" >&2; exit 1; }
  touch "$_data_stamp"
fi
unset _data_dir _data_req _data_test_req _data_stamp
