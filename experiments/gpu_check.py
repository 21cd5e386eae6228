"""One-shot GPU check of ternlib's Triton kernels (needs CUDA, triton, transformers).

Sections, in this order (each case in its own try/except; an error is printed and recorded, the
rest goes on; the JSON is rewritten after every section, so a run cut short keeps what it did):

1. ``env``: versions, device, the quantization arithmetic PyTorch uses on CUDA.
2. ``correctness``: ``triton_packed`` (tiled ``tl.dot`` and split-K GEMV) against the reference
   within a tolerance, the large-M float path (cuBLAS on the cached dequantized weight) and
   ``triton_int8`` (every method: gemv_fused, gemv_q, fused, split, int_mm) and the quantization
   kernel bit for bit, for M in {1, 16, 128, 4096} (the GEMV at M <= 16) and (N, K) in
   (384,384), (1536,384), (384,1536), (3072,768), (768,3072); the GEMV also on odd shapes and
   over many back-to-back calls (its scratch buffer and counters are reused).
3. ``e2e``: encode time of a MiniLM-shaped BERT (random weights, fp16, 6 layers, hidden 384):
   FP16 against ternary (``quantize_`` + ``freeze_``; float and int8 activations; automatic
   kernels and the reference), batch 1 x 16 tokens and 64 x 32 tokens.
4. ``layers``: per-layer times against cuBLAS fp16/bf16 ``F.linear`` on the dequantized weight,
   M in {1, 8, 16, 64, 128, 4096} (``*gemv*``: the split-K GEMV, M <= 16; ``triton_tile_fp16``:
   the tiled float kernel that M <= 8 used before): ``gpu_us`` from ``triton.testing.do_bench`` (median, L2 flushed;
   GPU time, but a call whose Python side is slower than the L2 flush shows that too),
   ``graph_us`` for the main cases from ``do_bench_cudagraph`` (replayed from a CUDA graph: the
   kernels alone, L2 warm) and ``wall_us`` from back-to-back calls (Python and launch overhead
   included). Also ``int8_large_choices`` (the large-M int8 method each shape measured and
   chose) and ``layers_summary`` (best ternary path per row against cuBLAS fp16).
5. ``sweep`` (only with ``--sweep``): other tile sizes for the kernels, best first.

Usage, from the repository root on a CUDA machine:
    python experiments/gpu_check.py                       # JSON to $OUT/gpu_check.json (or ./gpu_check.json)
    python experiments/gpu_check.py --out results.json --sweep --max-seconds 480
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

M_VALUES = (1, 16, 128, 4096)
NK_VALUES = ((384, 384), (1536, 384), (384, 1536), (3072, 768), (768, 3072))  # (N, K)
TOL = {"float16": 4e-3, "bfloat16": 3e-2, "float32": 1e-4}  # max |y - ref| / max |ref|, float path
E2E_SHAPES = ((1, 8), (1, 16), (64, 32))  # (batch, tokens); 1 x 8: the split-K GEMV
E2E_LAYERS = 6
DEVICE = "cuda"  # "cpu" with --dry-run (Triton interpreter, tiny shapes: tests this script, not the GPU)


class Run:
    """Results, the JSON file they go to, and the time budget."""

    def __init__(self, out: Path, max_seconds: float):
        self.out = out
        self.deadline = time.time() + max_seconds
        self.data: dict = {"errors": []}

    def left(self) -> float:
        return self.deadline - time.time()

    def save(self) -> None:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.out.write_text(json.dumps(self.data, indent=1, default=str))

    def error(self, where: str, e: BaseException) -> str:
        msg = f"{type(e).__name__}: {e}"
        print(f"  ERROR in {where}: {msg}")
        print("    " + "".join(traceback.format_exception(e)[-3:]).replace("\n", "\n    ").rstrip())
        self.data["errors"].append({"where": where, "error": msg})
        return msg


# --------------------------------------------------------------------------- helpers
def make_weight(n: int, k: int, granularity: str = "tensor", activations: str = "float", seed: int = 0):
    import torch

    from ternlib import TernaryConfig, ternarize
    from ternlib.kernels import PackedTernary

    g = torch.Generator().manual_seed(seed)
    cfg = TernaryConfig(granularity=granularity, activations=activations)
    t = ternarize(torch.randn(n, k, generator=g) * 0.05, cfg)
    w = PackedTernary.from_codes(t.codes.to(DEVICE), t.scales.to(DEVICE), cfg)
    bias = (torch.randn(n, generator=g) * 0.1).to(DEVICE)
    return w, bias


def make_x(m: int, k: int, dtype, seed: int = 1):
    import torch

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(m, k, generator=g) * (torch.rand(m, 1, generator=g) * 4 + 0.1)
    if m > 2:
        x[1] = 0.0  # an all-zero token
    return x.to(DEVICE, dtype)


def rel_err(y, ref) -> float:
    return ((y.float() - ref.float()).abs().max() / ref.float().abs().max().clamp_min(1e-6)).item()


def sync() -> None:
    import torch

    if DEVICE == "cuda":
        torch.cuda.synchronize()


def bench(fn) -> dict:
    """gpu_us: do_bench median (L2 flushed between calls); wall_us: back-to-back calls, warm."""
    fn()
    sync()
    if DEVICE == "cuda":
        from triton.testing import do_bench

        gpu_ms = do_bench(fn, warmup=10, rep=40, return_mode="median")
    else:  # dry run
        t = time.perf_counter()
        fn()
        gpu_ms = (time.perf_counter() - t) * 1e3
    n = 2 if DEVICE != "cuda" else int(min(300, max(10, 0.02 / max(gpu_ms * 1e-3, 1e-6))))
    sync()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    sync()
    wall = (time.perf_counter() - t) / n
    return {"gpu_us": round(gpu_ms * 1e3, 2), "wall_us": round(wall * 1e6, 2)}


# --------------------------------------------------------------------------- sections
def section_env(run: Run) -> None:
    import torch
    import triton

    import ternlib.kernels.triton as tk
    from ternlib.kernels import available_kernels, crossover

    dev = torch.device(DEVICE)
    env = {"torch": torch.__version__, "triton": triton.__version__, "kernels": available_kernels(),
           "crossover": crossover(), "python": sys.version.split()[0], "dry_run": DEVICE != "cuda"}
    if DEVICE == "cuda":
        env.update(device=torch.cuda.get_device_name(dev), capability=list(torch.cuda.get_device_capability(dev)))
    try:
        env["quantization_arithmetic"] = tk.quantization_arithmetic(dev)
    except Exception as e:
        env["quantization_arithmetic"] = run.error("env/quantization_arithmetic", e)
    run.data["env"] = env
    print(json.dumps(env, indent=1))


def section_correctness(run: Run) -> None:
    import torch

    import ternlib.kernels.triton as tk
    from ternlib.kernels import quantize_activations, select_kernel, ternary_linear

    rows = []
    run.data["correctness"] = rows

    def record(case: dict, fn) -> None:
        try:
            case.update(fn())
        except Exception as e:
            case["ok"] = False
            case["error"] = run.error(f"correctness {case}", e)
        rows.append(case)
        if not case["ok"]:
            print(f"  FAIL {case}")

    for n, k in NK_VALUES:
        for m in M_VALUES:
            if run.left() < 0:
                print("  time budget spent; skipping the rest of correctness")
                return
            t0 = time.time()
            # float activations: packed (triton_packed) and cached-codes (triton_int8 at large M) paths
            for dtype, grans in ((torch.float16, ("tensor", "row")), (torch.bfloat16, ("row",)),
                                 (torch.float32, ("row",) if m in (1, 16, 128) else ())):
                for gran in grans:
                    w, b = make_weight(n, k, gran, "float")
                    x = make_x(m, k, dtype)
                    bx = b.to(dtype)
                    ref = ternary_linear(x, w, bx, kernel="reference")
                    dname = str(dtype).split(".")[-1]
                    paths = [("packed", True, "tile"), ("cublas", False, None)]
                    if m <= tk.GEMV_MAX_M:
                        paths.append(("gemv", True, "gemv"))
                    for path, packed, method in paths:
                        def check(packed=packed, method=method, dname=dname, w=w, x=x, bx=bx, ref=ref):
                            y = tk.float_matmul(x, w, bx, packed=packed, method=method)
                            err = rel_err(y, ref)
                            ok = y.dtype == ref.dtype and err < TOL[dname]
                            if not packed:  # cuBLAS on the cached dequantized weight: the reference's own GEMM
                                ok = ok and torch.equal(y, ref)
                            return {"ok": bool(ok), "rel_err": err, "equal": bool(torch.equal(y, ref))}
                        record({"kind": "float", "path": path, "dtype": dname, "gran": gran, "M": m, "N": n, "K": k},
                               check)

                    def check_auto(w=w, x=x, bx=bx, ref=ref, dname=dname):
                        name = select_kernel(x, w).name
                        y = ternary_linear(x, w, bx)
                        err = rel_err(y, ref)
                        return {"ok": bool(err < TOL[dname]), "rel_err": err, "kernel": name}
                    record({"kind": "float", "path": "auto", "dtype": dname, "gran": gran, "M": m, "N": n, "K": k},
                           check_auto)
            # int8 activations: every variant, bit for bit
            for dtype, grans in ((torch.float16, ("tensor", "row")), (torch.bfloat16, ("row",)),
                                 (torch.float32, ("row",) if m in (16, 128) else ())):
                for gran in grans:
                    w, b = make_weight(n, k, gran, "int8")
                    x = make_x(m, k, dtype)
                    bx = b.to(dtype)
                    ref = ternary_linear(x, w, bx, kernel="reference")
                    dname = str(dtype).split(".")[-1]
                    variants = ["auto", "fused", "split"] + (["int_mm"] if tk.int_mm_eligible(x, n) else [])
                    variants += ["gemv_fused", "gemv_q"] if m <= tk.GEMV_MAX_M else []
                    for path in variants:
                        def check(path=path, w=w, x=x, bx=bx, ref=ref):
                            if path == "auto":
                                name = select_kernel(x, w).name
                                y = ternary_linear(x, w, bx)
                            else:
                                name = "triton_int8"
                                y = tk.int8_matmul(x, w, bx, method=path)
                            diff = (y.float() - ref.float()).abs()
                            return {"ok": bool(torch.equal(y, ref)), "mismatches": int((diff > 0).sum()),
                                    "max_abs_diff": diff.max().item(), "kernel": name}
                        record({"kind": "int8", "path": path, "dtype": dname, "gran": gran, "M": m, "N": n, "K": k},
                               check)
            # the quantization kernel alone
            for dtype in (torch.float16, torch.bfloat16, torch.float32):
                def check_q(dtype=dtype):
                    x = make_x(m, k, dtype)
                    q, s = tk.quantize(x)
                    q_ref, s_ref = quantize_activations(x)
                    s_ref = s_ref.reshape(-1)
                    rows = torch.ones_like(s, dtype=torch.bool)  # every row: the reference spells out its arithmetic
                    return {"ok": bool(torch.equal(q, q_ref) and torch.equal(s[rows], s_ref[rows])),
                            "q_mismatches": int((q != q_ref).sum()), "sx_mismatches": int((s != s_ref).sum()),
                            "rows_compared": int(rows.sum())}
                record({"kind": "quantize", "dtype": str(dtype).split(".")[-1], "M": m, "K": k}, check_q)
            print(f"  N={n} K={k} M={m}: {sum(r['ok'] for r in rows)}/{len(rows)} ok so far ({time.time() - t0:.1f} s)")

    # the split-K GEMV on odd shapes, every dtype, and its scratch left at zero
    for m in (3, 8):
        for act, dtype in (("float", torch.float16), ("float", torch.bfloat16), ("float", torch.float32),
                           ("int8", torch.float16), ("int8", torch.bfloat16), ("int8", torch.float32)):
            def check_odd(m=m, act=act, dtype=dtype):
                w, b = make_weight(333, 257, "row", act)
                x = make_x(m, 257, dtype)
                bx = b.to(dtype)
                ref = ternary_linear(x, w, bx, kernel="reference")
                name = select_kernel(x, w).name
                if act == "int8":
                    y = ternary_linear(x, w, bx)
                else:  # the GEMV explicitly: by default it is only chosen for one token
                    y = tk.float_matmul(x, w, bx, method="gemv")
                if act == "int8":
                    ys = [y] + [tk.int8_matmul(x, w, bx, method=mt) for mt in ("gemv_fused", "gemv_q")]
                else:
                    ys = [y]
                plans = [p for key, p in w.cache.items() if isinstance(key, tuple) and key[0] == "gemv"]
                clean = bool(plans) and all(not p[3].any() and not p[4].any() for p in plans)
                if act == "int8":
                    ok = all(torch.equal(v, ref) for v in ys)
                    return {"ok": bool(ok and clean), "scratch_zero": clean, "kernel": name}
                err = rel_err(y, ref)
                return {"ok": bool(err < TOL[str(dtype).split(".")[-1]] and clean), "rel_err": err,
                        "scratch_zero": clean, "kernel": name}
            record({"kind": f"gemv_odd_{act}", "dtype": str(dtype).split(".")[-1], "M": m, "N": 333, "K": 257},
                   check_odd)

    # many back-to-back GEMV calls on one cached scratch buffer (the last-split semaphore under load)
    for act in ("int8", "float"):
        def check_repeat(act=act):
            n, k = (3072, 768) if DEVICE == "cuda" else (40, 48)
            w, b = make_weight(n, k, "row", act)
            bad = 0
            for m in (1, 4, 8):
                x = make_x(m, k, torch.float16)
                bx = b.half()
                ref = ternary_linear(x, w, bx, kernel="reference")
                ys = [ternary_linear(x, w, bx) for _ in range(200 if DEVICE == "cuda" else 2)]
                for y in ys:
                    bad += int(not torch.equal(y, ref)) if act == "int8" else int(rel_err(y, ref) >= TOL["float16"])
            return {"ok": bad == 0, "bad_calls": bad}
        record({"kind": f"gemv_repeat_{act}"}, check_repeat)

    # odd layouts: non-contiguous and 3-D inputs, no bias, odd sizes
    def check_layouts():
        w, b = make_weight(333, 257, "row", "int8")
        x = make_x(40, 257, torch.float16).t().contiguous().t()  # column-major (M, K)
        ok = torch.equal(ternary_linear(x, w, b), ternary_linear(x, w, b, kernel="reference"))
        x3 = make_x(6, 257, torch.float16).reshape(2, 3, 257)
        ok &= torch.equal(ternary_linear(x3, w, None), ternary_linear(x3, w, None, kernel="reference"))
        wf, _ = make_weight(333, 257, "row", "float")
        err = rel_err(ternary_linear(x3, wf, None), ternary_linear(x3, wf, None, kernel="reference"))
        return {"ok": bool(ok and err < TOL["float16"]), "rel_err": err}
    record({"kind": "layouts", "M": 40, "N": 333, "K": 257}, check_layouts)
    n_ok = sum(r["ok"] for r in rows)
    print(f"correctness: {n_ok}/{len(rows)} ok")
    run.data["correctness_summary"] = {"ok": n_ok, "total": len(rows)}


def section_e2e(run: Run) -> None:
    import torch
    from transformers import BertConfig, BertModel

    import ternlib
    import ternlib.kernels.registry as K  # ternary_linear looks select_kernel up in the registry module
    from ternlib import TernaryConfig, TernaryLinear

    rows = []
    run.data["e2e"] = rows
    cfg = BertConfig(hidden_size=384, num_hidden_layers=E2E_LAYERS, num_attention_heads=12, intermediate_size=1536)
    torch.manual_seed(0)
    fp = BertModel(cfg).to(DEVICE, torch.float16).eval()
    models = {"fp16": fp}
    for name, tcfg in (("ternary", TernaryConfig()), ("ternary_int8", TernaryConfig(activations="int8"))):
        try:
            m = copy.deepcopy(fp)
            ternlib.quantize_(m, tcfg)
            ternlib.freeze_(m)
            models[name] = m
        except Exception as e:
            run.error(f"e2e build {name}", e)

    def set_kernel(model, kernel):
        for mod in model.modules():
            if isinstance(mod, TernaryLinear):
                mod.kernel = kernel

    for batch, seq in E2E_SHAPES:
        ids = torch.randint(0, cfg.vocab_size, (batch, seq), device=DEVICE)
        mask = torch.ones_like(ids)
        outs = {}
        for name, model in models.items():
            for kernel in ((None,) if name == "fp16" else (None, "reference")):
                label = name + ("" if name == "fp16" else f"/{kernel or 'auto'}")
                if run.left() < 0:
                    print("  time budget spent; skipping the rest of e2e")
                    return
                row = {"model": label, "batch": batch, "seq": seq}
                try:
                    if name != "fp16":
                        set_kernel(model, kernel)
                    chosen: dict[str, int] = {}
                    orig = K.select_kernel

                    def counting(x, w, nm=None, orig=orig):
                        kern = orig(x, w, nm)
                        chosen[kern.name] = chosen.get(kern.name, 0) + 1
                        return kern

                    with torch.inference_mode():
                        K.select_kernel = counting
                        try:
                            out = model(input_ids=ids, attention_mask=mask).last_hidden_state
                        finally:
                            K.select_kernel = orig
                        outs[label] = out
                        for _ in range(3 if DEVICE == "cuda" else 0):
                            model(input_ids=ids, attention_mask=mask)
                        sync()
                        times = []
                        for _ in range(5 if DEVICE == "cuda" else 3):
                            n_iter = 10 if DEVICE == "cuda" else 1
                            t = time.perf_counter()
                            for _ in range(n_iter):
                                model(input_ids=ids, attention_mask=mask)
                            sync()
                            times.append((time.perf_counter() - t) / n_iter * 1e3)
                    row.update({"ms_min": round(min(times), 3), "ms_median": round(sorted(times)[2], 3),
                                "kernels": chosen})
                    ref_label = f"{name}/reference"
                    if kernel is None and name != "fp16":
                        row["_pending_compare"] = ref_label
                except Exception as e:
                    row["error"] = run.error(f"e2e {label} {batch}x{seq}", e)
                finally:
                    if name != "fp16":
                        set_kernel(model, None)
                rows.append(row)
        for row in rows:
            lbl = row.pop("_pending_compare", None)
            if lbl and lbl in outs and row["model"] in outs and row["batch"] == batch:
                a, r = outs[row["model"]], outs[lbl]
                row["equal_to_reference"] = bool(torch.equal(a, r))
                row["max_abs_diff_vs_reference"] = (a.float() - r.float()).abs().max().item()
        # against fp16 on the same batch AND sequence length (a batch size can appear with several lengths)
        fp_ms = next((r["ms_median"] for r in rows
                      if r["model"] == "fp16" and r["batch"] == batch and r["seq"] == seq and "ms_median" in r), None)
        for r in rows:
            if r["batch"] == batch and r["seq"] == seq and "ms_median" in r:
                if fp_ms:
                    r["speedup_vs_fp16"] = round(fp_ms / r["ms_median"], 3)
                print(f"  {batch}x{seq} {r['model']:<26} {r['ms_median']:8.3f} ms  "
                      f"x{r.get('speedup_vs_fp16', float('nan')):.2f} vs fp16  kernels={r.get('kernels')}"
                      + (f"  equal_to_reference={r['equal_to_reference']} "
                         f"(max diff {r['max_abs_diff_vs_reference']:.3g})" if "equal_to_reference" in r else ""))
    import ternlib.kernels.triton as tk

    run.data["int8_large_choices_e2e"] = tk.tuning_log()


LAYER_M_VALUES = (1, 8, 16, 64, 128, 4096)
GRAPH_CASES = ("cublas_fp16", "auto_float_fp16", "triton_packed_fp16", "triton_tile_fp16", "gemv_fp16",
               "auto_int8_fp16", "int8_fused", "int8_split", "int8_int_mm", "int8_gemv_fused", "int8_gemv_q")


def graph_bench(fn) -> float:
    """Microseconds a call takes replayed from a CUDA graph (no Python or launch overhead; L2 warm)."""
    from triton.testing import do_bench_cudagraph

    return round(do_bench_cudagraph(fn, rep=10) * 1e3, 2)


def section_layers(run: Run) -> None:
    import torch
    import torch.nn.functional as F

    import ternlib.kernels.triton as tk
    from ternlib.kernels import reference_kernel, select_kernel, ternary_linear

    rows = []
    run.data["layers"] = rows
    for n, k in NK_VALUES:
        w, b = make_weight(n, k, "tensor", "float")
        w8, _ = make_weight(n, k, "tensor", "int8")
        weight = w.dequantize()  # (N, K) float32
        for m in LAYER_M_VALUES:
            if run.left() < 0:
                print("  time budget spent; skipping the rest of the layer timings")
                return
            row = {"M": m, "N": n, "K": k}
            x16, xbf = make_x(m, k, torch.float16), make_x(m, k, torch.bfloat16)
            w16, wbf, b16, bbf = weight.half(), weight.bfloat16(), b.half(), b.bfloat16()
            q, _ = tk.quantize(x16)
            codes_t = w8.codes().t()  # (K, N), column-major: cuBLASLt's int8 layout
            cases = {
                "cublas_fp16": lambda: F.linear(x16, w16, b16),
                "cublas_bf16": lambda: F.linear(xbf, wbf, bbf),
                "auto_float_fp16": lambda: ternary_linear(x16, w, b16),
                "triton_packed_fp16": lambda: tk.float_matmul(x16, w, b16, packed=True),
                "triton_tile_fp16": lambda: tk.float_matmul(x16, w, b16, packed=True, method="tile"),
                "triton_packed_bf16": lambda: tk.float_matmul(xbf, w, bbf, packed=True),
                "float_cublas_cached_fp16": lambda: tk.float_matmul(x16, w, b16, packed=False),
                "auto_int8_fp16": lambda: ternary_linear(x16, w8, b16),
                "int8_fused": lambda: tk.int8_matmul(x16, w8, b16, method="fused"),
                "int8_split": lambda: tk.int8_matmul(x16, w8, b16, method="split"),
                "quantize_only": lambda: tk.quantize(x16),
            }
            if m <= tk.GEMV_MAX_M:
                cases["gemv_fp16"] = lambda: tk.float_matmul(x16, w, b16, method="gemv")
                cases["gemv_bf16"] = lambda: tk.float_matmul(xbf, w, bbf, method="gemv")
                cases["int8_gemv_fused"] = lambda: tk.int8_matmul(x16, w8, b16, method="gemv_fused")
                cases["int8_gemv_q"] = lambda: tk.int8_matmul(x16, w8, b16, method="gemv_q")
                row["gemv_config"] = tk.gemv_config(m, n, k, tk.num_sms(x16.device))
            if tk.int_mm_eligible(x16, n):
                cases["int8_int_mm"] = lambda: tk.int8_matmul(x16, w8, b16, method="int_mm")
                cases["cublas_int8_mm_only"] = lambda: torch._int_mm(q, codes_t)
            if m <= 16:
                cases["reference_fp16"] = lambda: reference_kernel(x16, w, b16)
            row["auto_float_kernel"] = select_kernel(x16, w).name
            row["auto_int8_kernel"] = select_kernel(x16, w8).name
            for name, fn in cases.items():
                try:
                    row[name] = bench(fn)
                except Exception as e:
                    row[name] = {"error": f"{type(e).__name__}: {str(e)[:200]}"}
                    run.error(f"layers {name} M={m} N={n} K={k}", e)
                    continue
                if DEVICE == "cuda" and name in GRAPH_CASES:
                    try:
                        row[name]["graph_us"] = graph_bench(fn)
                    except Exception as e:  # noqa: BLE001 - a measurement, not a check
                        row[name]["graph_error"] = f"{type(e).__name__}: {str(e)[:200]}"
            rows.append(row)
            print_layer_row(row)
    run.data["int8_large_choices"] = tk.tuning_log()
    print(f"  large-M int8 method choices: {tk.tuning_log()}")
    summarize_layers(run)


LAYER_COLS = ("cublas_fp16", "gemv_fp16", "triton_tile_fp16", "auto_float_fp16", "float_cublas_cached_fp16",
              "int8_gemv_fused", "int8_gemv_q", "int8_fused", "int8_split", "int8_int_mm", "auto_int8_fp16",
              "quantize_only")


def print_layer_row(row: dict) -> None:
    if not getattr(print_layer_row, "header", False):
        print("  gpu_us (do_bench median) / graph_us (CUDA graph replay, if timed) / wall_us (back-to-back) per call")
        print("  " + f"{'M':>5} {'N':>5} {'K':>5} " + " ".join(f"{c[:18]:>18}" for c in LAYER_COLS))
        print_layer_row.header = True

    def cell(c):
        v = row.get(c)
        if v is None:
            return "-"
        if "error" in v:
            return "err"
        g = f"/{v['graph_us']:.1f}" if "graph_us" in v else ""
        return f"{v.get('gpu_us', float('nan')):.1f}{g}/{v.get('wall_us', float('nan')):.0f}"
    print("  " + f"{row['M']:>5} {row['N']:>5} {row['K']:>5} " + " ".join(f"{cell(c):>18}" for c in LAYER_COLS))


def summarize_layers(run: Run) -> None:
    """Per row: the best ternary time against cuBLAS fp16 (gpu_us and graph_us)."""
    out = []
    for row in run.data.get("layers", []):
        ref = row.get("cublas_fp16", {})
        s = {"M": row["M"], "N": row["N"], "K": row["K"]}
        for metric in ("gpu_us", "graph_us"):
            base = ref.get(metric)
            for label, names in (("float", ("auto_float_fp16", "triton_packed_fp16", "triton_tile_fp16", "gemv_fp16")),
                                 ("int8", ("auto_int8_fp16", "int8_fused", "int8_split", "int8_int_mm",
                                           "int8_gemv_fused", "int8_gemv_q"))):
                vals = {nm: row[nm][metric] for nm in names if isinstance(row.get(nm), dict) and metric in row[nm]}
                if vals and base:
                    best = min(vals, key=vals.get)
                    s[f"{label}_{metric}_best"] = best
                    s[f"{label}_{metric}_x_vs_cublas"] = round(base / vals[best], 3)
                    auto = vals.get(f"auto_{label}_fp16")
                    if auto:
                        s[f"{label}_{metric}_auto_x_vs_cublas"] = round(base / auto, 3)
        out.append(s)
    run.data["layers_summary"] = out
    for s in out:
        print("  " + " ".join(f"{k}={v}" for k, v in s.items()))


def section_sweep(run: Run) -> None:
    import torch

    import ternlib.kernels.triton as tk
    from ternlib.kernels import ternary_linear

    rows = []
    run.data["sweep"] = rows
    # cfg(BLOCK_M, BLOCK_N, BLOCK_KB (packed bytes a step: 4 codes each), num_warps, num_stages)
    cfg = tk.make_config
    small = [cfg(bm, bn, bkb, wp, st) for bm in (16,) for bn in (16, 32, 64) for bkb in (32, 64, 128)
             for wp, st in ((4, 3),) if bn * bkb <= 8192] + [cfg(16, 16, 64, 2, 4), cfg(16, 16, 128, 4, 4),
                                                             cfg(16, 16, 256, 4, 2), cfg(16, 32, 128, 8, 3)]
    large = [cfg(bm, bn, bkb, wp, st) for bm in (64, 128) for bn in (64, 128, 256) for bkb in (16, 32, 64)
             for wp, st in ((4, 3), (8, 3))
             if not (bm * bn >= 128 * 128 and wp == 4) and bm * bn * bkb <= 128 * 128 * 32]
    for n, k in NK_VALUES[1:] if DEVICE == "cuda" else NK_VALUES:
        w, b = make_weight(n, k, "row", "float")
        w8, _ = make_weight(n, k, "row", "int8")
        for m in (1, 8, 16, 64, 4096) if DEVICE == "cuda" else M_VALUES:
            x = make_x(m, k, torch.float16)
            b16 = b.half()
            ref = ternary_linear(x, w8, b16, kernel="reference")
            kinds = {"float_packed": lambda c: tk.float_matmul(x, w, b16, packed=True, config=c)}
            if m <= tk.GEMV_MAX_M:
                kinds["float_gemv"] = lambda c: tk.float_matmul(x, w, b16, method="gemv", config=c)
                kinds["int8_gemv"] = lambda c: tk.int8_matmul(x, w8, b16, method="gemv", config=c)
            if m <= 64:
                kinds["int8_fused"] = lambda c: tk.int8_matmul(x, w8, b16, method="fused", config=c)
            else:
                kinds["int8_split"] = lambda c: tk.int8_matmul(x, w8, b16, method="split", config=c)
            for kind, fn in kinds.items():
                results = []
                if kind.endswith("gemv"):
                    default = tk.gemv_config(m, n, k, tk.num_sms(x.device))
                    grid = [dict(default, BLOCK_N=bn, BLOCK_KB=bkb, num_warps=wp) for bn in (8, 16, 32, 64)
                            for bkb in (16, 32, 64, 128) for wp in (2, 4) if default["BLOCK_M"] * bn * bkb <= 16384]
                    candidates = [default] + [c for c in grid if c != default]
                else:
                    default = tk.default_config(m, n, k, "int8" if kind.startswith("int8") else "float")
                    candidates = [default] + [c for c in (small if m <= 64 else large) if c != default]
                for c in candidates:
                    if run.left() < 0:
                        print("  time budget spent; stopping the sweep")
                        run.data["sweep"] = rows
                        return
                    try:
                        y = fn(c)
                        if kind.startswith("int8") and not torch.equal(y, ref):
                            results.append({"config": c, "error": "not exact"})
                            continue
                        results.append({"config": c, **bench(lambda: fn(c))})
                    except Exception as e:
                        results.append({"config": c, "error": f"{type(e).__name__}: {str(e)[:120]}"})
                ok = sorted((r for r in results if "gpu_us" in r), key=lambda r: r["gpu_us"])
                default_us = next((r["gpu_us"] for r in ok if r["config"] == default), None)
                rows.append({"kind": kind, "M": m, "N": n, "K": k, "default": default, "default_gpu_us": default_us,
                             "best": ok[:3], "n_errors": sum("error" in r for r in results)})
                if ok:
                    c = ok[0]["config"]
                    print(f"  {kind:<18} M={m:<5} N={n:<5} K={k:<5} best {ok[0]['gpu_us']:8.1f} us "
                          f"(BM{c['BLOCK_M']} BN{c['BLOCK_N']} BKB{c['BLOCK_KB']} w{c['num_warps']} "
                          f"s{c.get('num_stages')}), "
                          f"default {default_us} us")
                else:
                    print(f"  {kind:<18} M={m:<5} N={n:<5} K={k:<5} no config ran: {results[:1]}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    default_out = Path(os.environ["OUT"]) / "gpu_check.json" if os.environ.get("OUT") else Path("gpu_check.json")
    p.add_argument("--out", type=Path, default=default_out, help=f"JSON results (default: {default_out})")
    p.add_argument("--sweep", action="store_true", help="also time other tile sizes (adds a few minutes)")
    p.add_argument("--sections", default="env,correctness,e2e,layers,sweep",
                   help="comma-separated subset of env,correctness,e2e,layers,sweep (sweep needs --sweep too)")
    p.add_argument("--max-seconds", type=float, default=480.0,
                   help="stop starting new cases after this many seconds (default 480)")
    p.add_argument("--dry-run", action="store_true",
                   help="no GPU: run every section on the CPU under the Triton interpreter with tiny shapes "
                        "(tests this script, measures nothing)")
    args = p.parse_args(argv)

    if args.dry_run:
        global DEVICE, M_VALUES, LAYER_M_VALUES, NK_VALUES, E2E_SHAPES, E2E_LAYERS
        os.environ["TRITON_INTERPRET"] = "1"  # before triton compiles anything
        DEVICE, M_VALUES, NK_VALUES, E2E_SHAPES, E2E_LAYERS = "cpu", (1, 17), ((40, 48), (33, 100)), ((1, 4), (2, 9)), 1
        LAYER_M_VALUES = M_VALUES
    import torch

    if not args.dry_run and not torch.cuda.is_available():
        print("no CUDA device: nothing to check", file=sys.stderr)
        return 2
    import ternlib.kernels  # noqa: F401  (registers the kernels)
    try:
        import ternlib.kernels.triton  # noqa: F401
    except ImportError as e:
        print(f"the Triton kernels are not available: {e}", file=sys.stderr)
        return 2

    run = Run(args.out, args.max_seconds)
    wanted = [s.strip() for s in args.sections.split(",") if s.strip()]
    sections = {"env": section_env, "correctness": section_correctness, "e2e": section_e2e,
                "layers": section_layers, "sweep": section_sweep}
    t_start = time.time()
    for name in wanted:
        if name == "sweep" and not args.sweep:
            continue
        if name not in sections:
            print(f"unknown section {name!r}", file=sys.stderr)
            continue
        print(f"\n== {name} ({time.time() - t_start:.0f} s in)", flush=True)
        try:
            sections[name](run)
        except Exception as e:
            run.error(f"section {name}", e)
        run.data.setdefault("section_seconds", {})[name] = round(time.time() - t_start, 1)
        run.save()
    summary = run.data.get("correctness_summary")
    print(f"\ndone in {time.time() - t_start:.0f} s; {len(run.data['errors'])} errors; correctness {summary}; "
          f"JSON: {args.out}")
    return 0 if not run.data["errors"] and (summary is None or summary["ok"] == summary["total"]) else 1


if __name__ == "__main__":
    sys.exit(main())
