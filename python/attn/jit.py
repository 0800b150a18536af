# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
"""Kernels compiled on first use, kept in an on-disk cache.

    from attn import gpu, jit
    bundles = jit.compile_variant({"dtype": "bf16", "head_dim": 128, "mask": "causal",
                                   "scale": 0.08838834764831845})
    out = gpu.attention(q, k, v, causal=True, bundles=bundles)

compile_variant runs attn-compile (find_compiler) on the variant's kernel
specs (attn.bundles.specs_of) the first time; every later call, in this
process or another, finds the bundles in the cache:

    <cache_dir()>/<compiler id>/<chip>/<key>/    the .ptx and .json bundles

cache_dir() is $ATTN_CACHE_DIR, else $XDG_CACHE_HOME/attn, else
~/.cache/attn. The compiler id names the attn-compile build (compiler_id:
its --version output, which includes LLVM's, and a hash of the binary), so
a rebuilt compiler never reads an older one's kernels. The key is a hash of
the specs (canonical JSON), the kernel body and the extra attn-compile
options; the entry's cache-key.txt holds them in full.

Processes and threads may ask for the same entry at once: each entry has a
lock file (flock), and is compiled into a temporary directory beside it
that is renamed into place once complete. An entry is therefore absent or
whole; a compile that dies leaves only its temporary directory, which the
next compile of that entry removes.

Where there is no compiler (a GPU machine without LLVM), CompilerNotFound
gives the command that compiles the variant ahead of time (attn.bundles).

    python -m attn.jit --list      the entries of the cache
    python -m attn.jit --clear     removes the cache
"""

import argparse
import contextlib
import fcntl
import glob
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile

from . import bundles
from .bundles import CompileError

__all__ = ["CompileError", "CompilerNotFound", "cache_dir", "clear", "compile_variant",
           "compiler_id", "entries", "find_compiler"]

# Where find_compiler looks, for messages.
_WHERE = ("set ATTN_COMPILE to its path, or put it on PATH (also looked for: "
                  "<attn package>/bin/attn-compile and a checkout's build/bin/attn-compile)")
# What an entry records about itself. Not a .json file: attn.gpu reads every
# .json file of a bundle directory as a manifest.
_KEY_FILE = "cache-key.txt"


class CompilerNotFound(LookupError):
    """No attn-compile to compile a variant with; the message says how to
    compile it ahead of time and how to point at a compiler."""


def find_compiler():
    """The attn-compile to run: $ATTN_COMPILE when set (None if that is not
    an executable file: a wrong setting is not silently replaced by another
    compiler), else <attn package>/bin/attn-compile (a package that ships
    it), else a source checkout's build/bin/attn-compile, else the one on
    PATH. None when there is none."""
    env = os.environ.get("ATTN_COMPILE")
    if env:
        return env if _executable(env) else None
    for path in _beside_package():
        if _executable(path):
            return path
    return shutil.which("attn-compile")


def _beside_package():
    here = os.path.dirname(os.path.abspath(__file__))
    return [os.path.join(here, "bin", "attn-compile"),
            os.path.normpath(os.path.join(here, os.pardir, os.pardir, "build", "bin",
                                          "attn-compile"))]


def _executable(path):
    return os.path.isfile(path) and os.access(path, os.X_OK)


def cache_dir():
    """$ATTN_CACHE_DIR, else $XDG_CACHE_HOME/attn, else ~/.cache/attn (a
    relative XDG_CACHE_HOME is ignored, as the XDG spec says)."""
    if os.environ.get("ATTN_CACHE_DIR"):
        return os.environ["ATTN_CACHE_DIR"]
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = xdg if xdg and os.path.isabs(xdg) else os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "attn")


# compiler_id's answers, per binary as it is on disk now (path, inode,
# size, modification time): a rebuilt compiler is asked again.
_ids = {}


