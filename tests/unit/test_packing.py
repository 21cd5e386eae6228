import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ternlib.packing import pack, pack_2bit, pack_5trit, packed_shape, unpack, unpack_2bit, unpack_5trit


def test_documented_bit_examples():
    assert pack_2bit(torch.tensor([-1, 0, 1, 1])).tolist() == [0b10100100]
    assert pack_5trit(torch.tensor([1, -1, 0, 0, 1])).tolist() == [200]
    # padding: a lone -1 is u=0 in slot 0 and three zero codes (u=1) after it
    assert pack_2bit(torch.tensor([-1])).tolist() == [0 | 1 << 2 | 1 << 4 | 1 << 6]
    assert pack_5trit(torch.tensor([-1])).tolist() == [0 + 3 + 9 + 27 + 81]


shapes = st.lists(st.integers(0, 9), min_size=1, max_size=3)


@settings(max_examples=120, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**31 - 1), packing=st.sampled_from(["2bit", "5trit"]))
def test_round_trip_any_shape(shape, seed, packing):
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(-1, 2, tuple(shape), generator=g, dtype=torch.int8)
    packed = pack(codes, packing)
    assert packed.dtype == torch.uint8
    assert tuple(packed.shape) == packed_shape(shape, packing)
    assert torch.equal(unpack(packed, shape, packing), codes)


@pytest.mark.parametrize("packing", ["2bit", "5trit"])
def test_bytes_per_code(packing):
    codes = torch.randint(-1, 2, (384, 1536))
    per = {"2bit": 4, "5trit": 5}[packing]
    assert pack(codes, packing).numel() == 384 * -(-1536 // per)


def test_scalar_round_trip():
    for packing in ("2bit", "5trit"):
        assert torch.equal(unpack(pack(torch.tensor(-1), packing), (), packing), torch.tensor(-1, dtype=torch.int8))


@pytest.mark.parametrize("fn", [pack_2bit, pack_5trit])
@pytest.mark.parametrize("bad", [torch.tensor([0, 2]), torch.tensor([0.5, 1.0]), torch.tensor([float("nan")])])
def test_non_ternary_codes_are_rejected(fn, bad):
    with pytest.raises(ValueError, match="-1, 0 or 1|NaN"):
        fn(bad)


def test_corrupt_bytes_are_detected():
    with pytest.raises(ValueError, match="corrupt 2-bit"):
        unpack_2bit(torch.tensor([0b11], dtype=torch.uint8), (4,))
    with pytest.raises(ValueError, match="corrupt 5-trit"):
        unpack_5trit(torch.tensor([250], dtype=torch.uint8), (5,))


def test_shape_and_dtype_mismatch():
    p = pack_2bit(torch.zeros(3, 8, dtype=torch.int8))
    with pytest.raises(ValueError, match="pack to"):
        unpack_2bit(p, (3, 9))
    with pytest.raises(TypeError, match="uint8"):
        unpack_2bit(p.to(torch.int16), (3, 8))
    with pytest.raises(ValueError, match="unknown packing"):
        pack(torch.zeros(3), "3bit")
