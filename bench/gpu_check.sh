#!/usr/bin/env bash
# The vLLM path end to end on a GPU machine without internet, in well under 10 minutes:
#   1. vLLM and a CUDA device are there (else: say so and stop, exit 3);
#   2. each embedded model (its GGUF file, tokenizer read from the GGUF) through semcal's vLLM
#      backend: samples/s and generated tokens/s for 20 questions x 20 samples;
#   3. `semcal run --backend vllm` into a store and `semcal analyze` of it (the whole road);
#   4. the same run with the engine in a Ray actor (--executor ray, one GPU), equal question
#      count, to check the one-engine-per-process path.
# Usage: bash bench/gpu_check.sh [OUT_DIR]     (needs: pip install -e '.[vllm,ray,models]')
set -uo pipefail
OUT=${1:-$(mktemp -d)}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export RAY_USAGE_STATS_ENABLED=0 VLLM_NO_USAGE_STATS=1 HF_HUB_OFFLINE=1

$PY - <<'EOF' || exit 3
import importlib.util, sys
if importlib.util.find_spec("vllm") is None:
    sys.exit("gpu_check: vLLM is not installed here (pip install 'semcal[vllm]')")
import torch
if not torch.cuda.is_available():
    sys.exit("gpu_check: no CUDA device")
import vllm
print(f"gpu_check: vllm {vllm.__version__}, torch {torch.__version__}, "
      f"{torch.cuda.get_device_name(0)}")
EOF

$PY - "$OUT" <<'EOF'
import sys, time
from semcal.backends.models import resolve_model
from semcal.backends.vllm import VLLMSampler
from semcal.prompts import build_prompt, stop_strings
from semcal.runner import load_spec_questions
from semcal.spec import RunSpec
from semcal.types import SamplingParams

qs = load_spec_questions(RunSpec(model="-", dataset="world", limit=20))
for name in ("gemma-3-270m", "smollm2-135m-instruct"):
    spec = resolve_model(name)
    t0 = time.perf_counter()
    s = VLLMSampler(str(spec.path), max_model_len=2048, gpu_memory_utilization=0.3,
                    chat=spec.is_chat)
    load = time.perf_counter() - t0
    prompts = [build_prompt(q, "sentence", chat=s.is_chat) for q in qs]
    params = SamplingParams(temperature=1.0, max_tokens=48, seed=0, logprobs=True,
                            stop=tuple(stop_strings("sentence", s.is_chat)))
    t0 = time.perf_counter()
    out = s.sample(prompts, 20, params)
    dt = time.perf_counter() - t0
    n = sum(len(r) for r in out)
    toks = sum(c.n_tokens for r in out for c in r)
    ok = all(c.token_logprobs is None or all(x <= 0 for x in c.token_logprobs)
             for r in out for c in r)
    print(f"gpu_check: {name}: load {load:.1f} s; {n} samples in {dt:.2f} s = {n / dt:.0f} "
          f"samples/s, {toks / dt:.0f} tokens/s; log-probs <= 0: {ok}")
    s.close()
EOF
rc=$?

GGUF=$($PY -c "from semcal.backends.models import resolve_model; print(resolve_model('smollm2-135m-instruct').path)")
semcal run --backend vllm --model "$GGUF" --dataset world --limit 20 --samples 20 \
  --style concise --out "$OUT/vllm" --backend-opt max_model_len=2048 \
  --backend-opt gpu_memory_utilization=0.3 --backend-opt chat=true -q || rc=1
semcal analyze "$OUT/vllm" -q || rc=1
cat > "$OUT/ray.toml" <<TOML
model = "$GGUF"
backend = "vllm"
dataset = "world"
limit = 20
samples = 20
style = "concise"
[backend_options]
max_model_len = 2048
gpu_memory_utilization = 0.3
chat = true
[executor]
kind = "ray"
workers = 1
num_gpus = 1
TOML
semcal run "$OUT/ray.toml" --out "$OUT/vllm-ray" -q || rc=1
echo "gpu_check: done (exit $rc), stores in $OUT"
exit $rc
