import pytest

from resdsl.errors import ShapeError
from resdsl.ops import window
from resdsl.shapes import infer, plan_shortcut


def conv(out, k, s=1, p=None, d=1, g=1):
    return {
        "out": out,
        "kernel": k,
        "stride": s,
        "padding": k // 2 * d if p is None else p,
        "dilation": d,
        "groups": g,
        "bias": False,
    }


@pytest.mark.parametrize(
    "size,k,s,p,d,expected",
    [
        (224, 7, 2, 3, 1, 112),
        (112, 3, 2, 1, 1, 56),
        (56, 1, 2, 0, 1, 28),
        (7, 3, 2, 1, 1, 4),
        (32, 3, 1, 2, 2, 32),
        (5, 5, 1, 0, 1, 1),
    ],
)
def test_floor_formula(size, k, s, p, d, expected):
    assert window(size, k, s, p, d) == expected


def test_ceil_mode_last_window_starts_inside():
    assert window(7, 2, 2, 0, ceil=True) == 4
    assert window(6, 2, 2, 0, ceil=True) == 3
    assert window(2, 3, 2, 0, ceil=True) == 1  # kernel larger than the input: torch gives 1
    assert window(2, 3, 2, 0) == 0


def test_conv_shape_and_errors():
    assert infer("conv", conv(64, 7, 2), (3, 224, 224)) == (64, 112, 112)
    with pytest.raises(ShapeError) as e:
        infer("conv", conv(64, 3, g=5), (10, 8, 8))
    assert e.value.code == "E0402"
    with pytest.raises(ShapeError) as e:
        infer("conv", conv(8, 5, p=0), (3, 4, 4))
    assert e.value.code == "E0403"
    with pytest.raises(ShapeError) as e:
        infer("conv", conv(8, 3), (64,))
    assert e.value.code == "E0406"


def test_fc_needs_a_vector():
    assert infer("fc", {"out": 10, "bias": True}, (512, 1, 1)) == (10,)
    with pytest.raises(ShapeError) as e:
        infer("fc", {"out": 10, "bias": True}, (512, 7, 7))
    assert e.value.code == "E0405"


@pytest.mark.parametrize(
    "policy,x,y,stride,kind",
    [
        ("B", (64, 56, 56), (64, 56, 56), 1, "identity"),
        ("B", (64, 56, 56), (256, 56, 56), 1, "projection"),
        ("B", (256, 56, 56), (512, 28, 28), 2, "projection"),
        ("B", (64, 7, 7), (64, 4, 4), 2, "projection"),
        ("B", (8, 1, 4), (8, 1, 2), 2, "projection"),  # non-square maps
        ("B", (8, 1, 1), (8, 1, 1), 2, "projection"),  # stride != 1: torchvision projects even at 1x1
        ("B", (8, 9, 9), (8, 3, 3), 3, "projection"),  # the main path's stride, not a guess from 9 -> 3
        ("A", (16, 32, 32), (32, 16, 16), 2, "zeropad"),
        ("A", (16, 32, 32), (16, 32, 32), 1, "identity"),
        ("C", (16, 32, 32), (16, 32, 32), 1, "projection"),
        ("D", (256, 56, 56), (512, 28, 28), 2, "avgproj"),
        ("D", (64, 56, 56), (256, 56, 56), 1, "avgproj"),  # pool slot empty, as in timm
        ("none", (16, 32, 32), (32, 16, 16), 2, "none"),
        ("B", (64,), (128,), 1, "projection"),
    ],
)
def test_plan_shortcut(policy, x, y, stride, kind):
    plan = plan_shortcut(policy, x, y, stride)
    assert (plan.kind, plan.stride) == (kind, stride if kind != "none" else 1)


@pytest.mark.parametrize(
    "policy,x,y,stride,code",
    [
        ("identity", (16, 32, 32), (32, 16, 16), 2, "E0401"),
        ("A", (64, 8, 8), (32, 8, 8), 1, "E0401"),
        ("B", (64, 8, 8), (64, 6, 6), 1, "E0407"),  # an unpadded conv shrank H and W
        ("B", (64, 8, 8), (64, 4, 4), 3, "E0407"),
        ("B", (64, 8, 8), (64,), 1, "E0401"),
    ],
)
def test_plan_shortcut_refuses(policy, x, y, stride, code):
    with pytest.raises(ShapeError) as e:
        plan_shortcut(policy, x, y, stride)
    assert e.value.code == code
