#!/usr/bin/env bash
# bash benchmarks/gpu_check.sh WHEELS_DIR [gpu_check.py options]: install the wheels the GPU machine lacks (open_clip_torch, ftfy, wcwidth, platformdirs, pillow-heif, defusedxml, turbojpeg) and this checkout (on PYTHONPATH if its build backend is too old there), then run the check in under 8 minutes.
set -uo pipefail; python3 -m pip install -q --no-deps --no-index "$1"/*.whl || exit 1; python3 -m pip install -q --no-deps --no-index --no-build-isolation -e . || export PYTHONPATH="$PWD"; PYTHONUNBUFFERED=1 timeout 465 python3 benchmarks/gpu_check.py --budget-s 420 "${@:2}"
