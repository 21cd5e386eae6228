"""Triton kernels against the reference kernel, run on the CPU by Triton's interpreter.

``TRITON_INTERPRET=1`` must be set before triton compiles anything, so the checks run in a
subprocess with it set. Tolerances: ``triton_packed`` applies the float32 scale after a float32
accumulation while the reference rounds ``scale * code`` to ``x.dtype`` first, so they agree to
float32 rounding for float32 inputs (relative error < 1e-5 of the largest output) and to float16
rounding for float16 inputs (< 2e-3); ``triton_int8`` must equal the reference bit for bit
(every method: quantization fused into the GEMM, a separate quantization launch, ``torch._int_mm``),
and its large-M float path (cuBLAS on the cached dequantized weight) too.
bfloat16 is not checked here: the interpreter multiplies bfloat16 tiles as raw integers and
truncates float32 -> bfloat16 casts (``experiments/gpu_check.py`` checks bfloat16 on a GPU).

On a GPU machine the same kernels are checked by ``experiments/gpu_check.py``.
"""
import os
import subprocess
import sys
import textwrap

import pytest
import torch

pytest.importorskip("triton")

from ternlib import TernaryConfig, ternarize  # noqa: E402
from ternlib.kernels import PackedTernary, available_kernels, select_kernel  # noqa: E402

SHAPES = [(1, 16, 8), (3, 100, 33), (17, 129, 33), (3, 129, 8), (20, 136, 40)]  # (M, K, N), odd sizes on purpose

PRELUDE = textwrap.dedent('''
    import torch
    from ternlib import TernaryConfig, TernaryLinear, ternarize
    from ternlib.kernels import (PackedTernary, quantize_activations, select_kernel, set_crossover,
                                 ternary_linear)
    import ternlib.kernels.triton as tk
    assert tk.INTERPRET, "TRITON_INTERPRET=1 was not seen"

    SHAPES = %r

    def weight(n, k, granularity="tensor", activations="float", seed=0, **kw):
        g = torch.Generator().manual_seed(seed)
        cfg = TernaryConfig(granularity=granularity, activations=activations, beta=1.0, **kw)
        t = ternarize(torch.randn(n, k, generator=g), cfg)
        return PackedTernary.from_codes(t.codes, t.scales, cfg), torch.randn(n, generator=g)

    def exact_rows(x):
        """Every row: the reference spells out its arithmetic (scale = amax * float32(1/127)), so the
        Triton kernels must match it on all of them."""
        return torch.ones(x.reshape(-1, x.shape[-1]).shape[0], dtype=torch.bool)

    def x_of(m, k, dtype=torch.float32, seed=1):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(m, k, generator=g) * torch.rand(m, 1, generator=g) * 4
        if m > 2:
            x[1] = 0.0  # an all-zero token
        return x.to(dtype)
''' % (SHAPES,))


def _interpret(code: str) -> str:
    """Run PRELUDE + code with TRITON_INTERPRET=1 in a fresh interpreter; its stdout."""
    env = {**os.environ, "TRITON_INTERPRET": "1", "HF_HUB_OFFLINE": "1", "TERNLIB_KERNEL": ""}
    env.pop("TERNLIB_CROSSOVER", None)
    r = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(code)], env=env, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, f"interpreted check failed:\n{r.stdout[-3000:]}\n{r.stderr[-6000:]}"
    return r.stdout


def test_triton_packed_matches_reference():
    out = _interpret('''
        for m, k, n in SHAPES:
            for granularity in ("tensor", "row"):
                for dtype, tol in ((torch.float32, 1e-5), (torch.float16, 2e-3)):
                    w, b = weight(n, k, granularity)
                    x = x_of(m, k, dtype)
                    assert select_kernel(x, w).name == "triton_packed"
                    for bias in (b, None):
                        ref = ternary_linear(x, w, bias, kernel="reference")
                        y = ternary_linear(x, w, bias, kernel="triton_packed")
                        assert y.shape == ref.shape and y.dtype == dtype
                        err = ((y.float() - ref.float()).abs().max() / ref.float().abs().max().clamp_min(1)).item()
                        assert err < tol, (m, k, n, granularity, dtype, err)
                        # large-M float path of triton_int8: cuBLAS (here: the CPU GEMM) on the weight
                        # dequantized to x.dtype and cached, i.e. exactly the reference
                        y2 = tk.float_matmul(x, w, bias, packed=False)
                        assert torch.equal(y2, ref), (m, k, n, granularity, dtype)
                        # a configuration other than the default (several steps over K, wider tiles)
                        y3 = tk.float_matmul(x, w, bias, config=tk.make_config(32, 64, 8, 4, 1))
                        err3 = ((y3.float() - ref.float()).abs().max() / ref.float().abs().max().clamp_min(1)).item()
                        assert err3 < tol, (m, k, n, granularity, dtype, err3)
        x = x_of(2, 100).reshape(1, 2, 100)  # (..., K) inputs keep their leading shape
        w, b = weight(33, 100, "row")
        assert ternary_linear(x, w, b, kernel="triton_packed").shape == (1, 2, 33)
        print("ok")
    ''')
    assert out.strip().endswith("ok")


