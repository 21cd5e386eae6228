"""Open every page of the built book in headless Chromium, as an offline reader would, and fail on what a reader
would see broken.

Usage: python tools/check_site.py [HTML_DIR]        (default: _build/html; build it first with `make book`)
       python tools/check_site.py HTML_DIR --page 'book/06_*.html'     (only the pages matching a pattern)

The site is served from localhost (http.server in a thread) and Chromium resolves no other host,
so anything the book fetches from a CDN fails, as it does for a reader without a network. For each
page the check waits for the page and for MathJax, then reports:

- images that did not load (``naturalWidth == 0``);
- broken internal links: a local page or file that does not exist, or a ``#anchor`` with no
  element of that id on the target page;
- stored cell outputs that show an error: a traceback, an error output, or a stderr output with
  ``Error`` / ``Traceback`` / ``Exception`` in it (and error outputs in the copied notebooks,
  ``_sources/**/*.ipynb``);
- a page whose main content is empty;
- math not rendered: a page with math whose MathJax did not load, that loads MathJax from
  anywhere but this site, that has math elements without MathJax output (``mjx-container``), or
  that shows a TeX error (``mjx-merror``);
- stored ipywidgets that did not render (require.js and the widget manager are bundled in
  ``_static/``, see _config.yml ``nb_ipywidgets_js``: each widget view must turn into a widget);
- anything loaded from off the site: a ``<script src>`` or a stylesheet / preload ``<link href>``
  in the page's HTML that is absolute (``http:``, ``https:``, ``//``), and any request the browser
  makes to another host while the page loads (Chromium's network log: scripts that other scripts
  insert, fonts, ``fetch``, web sockets); and a request to this site that fails (HTTP 4xx/5xx,
  e.g. a bundled file missing);
- a font that a stylesheet declares (``@font-face``) and that does not load, whether or not this
  load of the page happened to need it.

Exit status: 0 when every page passes, 1 when any problem is found (each printed as
``FAIL <page>: <problem>``), 2 when the check cannot run (no build, no Chromium). Chromium and
its driver come from Debian: ``apt-get install chromium chromium-driver`` (tools/setup.sh does it).
Takes well under a minute for the whole book.
"""
from __future__ import annotations

import argparse
import fnmatch
import functools
import http.server
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = [  # headless, and nothing that phones home (it would stall without a network)
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1280,1000",
    # every host but this machine is unresolvable: CDN requests fail at once, as offline
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
]
GENERATED_PAGES = {"genindex.html", "search.html", "py-modindex.html"}  # Sphinx's own, may be near empty
SKIP_DIRS = {"_static", "_sources", "_images", "_downloads", "_panels_static", "jupyter_execute"}
MIN_MAIN_TEXT = 100  # characters of text in the main content for a page not to count as empty
ERROR_TEXT = re.compile(r"Traceback \(most recent call last\)|\b\w*(Error|Exception)\b")

