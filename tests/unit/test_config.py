import pytest

from ternlib import TernaryConfig


def test_defaults_are_the_paper():
    c = TernaryConfig()
    assert (c.rule, c.beta, c.granularity, c.packing) == ("absmean", 2.0, "tensor", "2bit")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"rule": "sign"}, "rule"),
        ({"beta": 0}, "beta"),
        ({"beta": -1.0}, "beta"),
        ({"beta": "2"}, "beta"),
        ({"granularity": "channel"}, "granularity"),
        ({"group_size": 0}, "group_size"),
        ({"group_size": 2.5}, "group_size"),
        ({"packing": "3bit"}, "packing"),
    ],
)
def test_bad_values_name_the_field(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TernaryConfig(**kwargs)


def test_dict_round_trip_and_unknown_keys():
    c = TernaryConfig(rule="twn", granularity="group", group_size=64, packing="5trit")
    assert TernaryConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="unknown TernaryConfig keys"):
        TernaryConfig.from_dict({**c.to_dict(), "bits": 2})


def test_short_label():
    assert TernaryConfig(beta=1.5, granularity="group", group_size=32).short() == "absmean(beta=1.5)/group32"
    assert TernaryConfig(rule="twn").short() == "twn/tensor"
