import pytest

from resdsl.shapes import ShapeError, infer, plan_shortcut, window


def conv(out, k, s=1, p=None, d=1, g=1):
    return {"out": out, "kernel": k, "stride": s, "padding": k // 2 * d if p is None else p, "dilation": d,
            "groups": g, "bias": False}


@pytest.mark.parametrize("size,k,s,p,d,expected", [
    (224, 7, 2, 3, 1, 112), (112, 3, 2, 1, 1, 56), (56, 1, 2, 0, 1, 28), (7, 3, 2, 1, 1, 4),
    (32, 3, 1, 2, 2, 32), (5, 5, 1, 0, 1, 1),
])
def test_floor_formula(size, k, s, p, d, expected):
    assert window(size, k, s, p, d) == expected


def test_ceil_mode_last_window_starts_inside():
    assert window(7, 2, 2, 0, ceil=True) == 4
    assert window(6, 2, 2, 0, ceil=True) == 3


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


@pytest.mark.parametrize("policy,x,y,kind,stride", [
    ("B", (64, 56, 56), (64, 56, 56), "identity", 1),
    ("B", (64, 56, 56), (256, 56, 56), "projection", 1),
    ("B", (256, 56, 56), (512, 28, 28), "projection", 2),
    ("B", (64, 7, 7), (64, 4, 4), "projection", 2),
    ("A", (16, 32, 32), (32, 16, 16), "zeropad", 2),
    ("A", (16, 32, 32), (16, 32, 32), "identity", 1),
    ("C", (16, 32, 32), (16, 32, 32), "projection", 1),
    ("D", (256, 56, 56), (512, 28, 28), "avgproj", 2),
    ("D", (64, 56, 56), (256, 56, 56), "avgproj", 1),  # pool slot empty, as in timm
    ("none", (16, 32, 32), (32, 16, 16), "none", 1),
    ("B", (64,), (128,), "projection", 1),
])
def test_plan_shortcut(policy, x, y, kind, stride):
    plan = plan_shortcut(policy, x, y)
    assert (plan.kind, plan.stride) == (kind, stride)


@pytest.mark.parametrize("policy,x,y,code", [
    ("identity", (16, 32, 32), (32, 16, 16), "E0401"),
    ("A", (64, 8, 8), (32, 8, 8), "E0401"),
    ("B", (64, 8, 8), (64, 5, 5), "E0407"),
    ("B", (64, 8, 8), (64, 16, 16), "E0407"),
    ("B", (64, 8, 8), (64,), "E0401"),
])
def test_plan_shortcut_refuses(policy, x, y, code):
    with pytest.raises(ShapeError) as e:
        plan_shortcut(policy, x, y)
    assert e.value.code == code
