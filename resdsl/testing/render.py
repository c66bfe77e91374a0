"""The .res text of a `NetworkSpec` (generate.py's draws): library and custom blocks, stages, the stem
and the head, with the syntax choices the draw made (`x 3` or `x3`, `s2` or `stride=2`, ...)."""

from __future__ import annotations

from .description import Axes, NetworkSpec, Stage


def written(option: str, value: Axes) -> str:
    """A spatial argument as a spec writes it: `k3`, or one per axis `k=(1, 3, 3)`."""
    if isinstance(value, tuple):
        return f"{option}=({', '.join(map(str, value))})"
    return f"{option}{value}"


def _stride(stage: Stage) -> str:
    """The custom block's stride: `stride`, or per axis `(1, stride, stride)`."""
    if not stage.stride_axes:
        return "stride"
    return "(" + ", ".join("stride" if on else "1" for on in stage.stride_axes) + ")"


def _custom_block(stage: Stage) -> str:
    k = written("k", stage.kernel) + (f" d{stage.dilation}" if stage.dilation != 1 else "")
    expand = f"width * {stage.expansion}" if stage.expansion != 1 else "width"
    se = [f"        se {stage.se_ratio}"] if stage.se_ratio else []
    se += {"eca": ["        eca"], "se8": ["        se 4 divisor=8"], "": []}[stage.attention]
    norm = {
        "bn": "bn",
        "gn": f"gn {stage.norm_groups}",
        "evonorm": f"evonorm {stage.norm_groups}",
        "frn": "frn",
        "ln": "ln",
    }[stage.last_norm]
    conv = ("scaled_stdconv" if stage.scaled else "stdconv") if stage.std_conv else "conv"
    conv_options = " gamma=1.7139588594436646 bias" if stage.scaled else ""
    drop = [f"        drop_path {stage.drop_path:g}"] if stage.drop_path else []
    drop += ["        mul 0.2"] if stage.scaled else []  # an NF block's alpha
    scale = {"": [], "plain": ["gamma: layer_scale 0.5"], "broadcast": ["layer_scale 0.5 broadcast"]}[stage.layer_scale]
    convnext = [f"        channel_fc {expand} -> " + scale[0]] if scale else []
    if stage.preact:
        body = [
            f"        bn -> relu -> conv width {k} s={_stride(stage)} g=groups",
            f"        bn -> relu -> conv {expand} k1",
        ] + se
        tail = []
    else:
        body = (
            [
                f"        {conv} width {k} s={_stride(stage)} g=groups{conv_options} -> bn -> {stage.activation}",
                *_branches(stage),
                f"        conv {expand} k1 -> {norm}",
            ]
            + convnext
            + se
            + drop
        )
        tail = ["    relu"] if stage.post_relu else []
    return "\n".join(
        [f"block {stage.block}(width, stride = 1, groups = 1) {{", "    residual {", *body, "    }", *tail, "}"]
    )


def _branches(stage: Stage) -> list[str]:
    """The `branches` part of a custom block: every variant keeps `width` channels and H×W."""
    n = stage.branch_count
    return {
        "": [],
        "concat": [f"        branches({n}, split = true, merge = concat) {{ conv width / {n} k3 -> relu }}"],
        "carry": [
            f"        branches({n}, split = true, merge = concat, carry = branch > 0) {{",
            f"            convs[branch]: conv width / {n} k3 -> relu",
            "        }",
        ],
        "sum": [f"        branches({n}, merge = sum) {{ paths[branch] {{ conv width k3 d=(branch + 1) -> bn }} }}"],
        "product": [f"        branches({n}, merge = product) {{ conv width k1 -> sigmoid }}"],
        "select": [
            f"        branches({n}, merge = select) {{ conv width k3 -> relu }} attend {{",
            f"            avgpool -> conv 8 k1 -> relu -> conv width * {n} k1",
            "        }",
        ],
    }[stage.branches]


