"""The bundled specs of timm's ResNet family (timm.list_models(module="resnet")), shared by the tests.

test_family.py checks every one of them against timm; the per-spec sweeps of the other
tests (runtime figures, drawings, ejected source) take the ones that existed before the
family and one representative of each construct it added, for time.
"""

import pytest
import torch

TIMM_RESNET = (
    "resnet10t",
    "resnet14t",
    "resnet18",
    "resnet18d",
    "resnet26",
    "resnet26d",
    "resnet26t",
    "resnet34",
    "resnet34d",
    "resnet50",
    "resnet50c",
    "resnet50d",
    "resnet50s",
    "resnet50t",
    "resnet101",
    "resnet101c",
    "resnet101d",
    "resnet101s",
    "resnet152",
    "resnet152c",
    "resnet152d",
    "resnet152s",
    "resnet200",
    "resnet200d",
    "resnext50_32x4d",
    "resnext50d_32x4d",
    "resnext101_32x4d",
    "resnext101_32x8d",
    "resnext101_32x16d",
    "resnext101_32x32d",
    "resnext101_64x4d",
    "wide_resnet50_2",
    "wide_resnet101_2",
    "seresnet18",
    "seresnet34",
    "seresnet50",
    "seresnet50t",
    "seresnet101",
    "seresnet152",
    "seresnet152d",
    "seresnet200d",
    "seresnet269d",
    "seresnext26d_32x4d",
    "seresnext26t_32x4d",
    "seresnext50_32x4d",
    "seresnext101_32x4d",
    "seresnext101_32x8d",
    "seresnext101_64x4d",
    "seresnext101d_32x8d",
    "ecaresnet26t",
    "ecaresnet50d",
    "ecaresnet50t",
    "ecaresnet101d",
    "ecaresnet200d",
    "ecaresnet269d",
    "ecaresnetlight",
    "ecaresnext26t_32x4d",
    "ecaresnext50t_32x4d",
    "resnetaa34d",
    "resnetaa50",
    "resnetaa50d",
    "resnetaa101d",
    "seresnetaa50d",
    "seresnextaa101d_32x8d",
    "seresnextaa201d_32x8d",
    "resnetrs50",
    "resnetrs101",
    "resnetrs152",
    "resnetrs200",
    "resnetrs270",
    "resnetrs350",
    "resnetrs420",
    "resnetblur18",
    "resnetblur50",
    "resnetblur50d",
    "resnetblur101d",
    "resnet50_gn",
    "ecaresnet50d_pruned",
    "ecaresnet101d_pruned",
    "senet154",
    "test_resnet",
)

# timm's multi-branch families, written with `branches` (res2net.res, sknet.res, resnest.res)
TIMM_RES2NET = (
    "res2net50_26w_4s",
    "res2net50_26w_6s",
    "res2net50_26w_8s",
    "res2net50_48w_2s",
    "res2net50_14w_8s",
    "res2net101_26w_4s",
    "res2next50",
    "res2net50d",
    "res2net101d",
)
TIMM_SKNET = ("skresnet18", "skresnet34", "skresnet50", "skresnet50d", "skresnext50_32x4d")
TIMM_RESNEST = (
    "resnest14d",
    "resnest26d",
    "resnest50d",
    "resnest101e",
    "resnest200e",
    "resnest269e",
    "resnest50d_4s2x40d",
    "resnest50d_1s4x24d",
)
# timm's pre-activation ResNets and BiT, with timm's own module names (resnetv2.res)
TIMM_RESNETV2 = (
    "resnetv2_18",
    "resnetv2_18d",
    "resnetv2_34",
    "resnetv2_34d",
    "resnetv2_50",
    "resnetv2_50d",
    "resnetv2_50t",
    "resnetv2_101",
    "resnetv2_101d",
    "resnetv2_152",
    "resnetv2_152d",
    "resnetv2_50d_gn",
    "resnetv2_50d_evos",
    "resnetv2_50d_frn",
    "resnetv2_50x1_bit",
    "resnetv2_50x3_bit",
    "resnetv2_101x1_bit",
    "resnetv2_101x3_bit",
    "resnetv2_152x2_bit",
    "resnetv2_152x4_bit",
)
# timm module -> the models of it that bundled specs build
TIMM_FAMILIES = {
    "resnet": TIMM_RESNET,
    "res2net": TIMM_RES2NET,
    "sknet": TIMM_SKNET,
    "resnest": TIMM_RESNEST,
    "resnetv2": TIMM_RESNETV2,
}
TIMM_ALL = tuple(name for models in TIMM_FAMILIES.values() for name in models)

# timm's models that no bundled spec builds yet, and why (docs/family.md says the same).
NOT_YET: dict[str, str] = {}

# Specs that were bundled before the family (each sweep keeps them) and one spec per new construct:
# a tiered stem, SE on basic blocks (rounded to 8), ECA, anti-aliasing, the ResNet-RS stem, ResNeXt + SE + D,
# blur pooling.
REPRESENTATIVES = frozenset(
    {
        "resnet18",
        "resnet34",
        "resnet50",
        "resnet101",
        "resnet152",
        "resnet50d",
        "seresnet50",
        "resnext50_32x4d",
        "wide_resnet50_2",
        "resnet10t",
        "seresnet18",
        "ecaresnet26t",
        "resnetaa34d",
        "resnetrs50",
        "seresnext26t_32x4d",
        "resnetblur18",
        "res2net50_26w_4s",
        "skresnet18",
        "resnest14d",
        "resnetv2_50d_evos",
        "ecaresnet50d_pruned",
        "test_resnet",
    }
)
# The RegNets (specs/regnet.res, timm_regnet.res): tests/test_regnet.py checks every one against torchvision or
# timm (static figures and names at 224×224, outputs at 64×64). The sweeps take regnet_x_400mf (bundled before
# the family) and regnety_002 (timm's names, SE); regnet_y_128gf alone would cost the runtime sweep minutes.
REGNETS = (
    tuple(
        f"regnet_{kind}_{size}" for kind in "xy" for size in ("400mf", "800mf", "1_6gf", "3_2gf", "8gf", "16gf", "32gf")
    )
    + ("regnet_y_128gf",)
    + tuple(
        f"regnet{kind}_{size}"
        for kind in "xy"
        for size in ("002", "004", "006", "008", "016", "032", "040", "064", "080", "120", "160", "320")
    )
    + ("regnetx_004_tv", "regnety_008_tv", "regnety_080_tv")
)
LEFT_TO_TEST_FAMILY = (frozenset(TIMM_ALL) - REPRESENTATIVES) | (frozenset(REGNETS) - {"regnet_x_400mf", "regnety_002"})

