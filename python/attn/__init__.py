# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
"""attn: an MLIR compiler for attention -- Python side.

Pure Python, so the same code runs where only a GPU and torch are present.
`attn.reference` is the float64 definition of `attn.attention` that every
execution test compares against.
"""

from .reference import admitted_keys, attention_reference

__all__ = ["admitted_keys", "attention_reference"]
