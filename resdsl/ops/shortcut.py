"""`zeropad`: option A's parameter-free shortcut, inserted by the shape checker (never written in a spec)."""

from __future__ import annotations

from .base import ModuleCall, OpKind, Option


class ZeroPadOp(OpKind):
    """Subsample by the stride, add zero channels (split before and after, as the CIFAR reference code).
    Its output shape is the main path's: the shortcut plan gives it, not this op's arguments alone."""

    def shape(self, attrs, x):
        if len(x) == 1:
            return (x[0] + attrs["channels"],)
        c, h, w = x
        s = attrs["stride"]
        return (c + attrs["channels"], -(-h // s), -(-w // s))

    def stride(self, attrs, x) -> int:
        return attrs["stride"]

    def label(self, attrs) -> str:
        return f"zero-pad, /{attrs['stride']}, +{attrs['channels']} ch"

    def module(self, attrs, channels, rank, inplace) -> ModuleCall:
        return ModuleCall(
            "ZeroPadShortcut", (("stride", attrs["stride"]), ("channels", attrs["channels"])), positional=2
        )


KINDS = (
    ZeroPadOp(
        "zeropad",
        "option A's shortcut: subsample by the stride and pad zero channels",
        (),
        (Option("stride", minimum=1), Option("channels", minimum=0)),
        aliasing=True,
        internal=True,
        fill="#fde0c5",
    ),
)
