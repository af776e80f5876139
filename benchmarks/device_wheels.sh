#!/usr/bin/env bash
# bash benchmarks/device_wheels.sh [DIR]: download here, into DIR (default .whl, which .git/info/exclude
# should ignore), the wheels that `import aigdetect` and the device chain need and the GPU machine lacks,
# for its Python 3.12, at the versions installed in this checkout's .venv (what the suite tests). Carry
# DIR to the device; benchmarks/device_check.sh installs them with --no-deps and checks the imports
# before it measures anything.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-.whl}
python=${PYTHON:-.venv/bin/python}
# open_clip_torch needs ftfy (and ftfy wcwidth); pillow-heif needs Pillow 13, newer than the machine's.
wanted=(open_clip_torch ftfy wcwidth platformdirs pillow pillow_heif defusedxml c2pa_python)
pins=()
for name in "${wanted[@]}"; do
  pin=$("$python" -m pip list --format=freeze 2>/dev/null | grep -i "^${name//_/[-_]}==" || true)
  [ -n "$pin" ] || { echo "error: $name is not installed in $python's environment" >&2; exit 2; }
  pins+=("$pin")
done
platforms=()
for n in 17 24 27 28 31 34 35; do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${platforms[@]}" --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$dir" "${pins[@]}"
ls "$dir"
