#!/usr/bin/env bash
# The side-by-side steps on an accelerator, in one short run: StyleMeUp's 256-px meta-step (second
# and first order, float32) and MA-SBIR's step (float32 and bfloat16), each a JSON file in $OUT.
#   OUT=results PEAK_FP32=67 PEAK_BF16=989 bash benchmarks/device_check.sh [extra train_step flags]
# PEAK_*: the device's datasheet TFLOP/s for that dtype (adds fraction_of_device_peak; the H200's
# dense figures are 67 float32 and 989 bfloat16); each step gets at most $LIMIT seconds.
set -u
OUT=${OUT:-device_check}; LIMIT=${LIMIT:-240}; mkdir -p "$OUT"
peak() { [ -n "${1:-}" ] && echo "--device_peak_tflops=$1"; }
SMU="--config=configs/synthetic_stylemeup.py --config.data.image.size=256 --config.model.embed_dim=128"
run() {  # name, command...
  local name=$1; shift
  echo "$name: $*" >&2
  timeout "$LIMIT" "$@" > "$OUT/$name.json" 2> "$OUT/$name.err"
  echo "$name: exit $? $(python -c "import json,sys; r=json.load(open(sys.argv[1])); t=r.get('train', r); print(t.get('step_time_s', {}).get('median_s'), t.get('fraction_of_device_peak', t.get('utilisation', {}).get('fraction_of_device_peak')))" "$OUT/$name.json" 2>/dev/null)" >&2
}
python -c "import jax; print(jax.devices())" > "$OUT/devices.txt" 2>&1
run stylemeup_second python -m benchmarks.train_step $SMU --iters=5 --warmup=1 $(peak "${PEAK_FP32:-}") "$@"
run stylemeup_first python -m benchmarks.train_step $SMU --config.meta.first_order=True --iters=5 --warmup=1 $(peak "${PEAK_FP32:-}") "$@"
run masbir_float32 python -m benchmarks.masbir_step --dtype=float32 --iters=5 --warmup=1 $(peak "${PEAK_FP32:-}")
run masbir_bfloat16 python -m benchmarks.masbir_step --dtype=bfloat16 --iters=5 --warmup=1 $(peak "${PEAK_BF16:-}")
