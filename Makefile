# The two commands a newcomer needs (see README.md):
#   make book   set up (.venv, packages, data) and build the book into _build/html
#   make test   set up and run every test: unit tests, notebooks in fast mode, the book build and its
#               check in headless Chromium (tools/check_site.py)
# And for maintainers:
#   make results     the text runs behind the book: evaluation of FP32 and round-to-nearest, the two
#                    distillation recipes and their evaluation, the ablation (hours on 2 CPU cores)
#   make results-gpu the large-batch recipe (chapters 2-4): distill on a CUDA GPU, evaluate on the CPU
#   make results-queue the CPU retrieval recipe (chapters 2-3): probes, then an hour of distillation on 2 cores
#   make results-cpu-large the large-batch recipe on the CPU (chapters 2-3): batches of 256 in micro-batches, an hour
#   make results-cpu-large-seed1 its replicate with seed 1 (another hour)
#   make results-cpu-large-seed2 a third seed, trained with the teacher cache (another hour)
#   make image       the image experiment of chapter 5 from scratch (~18 min on 2 CPU cores)
#   make bench       the CPU benchmark behind chapter 4 (a few minutes; run it on a quiet machine)
#   make bench-onnx  the large-batch-cpu checkpoint exported to ONNX Runtime: speed and quality (~11 min)
#   make notebooks   re-execute every chapter (book/*.ipynb, in _toc.yml order) in full mode, storing
#                    the outputs the book shows; prints each chapter's time
#   make check-site  open every page of the built book in headless Chromium (after make book)
# And for readers who run the chapters:
#   make lab         set up and open the chapters in JupyterLab (book/NN_*.md open as notebooks)
VENV := .venv/bin
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1

.PHONY: setup book test lab results results-gpu results-queue results-cpu-large results-cpu-large-seed1 results-cpu-large-seed2 baselines image bench bench-onnx notebooks check-site clean

setup:
	bash tools/setup.sh

# --all: Sphinx copies _static (the bundled JavaScript that tools/setup.sh may have updated) only when it writes
# pages, and writes none when no chapter changed (a full build takes seconds: the chapters' outputs are stored)
book: setup
	$(VENV)/jupyter-book build . -W -n --keep-going --all
	@echo "book: open _build/html/index.html"

test: setup
	$(VENV)/ruff check .
	TERNLIB_FAST=1 $(VENV)/python -m pytest -n 2 --dist loadgroup --nbmake --nbmake-timeout=1200 tests ternlib book

# JupyterLab on the chapters: jupytext opens book/NN_name.md as a notebook (saving writes the .ipynb too),
# and ipywidgets run live; LAB_ARGS passes more options (LAB_ARGS="--no-browser --port 8899").
# JupyterLab refuses to run as root without --allow-root.
lab: setup
	$(VENV)/jupyter lab book/ $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

ART := book/artifacts/text
TL := $(VENV)/python -m ternlib
STEPS ?= 600
results: setup
	$(TL) eval --preset book --threads 1 --out $(ART)/fp32.json
	$(TL) eval --preset book --threads 1 --round-to-nearest --out $(ART)/rtn.json --baseline $(ART)/fp32.json
	for r in paper best; do \
	  $(TL) distill --recipe $$r --steps $(STEPS) --bf16 --int8-embeddings --checkpoint-every 100 --threads 1 --out $(ART)/$$r && \
	  $(TL) eval --preset book --threads 1 --model $(ART)/$$r/model --activations float --record --out $(ART)/$$r/eval.json --baseline $(ART)/fp32.json || exit 1; \
	done
	$(TL) eval --preset book --threads 1 --model $(ART)/best/model --activations int8 --record --out $(ART)/best/eval_a8.json --baseline $(ART)/fp32.json
	$(VENV)/python experiments/ablation.py --out $(ART)/ablation.json --axes beta losses --steps 40 --threads 1

# the large-batch recipe of chapters 2-4: distill on a CUDA GPU (2 min on an H100), evaluate with float and
# int8 activations (CPU)
results-gpu: setup
	$(TL) distill --recipe large-batch --device cuda --int8-embeddings --out $(ART)/large_batch
	$(TL) eval --preset book --threads 1 --model $(ART)/large_batch/model --activations float --record --out $(ART)/large_batch/eval.json --baseline $(ART)/fp32.json
	$(TL) eval --preset book --threads 1 --model $(ART)/large_batch/model --activations int8 --record --out $(ART)/large_batch/eval_a8.json --baseline $(ART)/fp32.json