def test_triton_int8_equals_reference_bit_for_bit():
    out = _interpret('''
        checked = 0
        for m, k, n in SHAPES:
            for granularity in ("tensor", "row"):
                for dtype in (torch.float32, torch.float16):
                    w, b = weight(n, k, granularity, "int8")
                    x = x_of(m, k, dtype)
                    rows = exact_rows(x)
                    assert select_kernel(x, w).name == "triton_int8"
                    for bias in (b, b.half(), None):
                        ref = ternary_linear(x, w, bias, kernel="reference")[rows]
                        assert torch.equal(ternary_linear(x, w, bias, kernel="triton_int8")[rows], ref)
                        # quantization inside the GEMM, or a launch of its own; torch._int_mm where it applies
                        for method in ("fused", "split", "int_mm"):
                            if method == "int_mm" and not tk.int_mm_eligible(x, n):
                                continue
                            y = tk.int8_matmul(x, w, bias, method=method)
                            assert y.dtype == dtype and torch.equal(y[rows], ref), (m, k, n, granularity, dtype, method)
                            checked += 1
                        y = tk.int8_matmul(x, w, bias, method="split", config=tk.make_config(32, 64, 8, 4, 1))
                        assert torch.equal(y[rows], ref), (m, k, n, granularity, dtype, "config")
        # the quantization kernel alone: bit for bit, scales and codes
        for m, k, n in SHAPES:
            x = x_of(m, k)
            q_ref, s_ref = quantize_activations(x)
            assert tk.quantization_arithmetic(x.device) == "rcp"
            q, s = tk.quantize(x)
            assert torch.equal(q, q_ref) and torch.equal(s, s_ref.reshape(-1))
        # a frozen layer on (batch, seq, K) inputs, named kernel
        torch.manual_seed(0)
        layer = TernaryLinear(129, 33, config=TernaryConfig(activations="int8", granularity="row")).freeze()
        x = torch.randn(2, 5, 129)
        rows = exact_rows(x.reshape(-1, 129))
        ref = ternary_linear(x, layer.packed_weight(), layer.bias, kernel="reference").reshape(-1, 33)[rows]
        layer.kernel = "triton_int8"
        for _ in range(2):  # second call: cached launch plan
            y = layer(x)
            assert y.shape == (2, 5, 33) and torch.equal(y.reshape(-1, 33)[rows], ref)
        set_crossover(0)  # every call "large": a separate quantization launch
        try:
            assert torch.equal(layer(x).reshape(-1, 33)[rows], ref)  # on the CPU: the Triton GEMM ("split")
            assert tk.large_int8_method(x.reshape(-1, 129), layer.packed_weight(), layer.bias) == "split"
            wide = TernaryLinear(136, 40, config=TernaryConfig(activations="int8")).freeze()
            wide.kernel = "triton_int8"
            xw = torch.randn(3, 7, 136).reshape(-1, 136)
            rows = exact_rows(xw)
            refw = ternary_linear(xw, wide.packed_weight(), wide.bias, kernel="reference")[rows]
            assert torch.equal(wide(xw)[rows], refw)
            assert torch.equal(tk.int8_matmul(xw, wide.packed_weight(), wide.bias, method="int_mm")[rows], refw)
            assert "int8_codes_kn" in wide._kernel_cache  # int8 codes cached for torch._int_mm
        finally:
            set_crossover(None)
        try:
            tk.int8_matmul(torch.randn(3, 100), weight(33, 100, activations="int8")[0], None, method="int_mm")
            raise AssertionError("int_mm accepted M <= 16")
        except ValueError:
            pass
        print("ok", checked)
    ''')
    assert out.strip().startswith("ok")


