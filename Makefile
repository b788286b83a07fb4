# electra-lightning — `make help` lists the targets.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
DEMO := data/demo

.PHONY: help venv demo test test-all bench lint format clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

venv: $(VENV)/.installed  ## create .venv with the pinned dependencies (TORCH_INDEX=URL: torch from that index)

# PyPI's torch on Linux x86_64 is the CUDA build (several GB of CUDA libraries). A CPU-only
# machine can take the CPU build first: make venv TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(if $(TORCH_INDEX),$(VENV)/bin/pip install -q torch==2.13.0 --index-url $(TORCH_INDEX))
	$(VENV)/bin/pip install -q -r requirements.txt pytest ruff py-rattler
	$(VENV)/bin/pip install -q --no-deps -e .
	touch $@

demo: venv  ## build a corpus from Python's own docs, train tokenizer + tiny ELECTRA, export, show and explain it
	$(PY) data/make_demo_corpus.py --output_dir $(DEMO)
	$(PY) -m electra_lightning tokenizer --files $(DEMO)/train.txt --vocab_size 8000 --output_dir $(DEMO)/tokenizer
	rm -rf runs/tiny
	$(PY) -m electra_lightning fit --config configs/tiny.yaml
	$(PY) -m electra_lightning export --ckpt_path runs/tiny/checkpoints/last.ckpt --output_dir runs/tiny/export
	$(PY) -m electra_lightning predict fill-mask --model runs/tiny/export/generator \
		--text "the function returns a [MASK] of the arguments."
	$(PY) -m electra_lightning predict detect --model runs/tiny/export/discriminator \
		--text "the function returns a list of the arguments , raising an error if the file is missing ."
	$(PY) -m electra_lightning predict detect --model runs/tiny/export/discriminator \
		--text "the function returns a banana of the arguments , raising an error if the elephant is missing ."
	$(PY) -m electra_lightning summary runs/tiny \
		--checkpoint runs/tiny/checkpoints/last.ckpt --export_dir runs/tiny/export --after_predictions true

test: venv  ## the fast loop: unit and in-process tests (~2 min on 2 cores)
	$(PY) -m pytest -q -m "not slow"

test-all: venv  ## the full suite: + multi-process, end-to-end and experiment tests (what CI runs)
	$(PY) -m pytest -q --durations=25

bench: venv  ## benchmark: step vs a naive baseline, data, memory, FLOPs (ratios; BENCH=full: full-size data sections)
	$(PY) benchmarks/bench.py $(if $(filter full,$(BENCH)),--full)

lint: venv  ## ruff check + format check
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: venv  ## ruff format + autofix
	$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

clean:  ## remove runs and the demo corpus (keeps .venv)
	rm -rf runs $(DEMO)
