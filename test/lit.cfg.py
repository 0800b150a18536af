# -*- Python -*-
# lit configuration for the attn regression tests (check-attn).

import os
import shutil
import subprocess

import lit.formats
from lit.llvm import llvm_config
from lit.llvm.subst import ToolSubst

config.name = "ATTN"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test", ".py"]
config.excludes = ["lit.cfg.py", "lit.site.cfg.py", "Inputs", "CMakeLists.txt"]

config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.attn_obj_root, "test")

config.substitutions.append(("%PATH%", config.environment["PATH"]))
config.substitutions.append(("%shlibext", config.llvm_shlib_ext))
config.substitutions.append(("%attn_src_root", config.attn_src_root))
config.substitutions.append(("%attn_obj_root", config.attn_obj_root))
config.substitutions.append(("%llvm_tools_dir", config.llvm_tools_dir))
config.substitutions.append(("%llvm_lib_dir", config.llvm_lib_dir))
config.substitutions.append(("%cxx", config.cxx))
config.substitutions.append(("%cc", config.cc))
config.substitutions.append(
    ("%attn_plugin", os.path.join(config.attn_lib_dir, "AttnPlugin" + config.llvm_shlib_ext))
)

llvm_config.with_system_environment(
    ["HOME", "INCLUDE", "LIB", "TMP", "TEMP", "CUDA_HOME", "CUDA_PATH", "CUDA_ROOT"])
llvm_config.use_default_substitutions()

# Tools: ours from the build tree, mlir-opt/FileCheck/not from LLVM's bin/.
tool_dirs = [config.attn_tools_dir, config.llvm_tools_dir]
tools = [
    "attn-opt",
    ToolSubst("mlir-opt", unresolved="fatal"),
    ToolSubst("%python", config.python_executable, unresolved="fatal"),
]
llvm_config.add_tool_substitutions(tools, tool_dirs)
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)
llvm_config.with_environment("PATH", config.attn_tools_dir, append_path=True)

# A Python with numpy and pytest for the reference-semantics tests (Debian's
# python3-numpy/python3-pytest live under the system python3, which may not be
# the first python3 on PATH).
def _python_with_numpy():
    for py in [config.python_executable, shutil.which("python3"), "/usr/bin/python3"]:
        if py and subprocess.run([py, "-c", "import numpy, pytest"],
                                 stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL).returncode == 0:
            return py
    return None

numpy_python = _python_with_numpy()
if numpy_python:
    config.available_features.add("numpy")
    config.substitutions.append(("%numpy_python", numpy_python))

# A Python that also has PyTorch with torch.distributed's gloo backend
# (Debian's python3-torch, installed by .ci/build): the context-parallel
# tests on CPU ranks (distributed.test).
def _python_with_torch():
    check = ("import numpy, pytest, torch, torch.distributed as d; "
             "assert d.is_available() and d.is_gloo_available()")
    for py in [config.python_executable, shutil.which("python3"), "/usr/bin/python3"]:
        if py and subprocess.run([py, "-c", check], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL).returncode == 0:
            return py
    return None

torch_python = _python_with_torch()
if torch_python:
    config.available_features.add("torch")
    config.substitutions.append(("%torch_python", torch_python))

# A CUDA toolkit with libdevice: needed to compile kernels to PTX (math
# functions link libdevice). Tests that emit PTX require it.
def _cuda_toolkit():
    for root in [os.environ.get(v) for v in ("CUDA_HOME", "CUDA_PATH", "CUDA_ROOT")] + ["/usr/local/cuda"]:
        if root and os.path.exists(os.path.join(root, "nvvm", "libdevice", "libdevice.10.bc")):
            return root
    return None

if _cuda_toolkit():
    config.available_features.add("cuda-toolkit")

# clang-format 22 (Debian's clang-format-22, installed by .ci/build): the
# format check of the sources (clang-format.test).
_clang_format = shutil.which("clang-format-22")
if _clang_format:
    config.available_features.add("clang-format")
    config.substitutions.append(("%clang_format", _clang_format))

# libattn_runtime.so, configured when cuda.h was found (it needs
# no GPU or driver to build or to load). test/Runtime requires it.
if config.attn_runtime_lib:
    config.available_features.add("attn-runtime")
    config.substitutions.append(("%attn_runtime_lib", config.attn_runtime_lib))
    config.substitutions.append(
        ("%attn_runtime_dir", os.path.dirname(config.attn_runtime_lib)))
