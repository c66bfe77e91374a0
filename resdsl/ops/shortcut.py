"""`zeropad`: option A's parameter-free shortcut, inserted by the shape checker (never written in a spec)."""

from __future__ import annotations

from .base import ModuleCall, OpKind, Option, axis_text, per_axis


class ZeroPadOp(OpKind):
    """Subsample by the stride, add zero channels (split before and after, as the CIFAR reference code).
    Its output shape is the main path's: the shortcut plan gives it, not this op's arguments alone."""

    def shape(self, attrs, x):
        c, *sizes = x
        strides = per_axis(attrs["stride"], len(sizes), self.name, "stride")
        return (c + attrs["channels"], *(-(-size // s) for size, s in zip(sizes, strides)))

    def stride(self, attrs, x):
        return attrs["stride"]

    def label(self, attrs, axes: int = 2) -> str:
        return f"zero-pad, /{axis_text(attrs['stride'])}, +{attrs['channels']} ch" + (
            " after" if attrs["at_end"] else ""
        )

    def module(self, attrs, channels, rank, inplace) -> ModuleCall:
        return ModuleCall(
            "ZeroPadShortcut",
            (("stride", attrs["stride"]), ("channels", attrs["channels"]), ("at_end", attrs["at_end"])),
            positional=2,
            defaults=(("at_end", False),),
        )


KINDS = (
    ZeroPadOp(
        "zeropad",
        "option A's shortcut: subsample by the stride and pad zero channels",
        (),
        (
            Option("stride", minimum=1, per_axis=True),
            Option("channels", minimum=0),
            Option("at_end", default=False, type="bool"),  # all zeros after the input's channels (MONAI)
        ),
        aliasing=True,
        internal=True,
        fill="#fde0c5",
    ),
)
