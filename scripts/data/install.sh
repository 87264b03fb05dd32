# Sourced after scripts/env.sh: installs scripts/data/requirements.txt into the
# project venv once per content of that file (stamp in the venv), so the data
# tools' extra packages do not change the venv's cache key.
# shellcheck shell=bash
_data_req="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/requirements.txt"
_data_stamp="$MLL_VENV/.mll-data-$(sha256sum "$_data_req" | cut -c1-12)"
if [ ! -f "$_data_stamp" ]; then
  [ -x "$MLL_VENV/bin/pip" ] || { echo "no venv at $MLL_VENV: run scripts/setup first" >&2; exit 1; }
  echo "installing the data tools' packages ($_data_req) into $MLL_VENV" >&2
  "$MLL_VENV/bin/pip" install --quiet --disable-pip-version-check -r "$_data_req"
  touch "$_data_stamp"
fi
unset _data_req _data_stamp