# the CPU retrieval recipe of chapters 2-3: 200-step probes of four loss variants, then the queue-kl recipe (best +
# similarity KL over a queue of 4,096 teacher embeddings, 2,500 steps: ~50 min on 2 cores with AMX bf16) and its
# evaluation
results-queue: setup
	$(VENV)/python experiments/retrieval_probes.py --steps 200 --threads 2 --out $(ART)/retrieval_probes.json
	$(TL) distill --recipe queue-kl --int8-embeddings --checkpoint-every 500 --threads 2 --out $(ART)/queue_kl
	$(TL) eval --preset book --threads 2 --model $(ART)/queue_kl/model --activations float --record --out $(ART)/queue_kl/eval.json --baseline $(ART)/fp32.json

# the large-batch recipe on the CPU (chapters 2-3): the GPU recipe's batches of 256, run 32 sentences at a time
# (micro_batch_size; the batch-coupled terms through a cached gradient), 540 steps: ~1 h on 2 cores; and its evaluation
results-cpu-large: setup
	$(TL) distill --recipe large-batch-cpu --int8-embeddings --checkpoint-every 100 --threads 2 --out $(ART)/large_batch_cpu
	$(TL) eval --preset book --threads 2 --model $(ART)/large_batch_cpu/model --activations float --record --out $(ART)/large_batch_cpu/eval.json --baseline $(ART)/fp32.json

# its seed-1 replicate (chapters 2-3), another hour: the run and its scores are stored, not the model
results-cpu-large-seed1: setup
	$(TL) distill --recipe large-batch-cpu --seed 1 --int8-embeddings --checkpoint-every 100 --threads 2 --out runs/large_batch_cpu_seed1
	$(TL) eval --preset book --threads 2 --model runs/large_batch_cpu_seed1/model --activations float --out runs/large_batch_cpu_seed1/eval.json --baseline $(ART)/fp32.json
	mkdir -p $(ART)/large_batch_cpu/seed1
	cp runs/large_batch_cpu_seed1/run.json runs/large_batch_cpu_seed1/history.json runs/large_batch_cpu_seed1/eval.json $(ART)/large_batch_cpu/seed1/

# a third seed, trained with the teacher cache (--cache-teacher: the same training up to float16 rounding of the
# teacher's stored states; chapter 2): the run and its scores are stored, not the model
results-cpu-large-seed2: setup
	$(TL) distill --recipe large-batch-cpu --seed 2 --cache-teacher --int8-embeddings --checkpoint-every 100 --threads 2 --out runs/large_batch_cpu_seed2
	$(TL) eval --preset book --threads 2 --model runs/large_batch_cpu_seed2/model --activations float --out runs/large_batch_cpu_seed2/eval.json --baseline $(ART)/fp32.json
	mkdir -p $(ART)/large_batch_cpu/seed2
	cp runs/large_batch_cpu_seed2/run.json runs/large_batch_cpu_seed2/history.json runs/large_batch_cpu_seed2/eval.json $(ART)/large_batch_cpu/seed2/

# the integer-weight baselines of chapter 3 (int8 / int4 / int2 round to nearest with groups, 2-bit GPTQ),
# evaluated like the ternary models (~1 h on 2 CPU cores); and retrieval against corpus size (needs the ANN
# embedding cache of `python -m ternlib ann`, chapter 6)
baselines: setup
	mkdir -p $(ART)/baselines
	for spec in "8 row rtn" "4 128 rtn" "4 16 rtn" "2 128 rtn" "2 16 rtn" "2 16 gptq"; do set -- $$spec; \
	  g=$$( [ $$2 = row ] && echo row || echo g$$2 ); \
	  $(TL) eval --preset book --threads 1 --int-bits $$1 --int-group $$2 --int-method $$3 \
	    --out $(ART)/baselines/int$$1-$$g-$$3.json --baseline $(ART)/fp32.json || exit 1; \
	done
	$(VENV)/python experiments/corpus_size.py --model $(ART)/large_batch/model --out $(ART)/corpus_size.json

# the image experiment of chapter 5 from scratch: teacher, two distillations, probes (~18 min on 2 cores)
image: setup
	rm -rf book/artifacts/image
	$(TL) vision --out book/artifacts/image

bench: setup
	$(TL) bench --checkpoint $(ART)/best/model --out book/artifacts/kernels/bench_cpu.json --plot book/artifacts/kernels/bench_cpu.png

bench-onnx: setup
	$(VENV)/python experiments/onnx_ternary.py --model $(ART)/large_batch_cpu/model --out book/artifacts/kernels/onnx_ternary.json

notebooks: setup
	$(VENV)/python tools/run_notebooks.py

check-site:
	$(VENV)/python tools/check_site.py

clean:
	rm -rf _build .pytest_cache
