# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
"""attn: an MLIR compiler for attention -- Python side.

Pure Python, so the same code runs where only a GPU and torch are present.
`attn.reference` is the float64 definition of `attn.attention` that every
execution test compares against. `attn.jit` compiles kernels on first use
into an on-disk cache; `python -m attn.bundles` compiles them ahead of time.

Importing attn needs neither torch nor NumPy: the modules that do import
them when used.
"""

from ._version import __version__

__all__ = ["__version__", "admitted_keys", "attention_reference"]


def __getattr__(name):
    # The reference needs NumPy: imported on first use (PEP 562), so that
    # `import attn` and the compile tools work without it.
    if name in ("admitted_keys", "attention_reference"):
        from . import reference
        return getattr(reference, name)
    raise AttributeError(f"module 'attn' has no attribute {name!r}")
