"""Fast CPU kernels against the reference kernel: exact for the int8 path, float tolerance otherwise."""
import warnings

import pytest
import torch

from ternlib import TernaryConfig, TernaryLinear, ternarize
from ternlib.kernels import (
    PackedTernary,
    available_kernels,
    crossover,
    quantize_activations,
    registry,
    select_kernel,
    set_crossover,
    ternary_linear,
)
from ternlib.kernels import cpu as cpu_kernels

needs_ext = pytest.mark.skipif(cpu_kernels.extension() is None, reason="C++ extension not built here")

SHAPES = [(1, 1, 1), (1, 384, 384), (3, 200, 37), (4, 129, 255), (7, 1536, 384), (17, 384, 1536),
          (33, 250, 64), (64, 768, 96), (130, 257, 129), (1024, 64, 48), (4096, 16, 8)]


def _weight(n, k, granularity="tensor", activations="int8", seed=0):
    g = torch.Generator().manual_seed(seed)
    cfg = TernaryConfig(granularity=granularity, activations=activations, beta=1.0)
    t = ternarize(torch.randn(n, k, generator=g), cfg)
    return PackedTernary.from_codes(t.codes, t.scales, cfg), torch.randn(n, generator=g)


def _x(m, k, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(m, k, generator=g) * torch.rand(m, 1, generator=g) * 4
    if m > 2:
        x[1] = 0.0  # an all-zero token
    return x


@needs_ext
@pytest.mark.parametrize("m,k,n", SHAPES)
@pytest.mark.parametrize("granularity", ["tensor", "row"])
@pytest.mark.parametrize("kernel", ["cpu_packed", "cpu_unpacked"])
def test_int8_path_is_exact(m, k, n, granularity, kernel):
    w, b = _weight(n, k, granularity, "int8")
    x = _x(m, k)
    ref = ternary_linear(x, w, b, kernel="reference")
    set_crossover(10**9)
    try:
        out = ternary_linear(x, w, b, kernel=kernel)
    finally:
        set_crossover(None)
    assert out.shape == (m, n) and out.dtype == torch.float32
    assert torch.equal(out, ref)


@needs_ext
@pytest.mark.parametrize("m,k,n", SHAPES)
def test_float_path_matches_reference(m, k, n):
    w, b = _weight(n, k, "row", "float")
    x = _x(m, k)
    ref = ternary_linear(x, w, b, kernel="reference")
    set_crossover(10**9)
    try:
        packed = ternary_linear(x, w, b, kernel="cpu_packed")
    finally:
        set_crossover(None)
    scale = ref.abs().max().clamp_min(1.0)
    assert (packed - ref).abs().max() / scale < 1e-5  # float32 summation order only
    assert torch.equal(ternary_linear(x, w, b, kernel="cpu_unpacked"), ref)  # the reference's own F.linear


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("activations", ["float", "int8"])
def test_half_inputs_match_the_reference(dtype, activations):
    """A model cast to bf16 / fp16 calls the CPU kernels with half inputs: the large-M float path is the
    reference's own half GEMM (bit for bit), the others compute in float32 and round once to the input's dtype."""
    w, b = _weight(96, 200, "row", activations)
    for m in (1, 16, 300):  # packed kernel (where it builds), then the unpacked one
        x = _x(m, 200).to(dtype)
        ref = ternary_linear(x, w, b.to(dtype), kernel="reference")
        kernel = select_kernel(x, w)
        assert kernel.name != "reference"
        out = ternary_linear(x, w, b.to(dtype))
        assert out.dtype == dtype and out.shape == (m, 96)
        if activations == "float" and kernel.name == "cpu_unpacked":
            assert torch.equal(out, ref)
        else:  # float32 inside, one rounding to half at the end (the reference rounds its weight and sums in half)
            scale = ref.float().abs().max().clamp_min(1.0)
            assert (out.float() - ref.float()).abs().max() / scale < 2e-2


def test_cast_model_keeps_scales_float32_and_computes_in_its_dtype():
    from ternlib.embedding import Int8Embedding

    layer = TernaryLinear.from_linear(torch.nn.Linear(64, 32), TernaryConfig(granularity="row")).freeze()
    model = torch.nn.Sequential(torch.nn.LayerNorm(64), layer)
    scales = layer.scales.clone()
    x = torch.randn(5, 64)
    y32 = model(x)
    model.to(torch.bfloat16)
    assert layer.scales.dtype == torch.float32 and torch.equal(layer.scales, scales)  # not rounded to bf16
    assert layer.bias.dtype == torch.bfloat16 and layer.packed.dtype == torch.uint8
    y16 = model(x.bfloat16())
    assert y16.dtype == torch.bfloat16
    assert (y16.float() - y32).abs().max() / y32.abs().max() < 2e-2
    model.float()
    assert layer.scales.dtype == torch.float32 and torch.equal(layer.scales, scales)
    assert [n for n, _ in layer.named_buffers()] == ["packed", "scales"]  # state_dict order unchanged
    emb = Int8Embedding.from_embedding(torch.nn.Embedding(10, 8)).to(torch.bfloat16)
    assert emb(torch.tensor([1, 2])).dtype == torch.bfloat16


@needs_ext
@pytest.mark.parametrize("isa", [0, 1, 2])
def test_every_instruction_set_agrees(isa):
    ext = cpu_kernels.extension()
    if isa > ext.isa_level():
        pytest.skip("CPU lacks this instruction set")
    w, b = _weight(96, 300, "row", "int8")
    x = _x(9, 300)
    planes = cpu_kernels.to_planes128(w.codes())
    q, sx, qs = ext.quantize_per_token(x, planes.shape[1] * 4, isa)
    q_ref, sx_ref = quantize_activations(x)
    assert torch.equal(q[:, :300], q_ref) and torch.equal(sx, sx_ref.reshape(-1))
    assert torch.equal(qs, q_ref.sum(-1, dtype=torch.int32)) and not q[:, 300:].any()
    y = ext.gemm_int8(q, sx, qs, planes, w.scales.reshape(-1), b, 96, isa)
    assert torch.equal(y, ternary_linear(x, w, b, kernel="reference"))
    yf = ext.gemm_f32(x, planes, w.scales.reshape(-1), b, 96, isa)
    wf, _ = _weight(96, 300, "row", "float")
    assert torch.allclose(yf, ternary_linear(x, wf, b, kernel="reference"), rtol=1e-5, atol=1e-4)


@needs_ext
def test_cpp_quantization_matches_reference_on_many_rows():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(4096, 768, generator=g) * torch.exp2(torch.randint(-8, 8, (4096, 1), generator=g).float())
    q, sx, qs = cpu_kernels.extension().quantize_per_token(x, 768, -1)
    q_ref, sx_ref = quantize_activations(x)
    assert torch.equal(q, q_ref) and torch.equal(sx, sx_ref.reshape(-1))


def test_quantize_activations_rounds_half_to_even_and_handles_zero_rows():
    q, s = quantize_activations(torch.tensor([[127.0, 0.5, 1.5, -2.5], [0.0, 0.0, 0.0, 0.0]]))
    assert q.tolist() == [[127, 0, 2, -2], [0, 0, 0, 0]]
    assert s.reshape(-1).tolist() == [1.0, 0.0]


def test_planes128_layout():
    codes = torch.randint(-1, 2, (5, 300), dtype=torch.int8)
    planes = cpu_kernels.to_planes128(codes)
    assert planes.shape == (5, 384 // 4)
    u = torch.stack([(planes.to(torch.int32) >> (2 * s)) & 3 for s in range(4)], -1)  # (N, Kp/4, 4)
    u = u.reshape(5, 3, 32, 4).transpose(2, 3).reshape(5, 384) - 1  # back to column order
    assert torch.equal(u[:, :300].to(torch.int8), codes) and not u[:, 300:].any()


@pytest.mark.parametrize("lanes", [16, 8])
def test_rows_layouts(lanes):
    codes = torch.randint(-1, 2, (37, 200), dtype=torch.int8)
    r = (cpu_kernels.to_rows16 if lanes == 16 else cpu_kernels.to_rows8)(codes)
    g = -(-37 // lanes)
    assert r.shape == (g, 13, lanes, 4)  # 37 rows -> groups of `lanes`, 200 columns -> 13 chunks of 16
    u = torch.stack([(r.to(torch.int32) >> (2 * s)) & 3 for s in range(4)], 3)  # (G, c, j, s, b)
    u = u.permute(0, 2, 1, 3, 4).reshape(g * lanes, 208) - 1  # row lanes*G + j, column 16c + 4s + b
    assert torch.equal(u[:37, :200].to(torch.int8), codes) and not u[37:].any() and not u[:, 200:].any()


needs_avx2 = pytest.mark.skipif(cpu_kernels.extension() is None or cpu_kernels.isa() == "scalar",
                                reason="the rows8 kernel needs AVX2")


@needs_avx2
@pytest.mark.parametrize("m", [1, 2, 3, 4, 5, 9, 400])  # around the 4-token tiles; 400 at K=700: three chunks
@pytest.mark.parametrize("n,k,bias", [(33, 136, True), (1024, 700, False)])  # 700: three int16 segments
def test_rows8_kernel_is_exact(m, n, k, bias):
    w, b = _weight(n, k, "row", "int8")
    b = b if bias else None
    x = _x(m, k)
    r = cpu_kernels.to_rows8(w.codes())
    y = cpu_kernels.extension().linear_rows8(x, r, w.scales.reshape(-1), b, n)
    assert torch.equal(y, ternary_linear(x, w, b, kernel="reference"))


@needs_avx2
def test_rows8_kernel_int16_sums_at_their_bound():
    # every code +1 and every activation 127: each int16 sum reaches 64 * 508 = 32512 before it is widened
    k, n = 1024, 16
    codes = torch.ones(n, k, dtype=torch.int8)
    x = torch.full((3, k), 5.0)
    y = cpu_kernels.extension().linear_rows8(x, cpu_kernels.to_rows8(codes), torch.ones(1), None, n)
    sx = torch.tensor(5.0) * torch.tensor(1 / 127)  # float32, as the kernel's per-token scale
    assert torch.equal(y, torch.full((3, n), 127.0 * k) * sx)  # every output: 127 k (exact in float32) times it


@needs_avx2
def test_rows8_kernel_is_used_for_int8_on_avx2():
    if cpu_kernels.isa() != "avx2":
        pytest.skip("int8 takes rows16 on AVX-512 VNNI")
    w, _ = _weight(40, 136, "row", "int8")
    x = _x(5, 136)
    assert torch.equal(ternary_linear(x, w, kernel="cpu_packed"), ternary_linear(x, w, kernel="reference"))
    assert "rows8" in w.cache and "planes128" not in w.cache and cpu_kernels.int8_layout() == "rows8"


@needs_avx2
def test_rows8_kernel_rejects_a_wrong_layout():
    msg = r"linear_rows8: weight has shape \[2, 1, 8, 4\], expected \(3, 1, 8, 4\)"
    with pytest.raises(RuntimeError, match=msg):
        cpu_kernels.extension().linear_rows8(
            torch.randn(8, 16), cpu_kernels.to_rows8(torch.zeros(16, 16, dtype=torch.int8)), torch.ones(1), None, 17)


needs_vnni = pytest.mark.skipif(cpu_kernels.extension() is None or cpu_kernels.isa() != "avx512-vnni",
                                reason="the rows16 kernel needs AVX-512 VNNI")


@needs_vnni
@pytest.mark.parametrize("m", [1, 3, 12, 13, 24, 25, 40])  # around the 12-token register tiles
@pytest.mark.parametrize("n,bias", [(33, True), (1024, False)])
def test_rows16_kernel_is_exact_and_used_for_int8(m, n, bias):
    w, b = _weight(n, 136, "row", "int8")
    b = b if bias else None
    x = _x(m, 136)
    set_crossover(10**9)
    try:
        out = ternary_linear(x, w, b, kernel="cpu_packed")
    finally:
        set_crossover(None)
    assert torch.equal(out, ternary_linear(x, w, b, kernel="reference"))
    assert "rows16" in w.cache and "planes128" not in w.cache and cpu_kernels.int8_layout() == "rows16"
    wf, _ = _weight(n, 136, "row", "float")
    ternary_linear(x[:2], wf, b, kernel="cpu_packed")
    assert "planes128" in wf.cache  # float activations: the planes128 kernel


@needs_vnni
def test_rows16_kernel_rejects_a_wrong_layout():
    ext = cpu_kernels.extension()
    msg = r"linear_rows16: weight has shape \[1, 1, 16, 4\], expected \(2, 1, 16, 4\)"
    with pytest.raises(RuntimeError, match=msg):
        ext.linear_rows16(torch.randn(8, 16), cpu_kernels.to_rows16(torch.zeros(16, 16, dtype=torch.int8)),
                          torch.ones(1), None, 17)


@needs_ext
def test_dispatch_picks_by_token_count_and_honours_overrides(monkeypatch):
    w, _ = _weight(32, 64, activations="float")  # int8 weights: see test_slow_int_mm_sends_int8_batches_...
    assert select_kernel(torch.randn(crossover(), 64), w).name == "cpu_packed"
    assert select_kernel(torch.randn(crossover() + 1, 64), w).name == "cpu_unpacked"
    assert select_kernel(torch.randn(2, 64, dtype=torch.float64), w).name == "reference"
    set_crossover(0)
    try:
        assert select_kernel(torch.randn(1, 64), w).name == "cpu_unpacked"
    finally:
        set_crossover(None)
    monkeypatch.setenv("TERNLIB_KERNEL", "reference")
    assert select_kernel(torch.randn(1, 64), w).name == "reference"
    monkeypatch.setenv("TERNLIB_CROSSOVER", "x")
    monkeypatch.delenv("TERNLIB_KERNEL")
    with pytest.raises(ValueError, match="TERNLIB_CROSSOVER"):
        crossover()
    with pytest.raises(ValueError, match="unknown ternary kernel"):
        select_kernel(torch.randn(1, 64), w, "nope")
    with pytest.raises(ValueError, match="crossover"):
        set_crossover(-1)


def test_group_scales_fall_back_to_reference():
    w, b = _weight(16, 256, "group", "int8")
    assert select_kernel(torch.randn(2, 256), w).name == "reference"


def test_kernel_cache_is_reused_and_invalidated():
    layer = TernaryLinear(64, 32, config=TernaryConfig(activations="int8")).freeze()
    x = torch.randn(100, 64)
    y1 = layer(x)
    cached = dict(layer._kernel_cache)
    layer(x)
    assert all(layer._kernel_cache[k] is v for k, v in cached.items() if k != "_key")
    with torch.no_grad():
        layer.packed.copy_(torch.flip(layer.packed, [0]))  # new codes, same storage
    y2 = layer(x)
    assert torch.equal(y2, ternary_linear(x, layer.packed_weight(), layer.bias, kernel="reference"))
    assert not torch.equal(y1, y2)


def test_int8_activations_train_with_straight_through_gradient():
    layer = TernaryLinear(32, 8, config=TernaryConfig(activations="int8"))
    x = torch.randn(4, 32, requires_grad=True)
    layer(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0 and layer.weight.grad is not None
    assert "activations=int8" in repr(layer)


def test_disabled_extension_falls_back_silently(monkeypatch):
    monkeypatch.setattr(cpu_kernels, "_EXT", None)
    monkeypatch.setattr(cpu_kernels, "_EXT_ERROR", None)
    monkeypatch.setenv("TERNLIB_NO_EXTENSION", "1")
    w, b = _weight(8, 16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = ternary_linear(torch.randn(2, 16), w, b)
    assert cpu_kernels.extension_error() == "disabled by TERNLIB_NO_EXTENSION"
    assert y.shape == (2, 8)
    assert "cpu_packed" in available_kernels()


def test_failed_build_warns_once_and_falls_back(monkeypatch):
    import torch.utils.cpp_extension as cpp

    def broken(**kwargs):
        raise RuntimeError("Ninja is required to load C++ extensions")

    monkeypatch.setattr(cpu_kernels, "_EXT", None)
    monkeypatch.setattr(cpu_kernels, "_EXT_ERROR", None)
    monkeypatch.delenv("TERNLIB_NO_EXTENSION", raising=False)
    monkeypatch.setattr(cpp, "load", broken)
    w, b = _weight(8, 16)
    with pytest.warns(RuntimeWarning, match="pip install ninja") as record:
        ternary_linear(torch.randn(2, 16), w, b)
        ternary_linear(torch.randn(2, 16), w, b)
    assert len([r for r in record if "C++ CPU kernel" in str(r.message)]) == 1


@needs_ext
def test_loaded_sentence_transformer_uses_fast_kernels_exactly(minilm, tmp_path):
    """ternlib.load returns a model ready for fast inference: packed kernel for a query, int8 GEMM for a
    batch, and with int8 activations the same bits as the reference kernel."""
    import os

    from ternlib import freeze_, load, quantize_, save, ternary_modules

    quantize_(minilm, TernaryConfig())
    save(freeze_(minilm), tmp_path / "m")
    model = load(tmp_path / "m", activations="int8")
    layers = [m for _, m in ternary_modules(model)]
    assert all(m.frozen and m.config.activations == "int8" for m in layers)
    seen = []
    real = {k: registry._KERNELS[k].fn for k in ("cpu_packed", "cpu_unpacked")}

    def spy(name):
        def fn(x, w, b):
            seen.append(name)
            return real[name](x, w, b)
        return fn

    texts = ["a short query", "ternary weights in a sentence encoder " * 3] * 40
    try:
        for k in real:
            registry._KERNELS[k].fn = spy(k)
        query = model.encode(texts[:1], convert_to_tensor=True)
        assert set(seen) == {"cpu_packed"}
        seen.clear()
        batch = model.encode(texts, batch_size=64, convert_to_tensor=True)
        if cpu_kernels.int_mm_fast():  # PyTorch's int8 GEMM for large batches
            assert "cpu_unpacked" in seen
        else:  # PyTorch's int8 GEMM is its scalar fallback here: the packed kernel at every size
            assert set(seen) == {"cpu_packed"}
    finally:
        for k, fn in real.items():
            registry._KERNELS[k].fn = fn
    os.environ["TERNLIB_KERNEL"] = "reference"
    try:
        assert torch.equal(model.encode(texts[:1], convert_to_tensor=True), query)
        assert torch.equal(model.encode(texts, batch_size=64, convert_to_tensor=True), batch)
    finally:
        del os.environ["TERNLIB_KERNEL"]


@needs_ext
def test_extension_rejects_bad_scales_and_biases():
    ext = cpu_kernels.extension()
    acc, sx = torch.zeros(2, 8, dtype=torch.int32), torch.ones(2)
    with pytest.raises(RuntimeError, match="dequant_epilogue_: bias must be N float32 values"):
        ext.dequant_epilogue_(acc, sx, torch.ones(1), torch.ones(9), -1)
    with pytest.raises(RuntimeError, match="dequant_epilogue_: scales must be 1 or N"):
        ext.dequant_epilogue_(acc, sx, torch.ones(3), None, -1)
    planes = cpu_kernels.to_planes128(torch.zeros(8, 16, dtype=torch.int8))
    with pytest.raises(RuntimeError, match="linear_small: bias must be N float32 values"):
        ext.linear_small(torch.randn(1, 16), planes, torch.ones(1), torch.ones(8, dtype=torch.float64), True, -1)
    with pytest.raises(RuntimeError, match="gemm_f32: scales must be 1 or N"):
        ext.linear_small(torch.randn(1, 16), planes, torch.ones(5), None, False, -1)


def test_kernel_modules_import_nothing_back_from_the_package():
    """registry, reference and the backends import ``..registry``, ``..reference`` and ``ternlib.activations``,
    never ``ternlib.kernels`` itself (whose ``__init__`` imports them)."""
    import ast
    from pathlib import Path

    import ternlib.kernels

    root = Path(ternlib.kernels.__file__).parent
    bad = []
    for path in sorted(root.rglob("*.py")):
        if path == root / "__init__.py":
            continue
        parts = ["ternlib", "kernels", *path.relative_to(root).with_suffix("").parts]
        package = parts[:-1]  # the package a relative import starts from (for __init__.py: its own)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                names = [a.name for a in node.names]
            elif isinstance(node, ast.Import):
                target, names = None, [a.name for a in node.names]
            else:
                continue
            modules = [target] if target is not None else names  # absolute imports: the module names
            if target == "ternlib.kernels":  # only submodules may be named
                bad += [f"{path.name}: from ternlib.kernels import {n}" for n in names
                        if not (root / n).is_dir() and not (root / f"{n}.py").is_file()]
            elif "ternlib.kernels" in modules or (target == "ternlib" and "kernels" in names):
                bad.append(f"{path.relative_to(root)}:{node.lineno} imports ternlib.kernels")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("activations", ["float", "int8"])
@pytest.mark.parametrize("granularity", ["tensor", "row", "group"])
def test_compiled_layer_runs_the_custom_op_exactly(activations, granularity):
    """Under torch.compile a frozen layer is one custom operator (no graph break: fullgraph=True) computing
    exactly what the eager layer computes; aot_eager runs the operator's fake implementation too."""
    cfg = TernaryConfig(activations=activations, granularity=granularity, group_size=16)
    model = torch.nn.Sequential(TernaryLinear(48, 32, config=cfg), torch.nn.GELU(), TernaryLinear(32, 8, config=cfg))
    for m in model:
        if isinstance(m, TernaryLinear):
            m.freeze()
    torch._dynamo.reset()  # each case compiles afresh (dynamo caps recompiles of one code object at 8)
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    for tokens in (1, 5, 40):  # both CPU kernels (small and large batch)
        x = torch.randn(2, tokens, 48)
        assert torch.equal(compiled(x), model(x))


def test_export_sees_the_ternary_operator():
    from ternlib.kernels import ternary_linear_op

    layer = TernaryLinear(24, 16, config=TernaryConfig(activations="int8")).freeze()
    x = torch.randn(3, 24)
    program = torch.export.export(layer, (x,))
    assert "ternlib.ternary_linear" in str(program.graph)
    assert torch.equal(program.module()(x), layer(x))
    with pytest.raises(ValueError, match="features in its last dimension"):  # the dispatch's own checks still hold
        ternary_linear_op(torch.randn(3, 7), layer.packed, layer.scales, layer.bias, 16, 24, "2bit", 0, "int8", "")


@pytest.fixture
def int_mm_setting(monkeypatch):
    """Set TERNLIB_INT_MM for one test (int_mm_fast is decided once per process: its cache is cleared around it)."""
    def set_(value):
        monkeypatch.setenv("TERNLIB_INT_MM", value)
        cpu_kernels.int_mm_fast.cache_clear()
    yield set_
    monkeypatch.delenv("TERNLIB_INT_MM", raising=False)
    cpu_kernels.int_mm_fast.cache_clear()


@pytest.mark.parametrize("fast", ["1", "0"])
def test_int8_products_are_exact_either_way(int_mm_setting, fast):
    """torch._int_mm where it is fast, else a float GEMM on the same integers: both exact, float64 where float32
    could round (K large, or float32 matmuls allowed to lose precision)."""
    int_mm_setting(fast)
    g = torch.Generator().manual_seed(0)
    q = torch.randint(-127, 128, (37, 300), dtype=torch.int8, generator=g)
    c = torch.randint(-1, 2, (300, 29), dtype=torch.int8, generator=g)
    exact = (q.double() @ c.double()).to(torch.int32)
    assert torch.equal(cpu_kernels.int8_products(q, c), exact)
    assert cpu_kernels.int8_products(q[:0], c).shape == (0, 29)
    if fast == "0":
        k = 140_000  # 127 * K > 2**24: an odd sum this large is not a float32
        q1 = torch.full((1, k), 127, dtype=torch.int8)
        q1[0, 0] = 126
        c1 = torch.ones(k, 1, dtype=torch.int8)
        assert int(cpu_kernels.int8_products(q1, c1)) == 127 * (k - 1) + 126
        before = torch.get_float32_matmul_precision()
        torch.set_float32_matmul_precision("medium")
        try:
            assert torch.equal(cpu_kernels.int8_products(q, c), exact)
        finally:
            torch.set_float32_matmul_precision(before)


@needs_ext
def test_slow_int_mm_sends_int8_batches_to_the_packed_kernel(int_mm_setting):
    """Where torch._int_mm is PyTorch's scalar fallback (CPUs without AVX-512 VNNI or AMX: 15-76x slower than
    FP32 in experiments/int_mm_fallback.py), int8 calls of every size take the packed kernel; float activations
    keep the crossover."""
    w8, b = _weight(32, 64, activations="int8")
    wf, _ = _weight(32, 64, activations="float")
    big = torch.randn(crossover() + 1, 64)
    int_mm_setting("0")
    assert select_kernel(big, w8).name == "cpu_packed"
    assert select_kernel(big, wf).name == "cpu_unpacked"
    ref = ternary_linear(big, w8, b, kernel="reference")
    assert torch.equal(ternary_linear(big, w8, b), ref)
    assert torch.equal(ternary_linear(big, w8, b, kernel="cpu_unpacked"), ref)
    int_mm_setting("1")
    assert select_kernel(big, w8).name == "cpu_unpacked"
    int_mm_setting("yes")
    with pytest.raises(ValueError, match="TERNLIB_INT_MM"):
        cpu_kernels.int_mm_fast()
