#!/usr/bin/env bash
# The ten-minute GPU recipe (issue 28) on a machine with torch and no network:
#   scripts/train-gpu.sh [PACK [OUT]] [python -m trainer.recipe flags...]
# PACK (default: pack) comes from `python -m trainer.pack`; OUT (default: $OUT, else
# runs/gpu-recipe) receives validation.md/.json and the best run's delta. The pack's wheels go
# to a private folder ahead of the image's own packages (another transformers, no datasets).
set -euo pipefail
cd "$(dirname "$0")/.."
pack=${1:-pack}
out=${2:-${OUT:-runs/gpu-recipe}}
shift $(( $# < 2 ? $# : 2 ))
python=${PYTHON:-python3}
site=/tmp/xlir-recipe-site
if compgen -G "$pack/wheels/*.whl" >/dev/null; then
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$site" "$pack"/wheels/*.whl
  export PYTHONPATH="$site:$PWD"
else
  export PYTHONPATH="$PWD"
fi
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
exec "$python" -m trainer.recipe --pack "$pack" --output "$out" "$@"