def test_split_k_gemv_matches_reference():
    """The small-M split-K GEMV: float within the tolerance, int8 bit for bit (both quantization placements)."""
    out = _interpret('''
        checked = 0
        # (M, K, N): every M of {1, 3, 8} with every K of {16, 100, 129, 400}, N of {8, 33, 200}
        cases = [(1, 16, 8), (3, 100, 33), (8, 129, 200), (1, 400, 33), (3, 129, 8), (8, 400, 8), (1, 100, 200),
                 (8, 16, 33)]
        many = {"BLOCK_N": 8, "BLOCK_KB": 16}  # many K splits even for small K (the default may be one)
        tk.set_gemv_max_m(8)  # automatic GEMV up to 8 rows here (the default, 1, is what won on an H100)
        for i, (m, k, n) in enumerate(cases):
            gran = ("tensor", "row")[i % 2]
            with_bias = i % 4 != 3
            # automatic selection: M <= gemv_max_m() -> the GEMV (its launch plan is cached with the layer)
            w, b = weight(n, k, gran, seed=i)
            for dtype, tol in ((torch.float32, 1e-5), (torch.float16, 2e-3)):
                x = x_of(m, k, dtype, seed=i)
                bias = b if with_bias else None
                ref = ternary_linear(x, w, bias, kernel="reference")
                ys = [ternary_linear(x, w, bias, kernel="triton_packed")]
                if dtype == torch.float16 and n * k <= 33 * 400:
                    ys.append(tk.float_matmul(x, w, bias, method="gemv", config=many))
                for y in ys:
                    err = ((y.float() - ref.float()).abs().max() / ref.float().abs().max().clamp_min(1)).item()
                    assert y.dtype == dtype and y.shape == ref.shape and err < tol, (m, k, n, gran, dtype, err)
                    checked += 1
            assert any(key[0] == "gemv" for key in w.cache if isinstance(key, tuple)), "auto path did not use the GEMV"
            w8, b8 = weight(n, k, gran, "int8", seed=i)
            for dtype, method in ((torch.float32, "gemv_q"), (torch.float16, "gemv_fused")):
                x = x_of(m, k, dtype, seed=i)
                bias = (b8 if dtype == torch.float32 else b8.half()) if with_bias else None
                ref = ternary_linear(x, w8, bias, kernel="reference")
                y = tk.int8_matmul(x, w8, bias, method=method)
                assert y.dtype == dtype and torch.equal(y, ref), (m, k, n, gran, dtype, method)
                if dtype == torch.float16:  # the automatic choice
                    assert torch.equal(ternary_linear(x, w8, bias, kernel="triton_int8"), ref), (m, k, n, gran, dtype)
                checked += 2
                if n * k <= 33 * 400:
                    y = tk.int8_matmul(x, w8, bias, method=method, config=many)
                    assert torch.equal(y, ref), (m, k, n, gran, dtype, method, "many splits")
                    checked += 1
            # the scratch kept with the layer is zero again after every call (one launch a call, no memset)
            for key, plan in list(w.cache.items()) + list(w8.cache.items()):
                if isinstance(key, tuple) and key[0] == "gemv":
                    acc, cnt = plan[3], plan[4]
                    assert not acc.any() and not cnt.any(), key
        # repeated calls on a cached plan give the same result; the limit of rows; switching the GEMV off
        w8, b8 = weight(40, 136, "row", "int8")
        x = x_of(16, 136)
        ref = ternary_linear(x, w8, b8, kernel="reference")
        assert torch.equal(tk.int8_matmul(x, w8, b8, method="gemv"), ref)  # 16 rows: the most it takes
        assert torch.equal(tk.int8_matmul(x, w8, b8, method="gemv"), ref)
        try:
            tk.gemv_matmul(x_of(17, 136), w8, b8)
            raise AssertionError("the GEMV accepted 17 rows")
        except ValueError:
            pass
        w, b = weight(33, 100)
        x = x_of(3, 100)
        tk.set_gemv_max_m(0)
        try:
            w.cache.clear()
            tk.float_matmul(x, w, b)
            assert not any(isinstance(key, tuple) and key[0] == "gemv" for key in w.cache)
        finally:
            tk.set_gemv_max_m(None)
        assert tk.gemv_max_m() == 1
        cfg = tk.gemv_config(1, 3072, 768, 132)
        assert (768 // 4 + cfg["BLOCK_KB"] - 1) // cfg["BLOCK_KB"] * (3072 // cfg["BLOCK_N"]) >= 4 * 132
        print("ok", checked)
    ''')
    assert out.strip().startswith("ok")


def test_dispatch_under_the_interpreter():
    out = _interpret('''
        w, _ = weight(33, 100)
        w8, _ = weight(33, 100, activations="int8")
        assert select_kernel(torch.randn(3, 100), w).name == "triton_packed"
        assert select_kernel(torch.randn(65, 100), w).name == "triton_int8"  # large M, float: cached codes
        assert select_kernel(torch.randn(3, 100), w8).name == "triton_int8"
        assert select_kernel(torch.randn(3, 100, dtype=torch.float64), w).name != "triton_packed"
        wg, _ = weight(33, 100, "group", group_size=32)
        w5, _ = weight(33, 100, packing="5trit")
        for other in (wg, w5):
            assert not select_kernel(torch.randn(3, 100), other).name.startswith("triton")
        print("ok")
    ''')
    assert out.strip() == "ok"


@pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") == "1", reason="interpreter mode accepts CPU tensors")
def test_cpu_never_selects_triton_kernels():
    assert {"triton_packed", "triton_int8"} <= set(available_kernels())
    g = torch.Generator().manual_seed(0)
    for activations in ("float", "int8"):
        for granularity in ("tensor", "row"):
            cfg = TernaryConfig(granularity=granularity, activations=activations)
            t = ternarize(torch.randn(33, 100, generator=g), cfg)
            w = PackedTernary.from_codes(t.codes, t.scales, cfg)
            for m in (1, 3, 64, 65, 300):
                for dtype in (torch.float32, torch.float16, torch.bfloat16):
                    assert not select_kernel(torch.randn(m, 100, dtype=dtype), w).name.startswith("triton")
            with pytest.raises(ValueError, match="does not support"):
                select_kernel(torch.randn(3, 100), w, "triton_packed" if activations == "float" else "triton_int8")


def test_importing_ternlib_does_not_import_triton():
    code = "import sys, ternlib; assert 'triton_packed' in ternlib.available_kernels(); print('triton' in sys.modules)"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip() == "False"
