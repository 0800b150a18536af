# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
"""The Python package's version: the one place it is written. The build
backend (python/build_backend/attn_build.py) reads it from here; it follows
the compiler's (CMakeLists.txt's project VERSION, `attn-compile --version`)."""

__version__ = "0.1.0"
