"""Names a spec may not give a module: they would clash in the compiled PyTorch module.

Every name the elaborator hands out (a label, a group, a stage, a block called
without a label) becomes an attribute of a torch.nn.Module, and of the ejected
Python source. A submodule called `forward`, `train`, `training` or `to`
replaces the method or flag of that name, and `class` or `lambda` cannot be
written in Python at all, so `check` refuses them with a located E0210 rather
than letting `compile` crash. The list is written out here (this module is
imported by `check`, which never imports torch); tests/test_elaborate.py checks
that it still covers torch's own attributes.
"""

from __future__ import annotations

import keyword

# Public attributes of torch.nn.Module and torch.fx.GraphModule (torch 2.14), and of resdsl's containers.
TORCH_ATTRIBUTES = frozenset(
    """
T_destination add_module add_submodule apply bfloat16 buffers call_super_init children code compile cpu
cuda delete_all_unused_submodules delete_submodule double dump_patches eval extra_repr float forward
get_buffer get_extra_state get_parameter get_submodule graph half ipu load_state_dict meta modules mtia
named_buffers named_children named_modules named_parameters parameters print_readable recompile
register_backward_hook register_buffer register_forward_hook register_forward_pre_hook
register_full_backward_hook register_full_backward_pre_hook register_load_state_dict_post_hook
register_load_state_dict_pre_hook register_module register_parameter register_state_dict_post_hook
register_state_dict_pre_hook requires_grad_ set_extra_state set_submodule shape_env share_memory
state_dict to to_empty to_folder train training type xpu zero_grad
description refusal
""".split()
)

# Python keywords cannot be attribute names in source (`self.class`); `self` would shadow the method's
# own parameter in the ejected code.
PYTHON_NAMES = frozenset(keyword.kwlist) | frozenset({"self"})


def reserved_reason(name: str) -> str | None:
    """Why `name` cannot name a module, or None if it can."""
    if name.startswith("_"):
        return "names starting with `_` are PyTorch's private attributes"
    if name in PYTHON_NAMES:
        return f"`{name}` is a Python keyword" if keyword.iskeyword(name) else f"`{name}` is Python's own name"
    if name in TORCH_ATTRIBUTES:
        return f"`{name}` is an attribute of every torch.nn.Module"
    return None


def quoted_name_problem(name: str) -> str | None:
    """Why the text of a quoted name (`"block1-0"`) cannot be one module name, or None.

    torch.nn.Module refuses an empty name and a dot (its path separator); torch.fx writes a name that is
    not an identifier into a Python string (`getattr(self.block1, "block1-0")`), where a backslash would
    start an escape and a control character cannot be written. Everything else PyTorch takes.
    """
    if not name:
        return "a module name cannot be empty"
    if "." in name:
        return "a dot separates the parts of a path, and one part cannot hold one"
    odd = next((ch for ch in name if ch == "\\" or not ch.isprintable()), None)
    if odd is not None:
        return f"{ascii(odd)} cannot be part of a module name (the compiled code writes it in a Python string)"
    return None