# timm's RepVGGs (specs/repvgg.res, checked against timm by tests/test_repvgg.py): the sweeps over bundled
# specs (runtime figures at 224×224, drawings, ejected source) take repvgg_a0 for all of them, the family
# file's own network (repvgg_b0's figures) included.
REPVGG = (
    "repvgg_a0",
    "repvgg_a1",
    "repvgg_a2",
    "repvgg_b0",
    "repvgg_b1",
    "repvgg_b1g4",
    "repvgg_b2",
    "repvgg_b2g4",
    "repvgg_b3",
    "repvgg_b3g4",
    "repvgg_d2se",
)
LEFT_TO_TEST_REPVGG = frozenset(REPVGG + ("repvgg",)) - {"repvgg_a0"}
LEFT_TO_TEST_FAMILY |= LEFT_TO_TEST_REPVGG

# Backbones with several outputs (`output`) or side branches (`from`), checked against timm and torchvision by
# tests/test_outputs.py and tests/test_resample.py; `--emit python` refuses them (E0213), and the draw sweep's
# census of boxes knows one output.
SEVERAL_OUTPUTS = frozenset(
    {
        "resnet50_features",
        "resnet50_layers",
        "fpn",
        "resnet50_fpn",
        "deeplabv3",
        "deeplabv3_resnet50",
        "deeplabv3_resnet50_aux",
        "unet",
        "unet_resnet34",
    }
)


def tiered(names, fast) -> list:
    """`names` as pytest parameters, each one outside `fast` marked slow: the default run takes them all,
    the fast tier (`-m "not slow"`) only `fast`."""
    return [name if name in fast else pytest.param(name, marks=pytest.mark.slow) for name in names]


# 1-D and 3-D networks (MONAI's ResNets, torchvision's video ResNets), checked against MONAI and torchvision
# by tests/test_spatial.py at small inputs: at their default inputs (3×16×112×112 clips, 64³ volumes) each
# costs 40 G MACs, too slow for the runtime sweep of test_backend.py.
SPATIAL = frozenset({"monai_resnet18", "monai_resnet50", "r3d_18", "mc3_18", "r2plus1d_18"})


def perturb_norms(model: torch.nn.Module, seed: int = 0) -> None:
    """Non-trivial statistics and affine weights in every norm with running statistics (BatchNorm1d/2d/3d,
    torchvision's FrozenBatchNorm2d), so that a misplaced or misconfigured norm shows in the outputs."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if getattr(module, "running_var", None) is not None:
                module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(module.running_var.shape, generator=generator) + 0.5)
                module.weight.copy_(torch.rand(module.weight.shape, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(module.bias.shape, generator=generator) * 0.1)


# ---- ConvNeXt (specs/convnext.res: torchvision's names; specs/timm_convnext.res: timm's) ----------------------
# tests/test_convnext.py checks every one against its reference; the other sweeps (runtime figures, drawings,
# ejected source) take the two family files (their defaults are the tiny models) and timm's smallest, which
# has every construct of the rest (`ln`, `layer_scale`, 1×1-conv MLPs; `channel_fc` is in `convnext`).
CONVNEXT_TORCHVISION = ("convnext_tiny", "convnext_small", "convnext_base", "convnext_large")
CONVNEXT_TIMM = (
    "timm_convnext_atto",
    "timm_convnext_atto_ols",
    "timm_convnext_femto",
    "timm_convnext_femto_ols",
    "timm_convnext_pico",
    "timm_convnext_pico_ols",
    "timm_convnext_nano",
    "timm_convnext_nano_ols",
    "timm_convnext_tiny",
    "timm_convnext_tiny_hnf",
    "timm_convnext_small",
    "timm_convnext_base",
    "timm_convnext_large",
    "timm_convnext_large_mlp",
    "timm_convnext_xlarge",
)
# Too large to build twice in a test (846 M parameters): checked on the meta device only (names, shapes,
# parameters, MACs, every LayerNorm's eps), its outputs by timm_convnext_xlarge's, built the same way.
CONVNEXT_META_ONLY = ("timm_convnext_xxlarge",)
LEFT_TO_TEST_FAMILY = LEFT_TO_TEST_FAMILY | (
    frozenset(CONVNEXT_TORCHVISION + CONVNEXT_TIMM + CONVNEXT_META_ONLY) - {"timm_convnext_atto"}
)

# The family files whose defaults are a bundled model that the sweeps take (or test files check): the
# per-spec sweeps leave them out, for time (test_convnext.py, test_nfnet.py and test_regnet.py check them).
FAMILY_FILES = frozenset({"timm_convnext", "nf_resnet", "nf_regnet", "normfree", "regnet", "timm_regnet"})
LEFT_TO_TEST_FAMILY = LEFT_TO_TEST_FAMILY | FAMILY_FILES
