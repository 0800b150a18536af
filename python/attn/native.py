# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
"""attn's native fast path (attn/_fastpath.c): compiled on first use with the
system C compiler, cached, and loaded as the module attn._fastpath.

    from attn import native
    module = native.load()      # the module, or None
    native.status()             # what was loaded, or why nothing was

attn.gpu loads it on the first call of attention/paged_attention and falls
back to its Python path, silently, where it cannot (attn.gpu.fastpath_status()
says why). The build:

    <attn.jit.cache_dir()>/native/<machine>-abi3-<hash>/_fastpath.abi3.so

cc (or $CC) compiles the source against Python's headers (Python.h, from the
python3-dev package on Debian and Ubuntu) with the limited API of Python 3.10
(Py_LIMITED_API, the stable ABI "abi3"): nothing is linked, and one build
loads into every CPython from 3.10 on. The hash covers the source and the
flags: an edited source is built anew. Processes that build at once take a
lock (flock) and the library appears by an atomic rename, as attn.jit does
for kernels.

Where there is no compiler or no Python.h (a GPU machine with only a runtime
Python), build the library elsewhere and point at it:

    python -m attn.native --build DIR          # writes DIR/_fastpath.abi3.so
    export ATTN_FASTPATH_SO=DIR/_fastpath.abi3.so

A library whose source hash differs from this attn's _fastpath.c is refused
(the fast path's interface may have changed). ATTN_FASTPATH=0 turns the fast
path off; ATTN_FASTPATH_LIMITED=0 builds against the full C API instead of the
limited one (vectorcall for method calls; the library is then specific to
this Python version).
"""

import argparse
import hashlib
import importlib.machinery
import importlib.util
import os
import platform
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_fastpath.c")
# The stable ABI the library is built for: Python 3.10 (METH_FASTCALL,
# Py_TPFLAGS_DISALLOW_INSTANTIATION and PyObject_CallNoArgs are in it from
# 3.10 on).
LIMITED_API = 0x030A0000
MIN_PYTHON = (3, 10)

_loaded = {}  # "module", "status": load()'s answer, once per process


class BuildError(RuntimeError):
    """The C compiler failed; the message has its command and output."""


def source_hash():
    """The first 16 hex digits of the SHA-256 of _fastpath.c: what a library
    is built from, compiled into it as SOURCE_HASH."""
    with open(SOURCE, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]


def limited():
    """Whether builds use the limited API (unless ATTN_FASTPATH_LIMITED=0)."""
    return os.environ.get("ATTN_FASTPATH_LIMITED", "1") != "0"


def library_name(limited_api=None):
    limited_api = limited() if limited_api is None else limited_api
    suffix = ".abi3.so" if limited_api else sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    return "_fastpath" + suffix


def find_compiler():
    """The C compiler command (a list): $CC split as a shell would, else cc,
    gcc or clang on PATH; None if there is none."""
    env = os.environ.get("CC")
    if env:
        words = shlex.split(env)
        return words if words and shutil.which(words[0]) else None
    for name in ("cc", "gcc", "clang"):
        path = shutil.which(name)
        if path:
            return [path]
    return None


def python_include():
    """The directory of Python.h for this interpreter, or None."""
    for key in ("include", "platinclude"):
        directory = sysconfig.get_paths().get(key)
        if directory and os.path.isfile(os.path.join(directory, "Python.h")):
            return directory
    return None


def _flags(limited_api, digest):
    flags = ["-O2", "-fPIC", "-shared", "-std=c11", "-fvisibility=hidden", "-Wall",
             f'-DATTN_FASTPATH_SOURCE_HASH="{digest}"']
    if limited_api:
        flags.append(f"-DPy_LIMITED_API=0x{LIMITED_API:08X}")
    return flags