# What the browser reports for one page (runs after the page and its MathJax are done).
COLLECT_JS = r"""
const main = document.querySelector("article.bd-article") || document.querySelector("main") || document.body;
const imgs = [...document.images].map(i => ({src: i.getAttribute("src") || "", url: i.currentSrc || i.src,
                                             complete: i.complete, width: i.naturalWidth}));
const links = [...document.querySelectorAll("a[href]")].map(a => a.getAttribute("href"));
const ids = [...document.querySelectorAll("[id]")].map(e => e.id)
    .concat([...document.querySelectorAll("a[name]")].map(a => a.getAttribute("name")));
const mathEls = [...main.querySelectorAll(".math")];
const unrendered = mathEls.filter(e => !e.querySelector("mjx-container"));
const outputs = (sel) => [...main.querySelectorAll(sel)].map(e => e.innerText.slice(0, 300));
return {
  title: document.title,
  mainText: main.innerText.trim().length,
  images: imgs, links: links, ids: ids,
  scripts: [...document.querySelectorAll("script[src]")].map(s => s.src),
  widgets: document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]').length,
  math: mathEls.length, mjx: main.querySelectorAll("mjx-container").length,
  unrendered: unrendered.slice(0, 3).map(e => e.textContent.trim().slice(0, 80)), unrenderedCount: unrendered.length,
  merror: [...main.querySelectorAll("mjx-merror")]
    .map(e => (e.getAttribute("data-mjx-error") || e.textContent).slice(0, 120)),
  mathjax: window.MathJax ? (window.MathJax.startup ? "loaded" : "config only") : "absent",
  tracebacks: outputs(".output.traceback, .output.error"),
  stderr: outputs(".output.stderr"),
};
"""
MATHJAX_JS = r"""
const done = arguments[arguments.length - 1];
if (!window.MathJax || !window.MathJax.startup || !window.MathJax.startup.promise) { done("none"); return; }
window.MathJax.startup.promise.then(() => done("ok"), e => done("error: " + e));
"""
IMAGES_DONE_JS = "return [...document.images].every(i => i.complete);"
# Stored widget views (myst-nb writes one <script type=...widget-view+json> each) and how many the widget
# manager has rendered (each into a .widget-subarea holding the widget's element).
WIDGETS_JS = r"""
return {views: document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]').length,
        rendered: [...document.querySelectorAll(".widget-subarea")]
                  .filter(e => e.querySelector(".jupyter-widgets")).length,
        manager: typeof window.require === "function" && typeof window.define === "function"};
"""
WIDGET_WAIT_S = 15
# Every font the page's stylesheets declare (@font-face src URLs, in <style> tags too: the widget manager injects
# its Font Awesome CSS) and whether it loads (HEAD). A browser fetches a font only when text needs it, so a wrong
# font URL can hide on one load and fail on the next; this asks for all of them.
FONTS_JS = r"""
const done = arguments[arguments.length - 1];
const urls = new Set();
const walk = (rules, base) => {
  for (const r of rules) {
    if (r instanceof CSSFontFaceRule) {
      for (const m of (r.style.getPropertyValue("src") || "").matchAll(/url\(\s*["']?([^"')]+)["']?\s*\)/g)) {
        if (!m[1].startsWith("data:")) urls.add(new URL(m[1], base).href);
      }
    } else if (r.cssRules) { walk(r.cssRules, base); }
  }
};
for (const sheet of document.styleSheets) {
  let rules; try { rules = sheet.cssRules; } catch (e) { continue; }  // another origin's sheet: not readable
  walk(rules, sheet.href || document.baseURI);
}
Promise.all([...urls].map(u => new URL(u).origin !== location.origin ? [u, -1]  // off the site: not fetched
                               : fetch(u, {method: "HEAD"}).then(r => [u, r.status], e => [u, 0])))
  .then(done, e => done([["error: " + e, 0]]));
"""
OFF_SITE = re.compile(r"^\s*(https?:)?//", re.I)  # an absolute URL: another host (the built site links relatively)
NETWORK_SCHEMES = ("http://", "https://", "ws://", "wss://")
IGNORED_REQUESTS = {"/favicon.ico"}  # the browser asks for it by itself; the book has none


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # no access log on stderr
        pass


