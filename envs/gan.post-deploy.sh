#!/usr/bin/env bash
# Snakemake runs this inside the freshly created conda environment, from the
# workflow's working directory (the repository root): install the deepsnow
# package itself, without touching the pinned dependencies above.
set -euo pipefail
python -m pip install --no-deps -e .
