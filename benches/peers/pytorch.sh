#!/usr/bin/env bash
# The PyTorch peer of `dl4rs bench compare`: installs torch (the version the spec's peer
# figures come from) and numpy from PyPI into a venv, once, and checks it runs.
#
#   bash benches/peers/pytorch.sh            # set up target/peers/venv (about 5 GB: PyPI's
#                                            # Linux torch wheel brings its CUDA libraries)
#   cargo run --release -p dl4rs-cli -- bench compare    # dl4rs beside PyTorch, one run
#
#   bash benches/peers/pytorch.sh run 2      # PyTorch alone, 2 threads, JSON lines
#
# DL4RS_PEER_VENV overrides the venv's place (compare then needs --python or
# DL4RS_PEER_PYTHON=$DL4RS_PEER_VENV/bin/python).
set -euo pipefail
cd "$(dirname "$0")/../.."
venv="${DL4RS_PEER_VENV:-target/peers/venv}"
torch_version="2.15.0"

if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import torch, numpy" 2>/dev/null; then
    echo "installing torch $torch_version and numpy into $venv (from PyPI)"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
    "$venv/bin/pip" install --quiet "torch==$torch_version" numpy
fi

if [ "${1:-}" = "run" ]; then
    threads="${2:-2}"
    shift $(( $# >= 2 ? 2 : 1 ))
    OMP_NUM_THREADS="$threads" MKL_NUM_THREADS="$threads" \
        exec "$venv/bin/python" benches/peers/pytorch_workloads.py --threads "$threads" "$@"
fi

"$venv/bin/python" -c "import torch; print('peer ready: torch', torch.__version__, 'in $venv')"
echo "now: cargo run --release -p dl4rs-cli -- bench compare"