def serve(directory: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Serve `directory` on 127.0.0.1 (a free port) from a daemon thread; returns (server, base URL)."""
    handler = functools.partial(_Quiet, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def find_browser() -> tuple[str, str] | str:
    """(chromium, chromedriver) paths, or the reason they cannot be found."""
    chromium = os.environ.get("CHROMIUM") or next(
        (p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)
    driver = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver")
    if chromium and driver:
        return chromium, driver
    return ("Chromium and its driver are needed: apt-get install chromium chromium-driver "
            "(as root; tools/setup.sh installs them), or set CHROMIUM and CHROMEDRIVER")


def start_browser(chromium: str, driver_path: str):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in CHROMIUM_ARGS:
        options.add_argument(arg)
    options.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix='check-site-')}")  # fresh profile
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})  # the network log (network_problems)
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    return driver


def pages_of(html: Path) -> list[Path]:
    return sorted(p for p in html.rglob("*.html") if not SKIP_DIRS & set(p.relative_to(html).parts[:-1]))


class _Resources(HTMLParser):
    """What a page's HTML loads: <script src>, and <link href> for stylesheets and preloads."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script" and a.get("src"):
            self.urls.append(("script", a["src"]))
        elif tag == "link" and a.get("href"):
            rel = set((a.get("rel") or "").lower().split())
            if rel & {"stylesheet", "preload", "modulepreload"}:
                self.urls.append(("stylesheet" if "stylesheet" in rel else "preload", a["href"]))


def remote_resources(text: str) -> list[str]:
    """The scripts and stylesheets an HTML page loads from off the site (absolute http(s) or protocol-relative
    URLs), as ``"script https://..."``; empty for a self-contained page.

    >>> remote_resources('<script src="_static/a.js"></script><link rel="stylesheet" href="../b.css">')
    []
    >>> remote_resources('<script src="https://cdn.example.org/x.js"></script>'
    ...                  '<link rel="stylesheet" href="//cdn.example.org/y.css"><a href="https://example.org">x</a>')
    ['script https://cdn.example.org/x.js', 'stylesheet //cdn.example.org/y.css']
    """
    parser = _Resources()
    parser.feed(text)
    return [f"{kind} {url}" for kind, url in parser.urls if OFF_SITE.match(url)]


def network_log(driver) -> list[dict]:
    """The Chromium network events (``Network.*``) logged since the last call (start_browser turns the log on)."""
    events = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method", "").startswith("Network."):
            events.append(msg)
    return events


def network_problems(events: list[dict], origin: str) -> tuple[list[str], int]:
    """(problems, number of http(s) requests): requests to any other host than `origin` (http(s), web sockets), and
    requests to the site that failed with an HTTP error."""
    off_site, failed, n = [], [], 0
    for ev in events:
        params = ev.get("params", {})
        if ev["method"] == "Network.requestWillBeSent":
            url = params.get("request", {}).get("url", "")
            n += url.lower().startswith(NETWORK_SCHEMES)
        elif ev["method"] == "Network.webSocketCreated":
            url = params.get("url", "")
        elif ev["method"] == "Network.responseReceived":
            resp = params.get("response", {})
            url = resp.get("url", "")
            if (url.startswith(origin) and resp.get("status", 0) >= 400
                    and urlsplit(url).path not in IGNORED_REQUESTS and url not in failed):
                failed.append(url)
            continue
        else:
            continue
        if url.lower().startswith(NETWORK_SCHEMES) and not url.startswith(origin) and url not in off_site:
            off_site.append(url)
    problems = [f"requests {u[:160]} (off the site: it fails offline)" for u in off_site]
    problems += [f"a file of the site failed to load: {u[len(origin) - 1:][:160]}" for u in failed]
    return problems, n


class _Ids(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if k == "id" or (tag == "a" and k == "name"):
                self.ids.add(v or "")


def ids_in_file(path: Path) -> set[str]:
    parser = _Ids()
    parser.feed(path.read_text(errors="replace"))
    return parser.ids


def notebook_errors(html: Path) -> list[tuple[str, str]]:
    """Error outputs stored in the notebooks the book was built from (copied to _sources/)."""
    problems = []
    for nb_path in sorted((html / "_sources").rglob("*.ipynb")):
        nb = json.loads(nb_path.read_text())
        for i, cell in enumerate(nb.get("cells", [])):
            for out in cell.get("outputs", []):
                text = "".join(out.get("text", "")) if out.get("output_type") == "stream" else ""
                if out.get("output_type") == "error":
                    problems.append((str(nb_path.relative_to(html)),
                                     f"cell {i}: stored error output {out.get('ename')}: "
                                     f"{out.get('evalue', '')[:120]}"))
                elif out.get("name") == "stderr" and ERROR_TEXT.search(text):
                    problems.append((str(nb_path.relative_to(html)),
                                     f"cell {i}: stderr output with an error: {text.strip()[:160]!r}"))
    return problems


def check_page(driver, url: str, page_html: str = "") -> tuple[dict, list[str], list[str]]:
    """Load one page (`page_html`: its HTML file's text); returns (what the browser saw, problems, notes)."""
    network_log(driver)  # drop what earlier pages logged
    driver.get(url)
    deadline = time.monotonic() + 15
    while driver.execute_script("return document.readyState") != "complete" and time.monotonic() < deadline:
        time.sleep(0.05)
    mj = driver.execute_async_script(MATHJAX_JS)
    while not driver.execute_script(IMAGES_DONE_JS) and time.monotonic() < deadline:
        time.sleep(0.05)
    widgets = driver.execute_script(WIDGETS_JS)
    widget_deadline = time.monotonic() + WIDGET_WAIT_S
    while widgets["views"] and widgets["rendered"] < widgets["views"] and time.monotonic() < widget_deadline:
        time.sleep(0.1)
        widgets = driver.execute_script(WIDGETS_JS)
    info = driver.execute_script(COLLECT_JS)
    info["url"] = driver.current_url
    local = url.split("/", 3)[:3]
    origin = "/".join(local) + "/"
    events = network_log(driver)
    for _ in range(20):  # until the page is quiet (fonts and late scripts come after the load event)
        time.sleep(0.1)
        more = network_log(driver)
        if not any(e["method"] == "Network.requestWillBeSent" for e in more):
            events += more
            break
        events += more
    problems, notes = [], []
    for res in remote_resources(page_html):
        problems.append(f"its HTML loads a {res[:160]} from off the site (it fails offline)")
    net_problems, info["requests"] = network_problems(events, origin)
    problems += net_problems
    for font, status in driver.execute_async_script(FONTS_JS):
        if not font.startswith(origin):
            problems.append(f"a stylesheet declares a font off the site: {font[:160]} (it fails offline)")
        elif status >= 400 or status == 0:
            problems.append(f"a stylesheet declares a font that does not load: {font[len(origin) - 1:][:160]}"
                            f" (HTTP {status or 'error'})")
    if info["url"].split("#")[0] != url:  # a redirect (the site's index.html): the target is checked itself
        notes.append(f"redirects to {info['url']}")
        info.update(links=[], ids=[])
        return info, problems, notes
    for img in info["images"]:
        if not img["complete"] or img["width"] == 0:
            problems.append(f"image did not load: {img['src'][:120]}")
    for text in info["tracebacks"]:
        problems.append(f"a cell output shows an error: {text.strip()[:200]!r}")
    for text in info["stderr"]:
        if ERROR_TEXT.search(text):
            problems.append(f"a stderr output shows an error: {text.strip()[:200]!r}")
    page_name = urlsplit(url).path.rsplit("/", 1)[-1]
    if info["mainText"] < MIN_MAIN_TEXT and page_name not in GENERATED_PAGES:
        problems.append(f"main content is empty ({info['mainText']} characters of text)")
    mathjax_scripts = [s for s in info["scripts"] if "mathjax" in s.lower()]
    for s in mathjax_scripts:
        if not s.startswith(origin):
            problems.append(f"MathJax comes from outside the site: {s}")
    if info["math"]:
        if info["mathjax"] != "loaded" or mj != "ok":
            where = ", ".join(mathjax_scripts) or "no MathJax script on the page"
            problems.append(f"{info['math']} math elements but MathJax did not run ({info['mathjax']}, {mj}; {where})"
                            + ("; is book/_static/mathjax there? run bash tools/setup.sh" if mathjax_scripts else ""))
        elif info["unrenderedCount"]:
            problems.append(f"{info['unrenderedCount']} of {info['math']} math elements not rendered, "
                            f"e.g. {info['unrendered']}")
        for err in info["merror"]:
            problems.append(f"TeX error in math: {err!r}")
    if widgets["views"] and widgets["rendered"] < widgets["views"]:
        why = ("" if widgets["manager"] else
               "; require.js did not load: is book/_static/requirejs there? run bash tools/setup.sh")
        problems.append(f"{widgets['views'] - widgets['rendered']} of {widgets['views']} widget(s) did not render "
                        f"within {WIDGET_WAIT_S} s (is book/_static/html-manager there? run bash tools/setup.sh){why}")
    elif widgets["views"]:
        notes.append(f"{widgets['views']} widget(s) rendered")
    return info, problems, notes


def check_links(html: Path, base: str, seen: dict[str, dict]) -> list[tuple[str, str]]:
    problems = []
    id_cache: dict[Path, set[str]] = {}
    for page, info in seen.items():
        page_url = info["url"]
        for href in sorted(set(info["links"])):
            if not href or href.startswith(("mailto:", "javascript:", "data:", "tel:")):
                continue
            target = urljoin(page_url, href)
            parts = urlsplit(target)
            if not target.startswith(base):
                continue  # an external link: not this check's business (and offline anyway)
            rel = unquote(parts.path[len(urlsplit(base).path):])
            path = html / rel
            if rel == "" or rel.endswith("/"):
                path = path / "index.html"
            if not path.exists():
                problems.append((page, f"broken link {href!r}: {path.relative_to(html)} does not exist"))
                continue
            if parts.fragment and path.suffix == ".html":
                key = path.relative_to(html).as_posix()
                ids = set(seen[key]["ids"]) if key in seen else id_cache.setdefault(path, ids_in_file(path))
                if unquote(parts.fragment) not in ids:
                    problems.append((page, f"broken anchor {href!r}: no id {parts.fragment!r} on {key}"))
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("html", nargs="?", default=str(ROOT / "_build" / "html"),
                    help="the built site (default: _build/html)")
    ap.add_argument("--page", action="append", default=[], metavar="PATTERN",
                    help="check only the pages whose path in the site matches (glob; repeatable): 'book/06_*.html'")
    args = ap.parse_args(argv)
    html = Path(args.html).resolve()
    if not (html / "index.html").exists():
        print(f"check_site: no built book in {html}; build it first (make book)", file=sys.stderr)
        return 2
    browser = find_browser()
    if isinstance(browser, str):
        print(f"check_site: {browser}", file=sys.stderr)
        return 2
    try:
        import selenium  # noqa: F401
    except ImportError:
        print("check_site: selenium is needed: pip install -c constraints.txt -e '.[dev]' (or bash tools/setup.sh)",
              file=sys.stderr)
        return 2
    pages = [p for p in pages_of(html)
             if not args.page or any(fnmatch.fnmatch(p.relative_to(html).as_posix(), pat) for pat in args.page)]
    if not pages:
        print(f"check_site: no page of {html} matches {args.page}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    server, base = serve(html)
    driver = start_browser(*browser)
    problems: list[tuple[str, str]] = []
    seen: dict[str, dict] = {}
    try:
        for path in pages:
            page = path.relative_to(html).as_posix()
            t0 = time.perf_counter()
            try:
                info, page_problems, notes = check_page(driver, base + page, path.read_text(errors="replace"))
            except Exception as e:  # a page that hangs or crashes the browser is a failure too
                problems.append((page, f"could not be checked: {type(e).__name__}: {str(e).splitlines()[0][:200]}"))
                continue
            seen[page] = info
            problems += [(page, p) for p in page_problems]
            status = "FAIL" if page_problems else "ok  "
            print(f"{status} {page}: {len(info['images'])} images, {info['math']} math, "
                  f"{len(info['links'])} links, {info['requests']} requests ({time.perf_counter() - t0:.1f} s)"
                  + "".join(f"; note: {n}" for n in notes), flush=True)
    finally:
        driver.quit()
        server.shutdown()
    problems += check_links(html, base, seen)
    problems += notebook_errors(html)
    for page, problem in problems:
        print(f"FAIL {page}: {problem}")
    elapsed = time.perf_counter() - start
    if problems:
        print(f"check_site: {len(problems)} problem(s) on {len({p for p, _ in problems})} of {len(seen)} pages "
              f"({elapsed:.0f} s)")
        return 1
    print(f"check_site: all {len(seen)} pages pass ({elapsed:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
