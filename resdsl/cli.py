"""The `resdsl` command. Exit codes: 0 ok, 1 spec errors, 2 usage errors.

`check` and `summary` never import torch, graphviz or networkx; rich is
imported only to draw the summary table, torch only by `compile`, graphviz
only by `draw`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence

from .arguments import (
    EXIT_OK,
    EXIT_SPEC,
    EXIT_USAGE,
    format_option,
    max_memory_option,
    non_negative_float,
    path,
    positive_int,
    spec_options,
)
from .errors import RunError, SpecError, UsageError
from .files import check_destination, expand
from .library import bundled_networks
from .outputs import show_outputs
from .units import format_count


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="resdsl", description="Check, summarise and compile residual networks written in the .res language."
    )
    parser.add_argument("--version", action="version", version=f"resdsl {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check = commands.add_parser("check", help="check specs: shapes, params and MACs, or located errors")
    check.add_argument("specs", nargs="+", metavar="FILE|NAME", help="a .res file or a bundled spec name")
    check.add_argument(
        "--libraries",
        action="store_true",
        help="accept files of blocks alone (their syntax and `use`s are checked), as when "
        "checking every .res file of a repository",
    )
    format_option(check)
    spec_options(check)
    verify = commands.add_parser("verify", help="check a spec over a space of parameters and input sizes")
    verify.add_argument(
        "specs",
        nargs="*",
        metavar="FILE|NAME",
        help="specs to verify (none: the [tool.resdsl] table of pyproject.toml)",
    )
    verify.add_argument(
        "--vary",
        action="append",
        default=[],
        metavar="NAME=VALUES",
        help="a parameter's values: a list (depth=18,34,50), a range (width=16..128:8) or both",
    )
    verify.add_argument(
        "--input-range",
        metavar="LO..HI",
        help="input H×W from LO to HI (square; "
        "HLO..HHIxWLO..WHI for every H with every W; :STEP for a step). Ranges stay lazy: a "
        "space of up to 10^12 configurations is sampled; the valid sizes at the spec's own "
        "values are listed for a square range of up to 1,000,000 sizes",
    )
    # --examples, --seed and --max-memory are read by verify_cli, so a mistake comes out in the --format asked for
    verify.add_argument(
        "--examples",
        default=None,
        metavar="N",
        help="check every configuration of a space of at most N (default 1000), "
        "else N sampled ones, each failure shrunk to its minimum",
    )
    verify.add_argument(
        "--runtime",
        action="store_true",
        help="also build a few configurations and run them: shapes, params and MACs must agree "
        "(needs PyTorch; a configuration whose tensors cannot fit in memory is error E0506, "
        "as with compile)",
    )
    verify.add_argument(
        "--max-memory",
        metavar="SIZE",
        default=None,
        help="with --runtime: the memory limit of the estimate (default: the machine's memory)",
    )
    verify.add_argument("--seed", default=None, metavar="N", help="the sampling seed (default 0)")
    verify.add_argument("--network", metavar="NAME", help="which network, when a file defines several")
    format_option(verify)
    summary = commands.add_parser("summary", help="a table of shapes, params and MACs per stage")
    summary.add_argument("spec", metavar="FILE|NAME")
    summary.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    summary.add_argument(
        "--input-sizes",
        nargs="?",
        const="1..1024",
        metavar="LO..HI",
        help="the input sizes from LO to HI the network accepts on each spatial axis (L; H and W; D, H "
        "and W), its smallest input, and each part's output size as a formula of the axis's size "
        "(default range 1..1024; at most 1..1000000, worked out by periods of the strides in well "
        "under a second)",
    )
    spec_options(summary)
    compile_ = commands.add_parser("compile", help="build the PyTorch module and write it out")
    compile_.add_argument("spec", metavar="FILE|NAME")
    compile_.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        type=path,
        help="where to write (default: NAME plus the kind's suffix: .pt2, .ts.pt, .onnx, .state.pt, .py)",
    )
    compile_.add_argument(
        "--force",
        action="store_true",
        help="let the default output replace an existing file (-o names a file to replace)",
    )
    compile_.add_argument(
        "--emit",
        choices=["pt2", "torchscript", "onnx", "state", "python"],
        default="pt2",
        help="pt2: a torch.export program (default); torchscript; onnx; state: a state dict "
        "with the spec embedded; python: standalone PyTorch source",
    )
    compile_.add_argument(
        "--weights", metavar="CKPT", type=path, help="a checkpoint to check against the spec and load"
    )
    compile_.add_argument(
        "--deploy",
        nargs="?",
        const="fp32",
        choices=["fp32"],
        help="the inference form: batch norms folded into convs, sums of conv/BN/identity branches fused into "
        "one conv (RepVGG), proven equal to the trained network on random inputs before anything is written "
        "(docs/deploy.md)",
    )
    compile_.add_argument(
        "--deploy-tolerance",
        type=non_negative_float,
        default=None,
        metavar="REL",
        help="with --deploy: the largest relative difference accepted (default 1e-4, fp32)",
    )
    compile_.add_argument(
        "--max-params",
        type=positive_int,
        default=2_000_000_000,
        metavar="N",
        help="refuse specs with more parameters, before allocating anything (default 2e9)",
    )
    max_memory_option(compile_)
    spec_options(compile_)
    draw = commands.add_parser("draw", help="draw the architecture with Graphviz")
    draw.add_argument("spec", metavar="FILE|NAME")
    draw.add_argument("-o", "--output", metavar="OUT", help="OUT.svg, .png, .pdf or .dot (default: NAME-LEVEL.svg)")
    draw.add_argument(
        "--force",
        action="store_true",
        help="let the default output replace an existing file (-o names a file to replace)",
    )
    draw.add_argument(
        "--level",
        choices=["network", "stage", "block", "op"],
        default="block",
        help="how much to show (default: block)",
    )
    draw.add_argument(
        "--dpi",
        type=int,
        metavar="N",
        help="resolution of a .png in dots per inch (default 96, from 24 to 600); "
        "an error with .svg, .pdf and .dot, which have no pixels",
    )
    spec_options(draw)
    from .train_cli import add_train_parser

    add_train_parser(commands)
    from .format_cli import add_fmt_parser

    add_fmt_parser(commands)
    commands.add_parser("list", help="list the bundled specs")
    lsp = commands.add_parser("lsp", help="the language server for editors, on stdin and stdout (docs/lsp.md)")
    lsp.add_argument("--stdio", action="store_true", help="accepted and ignored: stdio is the only transport")
    lsp.add_argument("--log-file", metavar="PATH", help="write the server's log to PATH")
    return parser


def _version() -> str:
    from .version import __version__

    return __version__


def _load(spec: str, args: argparse.Namespace, warn: bool = False):
    """The checked network; with `warn`, its warnings go to stderr (the text output of a command)."""
    from .pipeline import load

    net = load(expand(spec), network=args.network, input_shape=args.input_shape, **dict(args.overrides))
    if warn:
        _print_warnings(net)
    return net


def _print_warnings(net) -> None:
    if net.warnings:
        from .errors import render

        print("\n\n".join(render(w, net.sources) for w in net.warnings) + "\n", file=sys.stderr)


def cmd_check(args: argparse.Namespace) -> int:
    status = EXIT_OK
    findings, results = [], []
    for spec in args.specs:
        try:
            net = _load(spec, args)
        except SpecError as exc:
            if args.libraries and _is_library(exc):
                results.append({"spec": spec, "ok": True, "library": True})
                if args.format == "text":
                    print(f"ok {spec}: a file of blocks")
                continue
            if args.format == "text":
                print(exc.render(), file=sys.stderr)
            else:
                from .formats import findings_of

                found = findings_of(spec, exc.diagnostics, exc.sources)
                findings += found
                results.append({"spec": spec, "ok": False, "errors": len(found)})
            status = max(status, EXIT_SPEC)
            continue
        shape = lambda s: "x".join(map(str, s))  # noqa: E731
        results.append(
            {
                "spec": spec,
                "ok": True,
                "network": net.name,
                "input": list(net.input_shape),
                "output": list(net.output_shape),
                **({"outputs": [o.to_json() for o in net.outputs]} if net.output_form != "tensor" else {}),
                "params": net.params,
                "macs": net.macs,
                "warnings": len(net.warnings),
            }
        )
        if args.format == "text":
            print(
                f"ok {net.name}: {shape(net.input_shape)} -> {show_outputs(net.outputs, net.output_shape)}, "
                f"{net.params:,} params, {net.macs:,} MACs ({format_count(net.macs)})"
            )
            _print_warnings(net)
        else:
            from .formats import findings_of

            findings += findings_of(spec, list(net.warnings), net.sources)
    if args.format != "text":
        print(_formatted(args.format, findings, results))
    return status


def _is_library(exc: SpecError) -> bool:
    """The one error is "this file defines no network": it parsed, and its `use`s were found."""
    return [d.code for d in exc.diagnostics] == ["E0207"] and exc.diagnostics[
        0
    ].message == "this file defines no network"


def _formatted(kind: str, findings: list, results: list[dict]) -> str:
    from . import formats

    if kind == "json":
        return formats.to_json(findings, results)
    if kind == "sarif":
        return formats.to_sarif(findings, _version())
    return formats.to_github(findings)


def cmd_verify(args: argparse.Namespace) -> int:
    from .verify_cli import run_verify

    return run_verify(args, _formatted)


def cmd_summary(args: argparse.Namespace) -> int:
    sizes_range = _size_range(args.input_sizes) if args.input_sizes is not None else None  # "" is a mistake
    net = _load(args.spec, args, warn=not args.json)
    sizes = None
    if sizes_range is not None:
        from .input_sizes import input_sizes

        sizes = input_sizes(net, *sizes_range)  # a vector network: a usage error that says so
    if args.json:
        data = net.to_json()
        if sizes is not None:
            data["input_sizes"] = sizes.to_json()
        print(json.dumps(data, indent=2))
        return EXIT_OK
    from .report import print_summary

    print_summary(net)
    if sizes is not None:
        print("\n".join(sizes.lines()))
    return EXIT_OK


def _size_range(text: str) -> tuple[int, int]:
    """`LO..HI` for --input-sizes; the digits are counted before int() reads them (it refuses 4,300)."""
    match = re.fullmatch(r"(\d{1,7})\.\.(\d{1,7})", text.strip())
    if match is None or not 1 <= int(match[1]) <= int(match[2]) <= 1_000_000:
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise UsageError(f"--input-sizes: expected LO..HI with 1 <= LO <= HI <= 1,000,000, not {shown!r}")
    return int(match[1]), int(match[2])


def _default_output(name: str, force: bool) -> str:
    """A name the user did not give never replaces a file silently: `-o` names it, or `--force` allows it."""
    path = check_destination(name, "-o")
    assert path is not None  # None only for no path
    if os.path.lexists(path) and not force:
        raise UsageError(
            f"{path} exists, and this command did not write it: give --force to replace it, or -o to write elsewhere"
        )
    return path


def cmd_compile(args: argparse.Namespace) -> int:
    from .errors import Diagnostic

    # Everything that can be checked without building the model is checked first: building and
    # exporting resnet50 takes seconds, and a mistyped -o or --weights should not cost them.
    out = check_destination(args.output, "-o")
    if args.weights is not None and not os.path.isfile(args.weights):
        raise UsageError(f"--weights {args.weights}: no such file")
    try:
        import torch  # noqa: F401  (only to fail early with the fix, if PyTorch is missing)
    except ImportError:
        raise UsageError("resdsl compile needs PyTorch: pip install 'resdsl[torch]'") from None
    from .backend.export import EMITS, EXAMPLE_BATCH, emit, require_packages

    require_packages(args.emit)
    net = _load(args.spec, args, warn=True)
    if args.emit == "python":  # before the summary: a network the ejector cannot write is refused at once
        from .backend.eject import refuse_points

        refuse_points(net)
    if net.params > args.max_params:
        raise SpecError(
            [
                Diagnostic(
                    "E0505",
                    f"`{net.name}` has {net.params:,} parameters, more than --max-params {args.max_params:,}",
                    net.span,
                    help="raise --max-params if this is intended",
                )
            ],
            net.sources,
        )
    from .memory import check_memory, physical_memory, show_bytes

    limit = args.max_memory or physical_memory()
    check_memory(
        net,
        EXAMPLE_BATCH,
        training=False,
        limit=limit,
        where=f"--max-memory {show_bytes(args.max_memory)}"
        if args.max_memory
        else f"the {show_bytes(limit or 0)} of memory of this machine",
    )
    if out is None:
        out = _default_output(f"{net.name}{EMITS[args.emit]}", args.force)
    from .backend.weights import load_checked, read_state_dict

    state = read_state_dict(args.weights) if args.weights else None  # an unreadable file: before the table
    from .report import print_summary

    print_summary(net)
    model = net.to_torch()
    if args.weights:
        load_checked(net, model, args.weights, state)
        print(f"loaded {args.weights}: every tensor matches the spec")
    if args.deploy:
        from .backend.deploy import TOLERANCE, deploy
        from .deploy_plan import plan_deploy

        plan = plan_deploy(net)
        tolerance = TOLERANCE if args.deploy_tolerance is None else args.deploy_tolerance
        model, proof = deploy(plan, model, tolerance)  # E0603 beyond the tolerance: nothing is written
        print("\n".join(plan.lines() + [proof.line()]))
        net = plan.deployed
    elif args.deploy_tolerance is not None:
        raise UsageError("--deploy-tolerance needs --deploy")
    emit(net, model, args.emit, out, deployed=bool(args.deploy))
    print(f"wrote {out} ({args.emit}{', deployed' if args.deploy else ''})")
    return EXIT_OK


def cmd_draw(args: argparse.Namespace) -> int:
    args.output = check_destination(args.output, "-o")  # before any work: empty, missing or read-only
    net = _load(args.spec, args, warn=True)
    from .draw import render

    out = args.output or _default_output(f"{net.name}-{args.level}.svg", args.force)
    fmt = render(net, out, args.level, dpi=args.dpi)
    print(f"wrote {out} ({fmt}, {args.level} level)")
    return EXIT_OK


def cmd_train(args: argparse.Namespace) -> int:
    from .train_cli import run_train

    return run_train(args)


def cmd_fmt(args: argparse.Namespace) -> int:
    from .format_cli import run_fmt

    return run_fmt(args)


def cmd_list(args: argparse.Namespace) -> int:
    for name in bundled_networks():
        print(name)
    return EXIT_OK


def cmd_lsp(args: argparse.Namespace) -> int:
    from .lsp.server import serve_stdio

    return serve_stdio(args.log_file)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        handler = {
            "check": cmd_check,
            "verify": cmd_verify,
            "summary": cmd_summary,
            "compile": cmd_compile,
            "draw": cmd_draw,
            "train": cmd_train,
            "fmt": cmd_fmt,
            "list": cmd_list,
            "lsp": cmd_lsp,
        }[args.command]
        return handler(args)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0) if isinstance(exc.code, int) else EXIT_USAGE
    except SpecError as exc:  # located errors in a spec or a checkpoint
        print(exc.render(), file=sys.stderr)
        return EXIT_SPEC
    except RunError as exc:  # bad data, device or run directory
        print(f"resdsl: error: {exc}", file=sys.stderr)
        return EXIT_SPEC
    except UsageError as exc:
        print(f"resdsl: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except OSError as exc:  # a read or write outside files.write_atomically: one line, never a traceback
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"resdsl: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_SPEC
    except MemoryError:  # the estimate (E0506) let through a run the allocator could not serve
        print("resdsl: error: out of memory (try a smaller --input or --batch-size)", file=sys.stderr)
        return EXIT_SPEC
