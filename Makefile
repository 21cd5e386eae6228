# The two commands a newcomer needs (see README.md):
#   make book   set up (.venv, packages, data) and build the book into _build/html
#   make test   set up and run every test: unit tests, notebooks in fast mode, the book build
# And for maintainers:
#   make results     the full text runs behind the book (distillation + full evaluation; ~1.5 h on 2 cores)
#   make notebooks   re-execute every chapter in full mode, storing the outputs the book shows
VENV := .venv/bin
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1

.PHONY: setup book test results notebooks clean

setup:
	bash tools/setup.sh

book: setup
	$(VENV)/jupyter-book build . -W -n --keep-going
	@echo "book: open _build/html/index.html"

test: setup
	TERNLIB_FAST=1 $(VENV)/python -m pytest -n 2 --nbmake tests ternlib book

ART := book/artifacts/text
TL := $(VENV)/python -m ternlib
STEPS ?= 800
results: setup
	$(TL) eval --out $(ART)/fp32.json
	$(TL) eval --round-to-nearest --out $(ART)/rtn.json --baseline $(ART)/fp32.json
	for r in paper best; do \
	  $(TL) distill --recipe $$r --steps $(STEPS) --bf16 --int8-embeddings --out $(ART)/$$r && \
	  $(TL) eval --model $(ART)/$$r/model --out $(ART)/$$r/eval.json --baseline $(ART)/fp32.json || exit 1; \
	done
	$(TL) ablate --out $(ART)/ablation.json --axes beta granularity losses

notebooks: setup
	$(VENV)/python tools/run_notebooks.py

clean:
	rm -rf _build .pytest_cache
