#!/usr/bin/env bash
# The README's main job on a fresh install: a new virtual environment with nothing but
# `pip install .` (no extras), then a short `fusedrnn train textgen` run that must exit 0 and leave
# its checkpoint and its plot. Guards against a run-time import that is not a declared dependency.
# Usage: .ci/fresh_install_main_job.sh [python]   (run from anywhere; default python3)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
python="${1:-python3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

"$python" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --disable-pip-version-check "$repo"

# Outside the repository, so that nothing but the installed package can be imported.
cd "$work"
"$work/venv/bin/fusedrnn" train textgen --epochs 1 --steps 5 --no-progress --out-dir "$work/runs"

for f in "$work/runs/textgen.npz" "$work/runs/textgen.png"; do
  if [[ ! -s "$f" ]]; then
    echo "fresh-install main job: expected $f after the run, found nothing" >&2
    exit 1
  fi
done
echo "fresh-install main job: OK (checkpoint and plot written)"
