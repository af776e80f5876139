#!/usr/bin/env bash
# The one prepared command for a lent GPU: scan figures (gpu_check.py), then training figures
# (train_throughput.py --recipe paper, ViT-B/32 and ViT-L/14), within 9 minutes in all.
#
#   bash benchmarks/device_check.sh .whl     # on the GPU machine; .whl from benchmarks/device_wheels.sh
#   bash benchmarks/device_check.sh --dry-run  # the same chain on the CPU with tiny sizes (a test runs it)
#
# The wheels are installed with --no-deps into /tmp/site and every module is imported before any
# measurement (device_preflight.py), so a missing wheel costs seconds. Each stage has its own time
# limit and writes its figures to $OUT as it goes; $OUT/device_check.txt gets a line per stage, so a
# run cut short still returns what it measured.
set -uo pipefail
cd "$(dirname "$0")/.."
export OUT=${OUT:-$PWD/device_out} PYTHONUNBUFFERED=1
mkdir -p "$OUT"
python=${PYTHON:-python3}
if [ "${1:-}" = "--dry-run" ]; then
  export PYTHONPATH="$PWD"
  scan=(--device cpu --models tests/assets/tiny.json --png 64 --jpeg 8 --jpeg-size 1600x1200 --batch 4
        --baseline-batch 8 --min-time-s 0.2 --baseline-files 64 --no-compile --budget-s 600)
  train=(--device cpu --backbone-weights none --batch-size 8 --warmup 0 --repeats 1)
  models=(tests/assets/tiny.json tests/assets/tiny.json)
  limits=(300 900 300 300)  # only against a hang: a loaded CI machine is slow
else
  [ -d "${1:-}" ] || { echo "usage: device_check.sh WHEELS_DIR | --dry-run" >&2; exit 2; }
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$1"/*.whl || exit 1
  export PYTHONPATH="$PWD:/tmp/site"
  scan=(--budget-s 290)
  train=(--device cuda --backbone-weights none)
  models=(vitb32 vitl14)
  limits=(60 320 60 100)
fi
log() { echo "$1" | tee -a "$OUT/device_check.txt"; }
stage() {  # stage NAME LIMIT_S COMMAND...: run it under its limit and log how it ended
  local name=$1 limit=$2 began=$SECONDS
  shift 2
  timeout "$limit" "$@"
  local rc=$?
  log "$name: exit $rc after $((SECONDS - began)) s (limit $limit s)"
  return $rc
}
: > "$OUT/device_check.txt"
stage preflight "${limits[0]}" "$python" benchmarks/device_preflight.py || exit 3
stage gpu_check "${limits[1]}" "$python" benchmarks/gpu_check.py "${scan[@]}"
for i in 0 1; do
  name=$(basename "${models[$i]}" .json)
  stage "train_throughput ${models[$i]}" "${limits[$((i + 2))]}" "$python" benchmarks/train_throughput.py \
    --model "${models[$i]}" --recipe paper "${train[@]}" --json "$OUT/train_${name}_$i.json"
done
exit 0