def _cache_entry(limited_api):
    from . import jit

    digest = source_hash()
    abi = "abi3" if limited_api else sys.implementation.cache_tag + sys.abiflags
    key = hashlib.sha256(" ".join(_flags(limited_api, digest)).encode()).hexdigest()[:8]
    name = f"{platform.machine()}-{abi}-{digest}-{key}"
    return os.path.join(jit.cache_dir(), "native", name), library_name(limited_api)


def build(directory=None, limited_api=None):
    """Compiles _fastpath.c into `directory` (default: its cache entry) and
    returns the library's path; a library already there is kept. Raises
    BuildError (the compiler's output) and LookupError (no compiler, no
    Python.h) naming what is missing."""
    from . import jit

    limited_api = limited() if limited_api is None else limited_api
    compiler = find_compiler()
    if compiler is None:
        raise LookupError("no C compiler (set CC, or install cc/gcc/clang)")
    include = python_include()
    if include is None:
        raise LookupError(f"no Python.h for Python {platform.python_version()} "
                          f"(install python3-dev, or build elsewhere: python -m attn.native "
                          f"--build DIR, then set ATTN_FASTPATH_SO)")
    if directory is None:
        directory, name = _cache_entry(limited_api)
    else:
        name = library_name(limited_api)
    path = os.path.join(directory, name)
    if os.path.isfile(path):  # libraries appear by rename only: this one is whole
        return path
    os.makedirs(directory, exist_ok=True)
    with jit._locked(path + ".lock"):
        if os.path.isfile(path):  # built while this process waited
            return path
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
        os.close(fd)
        command = compiler + _flags(limited_api, source_hash()) + [
            f"-I{include}", "-o", tmp, SOURCE]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=300)
            if done.returncode:
                raise BuildError(f"{shlex.join(command)} failed (exit {done.returncode}):\n"
                                 f"{done.stdout}{done.stderr}")
            os.rename(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return path


def _import(path):
    """Loads the library at `path` as attn._fastpath (not put in sys.modules:
    attn.gpu holds it)."""
    loader = importlib.machinery.ExtensionFileLoader("attn._fastpath", path)
    spec = importlib.util.spec_from_file_location("attn._fastpath", path, loader=loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def _load():
    """(module, status)."""
    if os.environ.get("ATTN_FASTPATH", "1") == "0":
        return None, "off (ATTN_FASTPATH=0)"
    if sys.version_info < MIN_PYTHON:
        return None, f"needs Python {'.'.join(map(str, MIN_PYTHON))} or later"
    if sys.implementation.name != "cpython":
        return None, f"needs CPython, not {sys.implementation.name}"
    prebuilt = os.environ.get("ATTN_FASTPATH_SO")
    try:
        path = prebuilt or build()
    except (LookupError, BuildError, OSError, subprocess.SubprocessError) as e:
        return None, f"not built: {e}"
    try:
        module = _import(path)
    except (ImportError, OSError) as e:
        return None, f"{path} does not load: {e}"
    if module.SOURCE_HASH != source_hash():
        return None, (f"{path} was built from another _fastpath.c (source {module.SOURCE_HASH}, "
                      f"this attn's {source_hash()}): rebuild it with python -m attn.native --build")
    api = "limited API" if module.LIMITED_API else "full API"
    return module, f"{path} ({api})"


def load():
    """The attn._fastpath module, built and loaded on the first call; None
    where it cannot be (status() says why). The answer is kept for the
    process."""
    if "status" not in _loaded:
        _loaded["module"], _loaded["status"] = _load()
    return _loaded["module"]


def status():
    """What load() loaded ("<path> (limited API)"), or why it loaded
    nothing; "not loaded yet" before the first load()."""
    return _loaded.get("status", "not loaded yet")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", metavar="DIR", help="build the library into DIR and print its path")
    ap.add_argument("--full-api", action="store_true",
                    help="build against the full C API (this Python version only)")
    args = ap.parse_args(argv)
    if args.build:
        print(build(args.build, limited_api=not args.full_api))
        return
    load()
    print(status())


if __name__ == "__main__":
    main()
