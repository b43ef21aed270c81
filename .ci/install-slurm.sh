#!/usr/bin/env bash
# CI: what tests/test_slurm.py needs to start a one-node SLURM cluster (tests/slurm_cluster.py):
# Debian's SLURM and munge (about 20 s, as root) and the executor plugin in the venv.
# The test fails in CI (CI=true) when any of it is missing; locally it is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
    echo "install-slurm.sh: run as root (apt-get, and the cluster's daemons)" >&2
    exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge
.venv/bin/python -m pip install -q -e ".[slurm]"