def _stage_line(stage: Stage) -> str:
    args = [str(stage.width)]
    if stage.kind == "bottleneck":
        if stage.groups != 1:
            args.append(("g=" if "g_short" in stage.style else "groups=") + str(stage.groups))
        if stage.base_width != 64:
            args.append(f"base_width={stage.base_width}")
        if stage.expansion != 4:
            args.append(f"expansion={stage.expansion}")
        if stage.se_ratio:
            args.append(f"se_ratio={stage.se_ratio}")
    elif stage.kind == "custom" and stage.groups != 1:
        args.append(("g=" if "g_short" in stage.style else "groups=") + str(stage.groups))
    call = f"{stage.block}({', '.join(args)})"
    repeat = f"x {stage.repeats}" if "x_space" in stage.style else f"x{stage.repeats}"
    options = []
    if stage.stride != 1 or "explicit_s1" in stage.style:
        options.append(f"stride={stage.stride}" if "stride_kw" in stage.style else f"s{stage.stride}")
    if stage.shortcut is not None:
        sc = f"shortcut {stage.shortcut}"
        options = [sc] + options if "shortcut_first" in stage.style else options + [sc]
    label = f"{stage.label}: " if stage.label else ""
    return f"    {label}{call} {' '.join([repeat] + options)}"


def render(spec: NetworkSpec) -> str:
    """The .res text of `spec` (its `source` field is ignored)."""
    lines = []
    if any(s.kind in ("basic", "bottleneck") for s in spec.stages):
        lines += ['use "blocks.res"', ""]
    for stage in spec.stages:
        if stage.kind == "custom":
            lines += [_custom_block(stage), ""]
    header = f"network {spec.name}"
    if spec.classes_param:
        header += f"(classes = {spec.classes}, policy = {spec.policy})"
    lines.append(header + " {")
    sizes = [str(n) for n in spec.input_shape]  # C×L, C×H×W or C×D×H×W
    lines.append("    input " + (" x " if "spaced_input" in spec.style else "x").join(sizes))
    if spec.explicit_policy:
        lines.append("    shortcut policy" if spec.classes_param else f"    shortcut {spec.policy}")
    stem = f"conv {spec.stem_width} {written('k', spec.stem_kernel)}"
    if spec.stem_space_to_depth:
        stem = f"space_to_depth {spec.stem_space_to_depth} -> " + stem
    if spec.stem_stride != 1:
        stem += " " + written("s", spec.stem_stride)
    if isinstance(spec.stem_padding, tuple):
        stem += " " + written("p", spec.stem_padding)
    elif spec.stem_padding is not None:
        stem += f" p={spec.stem_padding}" if "p_kw" in spec.style else f" p{spec.stem_padding}"
    stem += " -> bn -> relu"
    if spec.stem_pool is not None:
        k, s, p, ceil = spec.stem_pool
        stem += f" -> maxpool {written('k', k)} {written('s', s)} {written('p', p)}" + (" ceil" if ceil else "")
    if "no_sections" in spec.style:
        lines.append("    " + stem)
    else:
        lines += ["    stem {", "        " + stem, "    }"]
    lines += [_stage_line(stage) for stage in spec.stages]
    classes = "classes" if spec.classes_param else str(spec.classes)
    head = {
        "plain": f"avgpool -> fc {classes}",
        "flatten": f"avgpool -> flatten -> fc {classes}",
        "dropout": f"avgpool -> dropout 0.2 -> fc {classes}",
        "nobias": f"avgpool -> fc {classes} bias=false",
    }[next((x for x in ("flatten", "dropout", "nobias") if x in spec.style), "plain")]
    if "no_sections" in spec.style:
        lines.append("    " + head)
    elif "wrapped_head" in spec.style:
        lines += ["    head {", "        avgpool", f"            -> {head.split(' -> ', 1)[1]}", "    }"]
    else:
        lines += ["    head {", "        " + head, "    }"]
    decoder = []
    if spec.decoder:  # the last stage, projected, resized up to the one before it and added to its projection
        last, before = spec.stages[-1].name, spec.stages[-2].name
        lines.append(f"    shortcut {spec.decoder_mode}")
        lines.append(f"    from {last} -> top: conv {spec.decoder} k1")
        lines.append(f"    top_down: residual {{ from {before} -> conv {spec.decoder} k1 }}")
        decoder = ["top_down"]
    if spec.outputs:  # every stage's features and the logits (`fc`: sections add no name)
        points = [s.name for s in spec.stages] + decoder + ["fc"]
        keyed = [f"f{i}: {p}" for i, p in enumerate(points[:-1])] + [f"logits: {points[-1]}"]
        lines.append("    output " + ", ".join(keyed if spec.outputs == "dict" else points))
    lines.append("}")
    return "\n".join(lines) + "\n"
