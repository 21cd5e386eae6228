# The two commands a newcomer needs (see README.md):
#   make book   set up (.venv, packages, data) and build the book into _build/html
#   make test   set up and run every test: unit tests, notebooks in fast mode, the book build
# And for maintainers:
#   make notebooks   re-execute every chapter in full mode, storing the outputs the book shows
VENV := .venv/bin
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1

.PHONY: setup book test notebooks clean

setup:
	bash tools/setup.sh

book: setup
	$(VENV)/jupyter-book build . -W -n --keep-going
	@echo "book: open _build/html/index.html"

test: setup
	TERNLIB_FAST=1 $(VENV)/python -m pytest -n 2 --nbmake tests ternlib book

notebooks: setup
	$(VENV)/python tools/run_notebooks.py

clean:
	rm -rf _build .pytest_cache