def compiler_id(compiler):
    """The name of the attn-compile build at `compiler`: "attn-<version>-"
    and a hash of its --version output (attn's version and LLVM's, whose
    shared libraries it runs on) and of the binary's content. Identical
    builds get the same id on any machine. Computed once per process and
    binary."""
    st = os.stat(compiler)
    stamp = (os.path.realpath(compiler), st.st_ino, st.st_size, st.st_mtime_ns)
    if stamp not in _ids:
        out = subprocess.run([compiler, "--version"], capture_output=True, text=True)
        if out.returncode:
            raise RuntimeError(f"{compiler} --version failed (exit {out.returncode}):\n"
                               f"{out.stderr}")
        digest = hashlib.sha256(out.stdout.encode())
        with open(compiler, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        version = re.search(r"attn version ([0-9A-Za-z.+-]+)", out.stdout)
        _ids[stamp] = f"attn-{version.group(1) if version else 'unknown'}-{digest.hexdigest()[:16]}"
    return _ids[stamp]


def _canonical(x):
    return json.dumps(bundles._plain(x), sort_keys=True, separators=(",", ":"))


def _key(specs, kernel, extra):
    """What an entry is compiled from, besides the compiler and the chip
    (its directories), and the hash that names it."""
    key = {"specs": sorted((json.loads(_canonical(s)) for s in specs), key=_canonical),
           "kernel": kernel, "extra": list(extra)}
    return key, hashlib.sha256(_canonical(key).encode()).hexdigest()[:24]


def compile_variant(variant, chip="sm_90a", kernel="auto", extra=()):
    """The directory of the bundles of `variant` (a dict with the keys of a
    manifest's "variant" plus "op"; an NSA variant stands for the kernels
    of all its branches, bundles.nsa_variants) for `chip`, compiled with
    `attn-compile --kernel=<kernel> <extra...>` on the first call and read
    from the cache after. Pass it as attn.gpu's bundles=.

    ValueError for a variant with no kernel spec; CompilerNotFound without
    attn-compile; CompileError (its stderr, the spec) when it fails."""
    if not re.fullmatch(r"[A-Za-z0-9_]+", chip):
        raise ValueError(f"chip {chip!r} is not a chip name (e.g. sm_90a)")
    extra = [str(e) for e in extra]
    specs = bundles.specs_of([variant])
    compiler = find_compiler()
    if compiler is None:
        raise CompilerNotFound(_not_found(variant, chip, kernel, extra))
    key, name = _key(specs, kernel, extra)
    parent = os.path.join(cache_dir(), compiler_id(compiler), chip)
    entry = os.path.join(parent, name)
    if os.path.isdir(entry):  # entries appear by rename only: this one is whole
        return entry
    os.makedirs(parent, exist_ok=True)
    with _locked(entry + ".lock"):
        # Whoever held the lock before may have just compiled it.
        if not os.path.isdir(entry):
            _build(entry, dict(key, chip=chip, compiler=compiler), specs, chip, compiler,
                   kernel, extra)
    return entry


@contextlib.contextmanager
def _locked(path):
    """Holds an exclusive flock on `path` (created if missing). Each call
    opens the file anew, so threads of one process exclude each other too;
    the kernel drops the lock when its holder exits, even by a crash."""
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def _build(entry, key, specs, chip, compiler, kernel, extra):
    """Compiles `specs` into a temporary directory beside `entry` and renames
    it to `entry`. Called with the entry's lock held: temporary directories
    of this entry that exist now were left by compiles that died."""
    parent, name = os.path.split(entry)
    for stale in glob.glob(os.path.join(parent, f".{name}.tmp*")):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = tempfile.mkdtemp(prefix=f".{name}.tmp", dir=parent)
    try:
        bundles.compile_specs(specs, tmp, chip, compiler, kernel, extra)
        with open(os.path.join(tmp, _KEY_FILE), "w") as f:
            json.dump(key, f, indent=1, sort_keys=True)
        os.rename(tmp, entry)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _why_missing():
    """Why find_compiler() found none."""
    env = os.environ.get("ATTN_COMPILE")
    return f"ATTN_COMPILE={env} is not an executable file" if env else "no attn-compile found"


def _not_found(variant, chip, kernel, extra):
    options = [f"--chip={chip}"] + ([f"--kernel={kernel}"] if kernel != "auto" else [])
    options += [f"--compile-arg={e}" for e in extra]
    command = " ".join(["python -m attn.bundles", "--variant",
                        shlex.quote(json.dumps(bundles._plain(variant), sort_keys=True)),
                        *map(shlex.quote, options), "-o", "DIR"])
    return (f"{_why_missing()} to compile the variant "
            f"{json.dumps(bundles._plain(variant), sort_keys=True)}.\n"
            f"Compile it ahead of time where attn-compile is:\n    {command}\n"
            f"and pass bundles=DIR; or, to compile here, {_WHERE}.")


def entries(directory=None):
    """The cache's entries (of cache_dir() unless `directory`), oldest
    first: dicts of their key (specs, kernel, extra, chip, compiler) plus
    "path", "compiler_id" and "bundles" (the kernel names)."""
    root = directory or cache_dir()
    found = []
    for key_file in glob.glob(os.path.join(root, "*", "*", "*", _KEY_FILE)):
        path = os.path.dirname(key_file)
        with open(key_file) as f:
            entry = json.load(f)
        entry.update(path=path, compiler_id=os.path.basename(os.path.dirname(os.path.dirname(path))),
                     bundles=sorted(f[:-len(".ptx")] for f in os.listdir(path)
                                    if f.endswith(".ptx")))
        found.append((os.path.getmtime(key_file), entry))
    return [entry for _, entry in sorted(found, key=lambda e: e[0])]


def clear(directory=None):
    """Removes the cache (cache_dir() unless `directory`); returns how many
    entries it held. Not to be run while another process compiles into it."""
    root = directory or cache_dir()
    count = len(entries(root))
    shutil.rmtree(root, ignore_errors=True)
    return count


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    what = ap.add_mutually_exclusive_group(required=True)
    what.add_argument("--list", action="store_true", help="the cache's entries")
    what.add_argument("--clear", action="store_true", help="remove the cache")
    args = ap.parse_args(argv)
    root = cache_dir()
    if args.clear:
        print(f"removed {clear(root)} entries from {root}")
        return
    listed = entries(root)
    print(f"{root}: {len(listed)} entries")
    for e in listed:
        ops = ", ".join(sorted({s.get("op", "attention") for s in e["specs"]}))
        n = len(e["bundles"])
        print(f"  {os.path.relpath(e['path'], root)}  {e['kernel']} {ops}: "
              f"{n} kernel{'s' * (n != 1)} {' '.join(e['extra'])}".rstrip())


if __name__ == "__main__":
    main()
