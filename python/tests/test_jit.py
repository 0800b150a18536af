# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
"""attn.jit: compile on first use into an on-disk cache. Most tests run a
stand-in attn-compile (a Python script that writes a bundle for the spec on
its stdin and records each run); one runs the real compiler ($ATTN_COMPILE
or a checkout's build/bin/attn-compile) when there is one. No GPU, torch or
NumPy needed."""

import concurrent.futures
import json
import multiprocessing
import os
import shlex
import subprocess
import sys

import pytest

PYTHON_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, PYTHON_DIR)
from attn import bundles, jit  # noqa: E402

VARIANT = {"dtype": "bf16", "head_dim": 128, "mask": "causal", "scale": 0.08838834764831845}
NSA = {"op": "nsa", "dtype": "bf16", "head_dim": 128, "q_heads": 64, "kv_heads": 4,
       "cmp_block": 32, "cmp_stride": 16, "sel_block": 64, "num_selected": 16,
       "initial_blocks": 1, "local_blocks": 2, "scale": 0.08838834764831845, "window": 512,
       "page_size": 64}

# The stand-in attn-compile. --version prints $FAKE_VERSION; a compile logs
# its arguments and spec to $FAKE_LOG, fails on dtype "bad", writes the
# bundle (PTX first), then sleeps $FAKE_DELAY seconds and, with $FAKE_CRASH,
# kills the process that ran it (a compile dying half way).
_FAKE = r'''#!PYTHON
import hashlib, json, os, signal, sys, time
args = sys.argv[1:]
if args == ["--version"]:
    print(os.environ.get("FAKE_VERSION", "attn version 0.1.0\n  LLVM version 22.1.8"))
    sys.exit(0)
spec = json.loads(sys.stdin.read())
with open(os.path.join(os.environ["FAKE_LOG"], f"{os.getpid()}-{time.monotonic_ns()}"), "w") as f:
    json.dump({"args": args, "spec": spec}, f)
if spec.get("dtype") == "bad":
    sys.stderr.write("attn-compile: bad kernel spec: 'dtype': unknown value 'bad'\n")
    sys.exit(1)
out = args[args.index("-o") + 1]
chip = next(a.split("=", 1)[1] for a in args if a.startswith("--chip="))
name = "attn_fake_" + hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
os.makedirs(out, exist_ok=True)
with open(os.path.join(out, name + ".ptx"), "w") as f:
    f.write(f".version 8.0\n.target {chip}\n.address_size 64\n.visible .entry {name}() {{ ret; }}\n")
time.sleep(float(os.environ.get("FAKE_DELAY", "0")))
if os.environ.get("FAKE_CRASH"):
    os.kill(os.getppid(), signal.SIGKILL)
    sys.exit(1)
with open(os.path.join(out, name + ".json"), "w") as f:
    json.dump({"entry": name, "chip": chip, "spec": spec, "ptx": name + ".ptx"}, f)
print(f"{out}/{name}.{{ptx,json}}")
'''


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """The stand-in as $ATTN_COMPILE, a fresh cache as $ATTN_CACHE_DIR;
    returns (tool path, a function giving the runs so far)."""
    tool = tmp_path / "bin" / "attn-compile"
    tool.parent.mkdir()
    tool.write_text(_FAKE.replace("PYTHON", sys.executable))
    tool.chmod(0o755)
    log = tmp_path / "log"
    log.mkdir()
    monkeypatch.setenv("ATTN_COMPILE", str(tool))
    monkeypatch.setenv("ATTN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("FAKE_LOG", str(log))
    for name in ("FAKE_DELAY", "FAKE_CRASH", "FAKE_VERSION"):
        monkeypatch.delenv(name, raising=False)

    def runs():
        return [json.loads((log / f).read_text()) for f in sorted(os.listdir(log))]
    return tool, runs


def _bundle_files(directory):
    return sorted(f for f in os.listdir(directory) if f.endswith((".ptx", ".json")))


def test_cache_dir(monkeypatch):
    monkeypatch.setenv("ATTN_CACHE_DIR", "/some/cache")
    assert jit.cache_dir() == "/some/cache"
    monkeypatch.delenv("ATTN_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", "/xdg")
    assert jit.cache_dir() == "/xdg/attn"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/xdg")  # not absolute: ignored
    monkeypatch.setenv("HOME", "/home/u")
    assert jit.cache_dir() == "/home/u/.cache/attn"


def test_find_compiler(fake, tmp_path, monkeypatch):
    tool, _ = fake
    assert jit.find_compiler() == str(tool)
    # A wrong ATTN_COMPILE is reported, not replaced by another compiler.
    monkeypatch.setenv("ATTN_COMPILE", str(tmp_path / "missing"))
    assert jit.find_compiler() is None
    monkeypatch.delenv("ATTN_COMPILE")
    monkeypatch.setenv("PATH", str(tool.parent))
    beside = tmp_path / "pkg" / "bin" / "attn-compile"
    monkeypatch.setattr(jit, "_beside_package", lambda: [str(beside)])
    assert jit.find_compiler() == str(tool)  # from PATH
    beside.parent.mkdir(parents=True)
    beside.write_text(tool.read_text())
    beside.chmod(0o755)
    assert jit.find_compiler() == str(beside)  # beside the package first
    monkeypatch.setattr(jit, "_beside_package", lambda: [])
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert jit.find_compiler() is None


def test_compiles_once_then_hits(fake):
    tool, runs = fake
    entry = jit.compile_variant(VARIANT)
    assert len(runs()) == 1
    assert runs()[0]["spec"] == bundles.spec_of(VARIANT)
    assert runs()[0]["args"][:2] == ["--spec", "-"]
    assert "--chip=sm_90a" in runs()[0]["args"] and "--kernel=auto" in runs()[0]["args"]
    names = _bundle_files(entry)
    assert len(names) == 2 and ".target sm_90a" in open(os.path.join(entry, names[1])).read()
    assert os.path.dirname(os.path.dirname(entry)) == os.path.join(
        os.environ["ATTN_CACHE_DIR"], jit.compiler_id(str(tool)))
    # The same variant, spelled otherwise (key order, keys outside the
    # schema): the same spec, the same entry, no compile.
    same = dict(reversed(list(VARIANT.items())), note="not part of the spec")
    assert jit.compile_variant(same) == entry
    assert len(runs()) == 1
    # Another process finds it too.
    out = subprocess.run([sys.executable, "-c", "import json, sys; from attn import jit; "
                          "print(jit.compile_variant(json.loads(sys.argv[1])))",
                          json.dumps(VARIANT)], cwd=PYTHON_DIR, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == entry and len(runs()) == 1
    listed = jit.entries()
    assert [e["path"] for e in listed] == [entry]
    assert listed[0]["specs"] == [bundles.spec_of(VARIANT)] and len(listed[0]["bundles"]) == 1


def test_key_changes(fake, monkeypatch):
    tool, runs = fake
    first = jit.compile_variant(VARIANT)
    others = [jit.compile_variant(VARIANT, chip="sm_80"),
              jit.compile_variant(dict(VARIANT, head_dim=64)),
              jit.compile_variant(VARIANT, kernel="mma"),
              jit.compile_variant(VARIANT, extra=["--block-q=64"])]
    assert others[0] == os.path.join(os.path.dirname(os.path.dirname(first)), "sm_80",
                                     os.path.basename(first))
    assert len({first, *others}) == 5 and len(runs()) == 5
    assert runs()[3]["args"][-1] == "--kernel=mma" and runs()[4]["args"][-1] == "--block-q=64"
    # A rebuilt compiler (other content) is another compiler.
    tool.write_text(tool.read_text() + "# rebuilt\n")
    rebuilt = jit.compile_variant(VARIANT)
    assert rebuilt != first and len(runs()) == 6
    assert os.path.basename(rebuilt) == os.path.basename(first)
    # So is one that reports another version (the LLVM it runs on, say).
    monkeypatch.setattr(jit, "_ids", {})
    monkeypatch.setenv("FAKE_VERSION", "attn version 0.1.0\n  LLVM version 22.1.9")
    assert jit.compile_variant(VARIANT) not in (first, rebuilt)
    assert len(runs()) == 7
    assert len(jit.entries()) == 7


def test_nsa_variant_is_all_its_kernels(fake):
    _, runs = fake
    entry = jit.compile_variant(NSA)
    specs = bundles.specs_of([NSA])
    assert len(specs) == 4  # the selection (with the selected branch) and three branches
    assert sorted(json.dumps(r["spec"], sort_keys=True) for r in runs()) == \
        sorted(json.dumps(s, sort_keys=True) for s in specs)
    assert len(_bundle_files(entry)) == 2 * len(specs)


def _compile(variant):
    return jit.compile_variant(variant)


def test_concurrent_processes_compile_once(fake, monkeypatch):
    _, runs = fake
    # The first compile holds the entry's lock for a second: the others
    # arrive meanwhile, wait, and find its entry.
    monkeypatch.setenv("FAKE_DELAY", "1")
    with multiprocessing.get_context("fork").Pool(4) as pool:
        entries = pool.map(_compile, [VARIANT] * 4)
    assert len(set(entries)) == 1 and len(runs()) == 1
    assert len(_bundle_files(entries[0])) == 2


def test_concurrent_threads_compile_once(fake, monkeypatch):
    _, runs = fake
    monkeypatch.setenv("FAKE_DELAY", "0.5")
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        entries = list(pool.map(_compile, [VARIANT] * 4))
    assert len(set(entries)) == 1 and len(runs()) == 1


def test_crash_mid_compile_leaves_no_entry(fake, monkeypatch):
    _, runs = fake
    monkeypatch.setenv("FAKE_CRASH", "1")
    child = multiprocessing.get_context("fork").Process(target=_compile, args=(VARIANT,))
    child.start()
    child.join(30)
    assert child.exitcode == -9
    assert jit.entries() == []
    chip_dir = os.path.join(os.environ["ATTN_CACHE_DIR"], jit.compiler_id(jit.find_compiler()),
                            "sm_90a")
    # The dead compile's half-written directory, the lock file, no entry.
    leftovers = sorted(os.listdir(chip_dir))
    assert len(leftovers) == 2 and leftovers[0].startswith(".") and ".tmp" in leftovers[0]
    assert leftovers[1].endswith(".lock")
    monkeypatch.delenv("FAKE_CRASH")
    entry = jit.compile_variant(VARIANT)
    assert len(runs()) == 2 and len(_bundle_files(entry)) == 2
    assert not [f for f in os.listdir(chip_dir) if ".tmp" in f]


def test_failing_compiler(fake):
    _, runs = fake
    with pytest.raises(jit.CompileError) as e:
        jit.compile_variant(dict(VARIANT, dtype="bad"))
    assert "unknown value 'bad'" in str(e.value) and "unknown value" in e.value.stderr
    assert json.dumps(bundles.spec_of(dict(VARIANT, dtype="bad"))) in str(e.value)
    assert isinstance(e.value, RuntimeError)
    chip_dir = os.path.dirname(jit.compile_variant(VARIANT))
    assert jit.entries() != [] and not [f for f in os.listdir(chip_dir) if ".tmp" in f]
    # Failures are not cached: the next call compiles again.
    with pytest.raises(jit.CompileError):
        jit.compile_variant(dict(VARIANT, dtype="bad"))
    assert len(runs()) == 3


def test_bad_input():
    with pytest.raises(ValueError, match="no kernel spec for op 'nope'"):
        jit.compile_variant({"op": "nope"})
    with pytest.raises(ValueError, match="not a chip name"):
        jit.compile_variant(VARIANT, chip="../sm_90a")


def test_no_compiler_names_the_variant_and_the_command(fake, tmp_path, monkeypatch):
    tool, runs = fake
    monkeypatch.setenv("ATTN_COMPILE", str(tmp_path / "missing"))
    with pytest.raises(jit.CompilerNotFound) as e:
        jit.compile_variant(VARIANT, chip="sm_80", kernel="mma", extra=["--block-q=64"])
    message = str(e.value)
    assert isinstance(e.value, LookupError)
    assert json.dumps(VARIANT, sort_keys=True) in message
    assert "ATTN_COMPILE" in message and "is not an executable file" in message
    command = next(line.strip() for line in message.splitlines()
                   if line.strip().startswith("python -m attn.bundles"))
    # The command compiles it (run here, with a compiler).
    argv = shlex.split(command)
    assert argv[-2:] == ["-o", "DIR"]
    out = tmp_path / "ahead"
    monkeypatch.setenv("ATTN_COMPILE", str(tool))
    done = subprocess.run([sys.executable] + argv[1:-1] + [str(out)], cwd=PYTHON_DIR,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert [r["spec"] for r in runs()] == [bundles.spec_of(VARIANT)]
    assert runs()[0]["args"][-3:] == ["--chip=sm_80", "--kernel=mma", "--block-q=64"]
    assert len(_bundle_files(out)) == 2


def test_list_and_clear(fake):
    jit.compile_variant(VARIANT)
    jit.compile_variant(NSA)
    run = lambda flag: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "attn.jit", flag], cwd=PYTHON_DIR, capture_output=True,
        text=True)
    listed = run("--list")
    assert listed.returncode == 0, listed.stderr
    assert "2 entries" in listed.stdout
    assert "auto attention, nsa, paged_attention: 4 kernels" in listed.stdout
    cleared = run("--clear")
    assert "removed 2 entries" in cleared.stdout
    assert not os.path.exists(os.environ["ATTN_CACHE_DIR"])
    assert jit.entries() == []


def _real_compiler():
    tool = os.environ.get("ATTN_COMPILE") or jit.find_compiler()
    return tool if tool and os.access(tool, os.X_OK) else None


@pytest.mark.skipif(_real_compiler() is None,
                    reason="no attn-compile (set ATTN_COMPILE or build build/bin/attn-compile)")
def test_real_compiler(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTN_COMPILE", _real_compiler())
    monkeypatch.setenv("ATTN_CACHE_DIR", str(tmp_path))
    variant = {"dtype": "bf16", "head_dim": 64, "mask": "causal", "scale": 0.125}
    entry = jit.compile_variant(variant)
    # The variant's kernel and its length alternative (causal d64 below
    # 1792 keys: docs/design-length-choice.md).
    manifests = sorted(f for f in os.listdir(entry) if f.endswith(".json"))
    assert len(manifests) == 2 and manifests[1].endswith("_q64_kv64_pSk0to1792.json"), manifests
    with open(os.path.join(entry, manifests[0])) as f:
        manifest = json.load(f)
    assert manifest["chip"] == "sm_90a" and manifest["kernel"] == "wgmma"
    with open(os.path.join(entry, manifest["ptx"])) as f:
        assert ".target sm_90a" in f.read()
    stamp = os.stat(os.path.join(entry, manifests[0])).st_mtime_ns
    assert jit.compile_variant(variant) == entry
    assert os.stat(os.path.join(entry, manifests[0])).st_mtime_ns == stamp
    # The launcher finds the kernel gpu.attention asks for in the entry.
    pytest.importorskip("numpy")
    from attn import gpu
    want = {"dtype": "bf16", "head_dim": 64, "value_head_dim": 64, "layout": "bhsd",
            "mask": "causal", "scale": 0.125, "softcap": None, "bias": False, "sinks": False,
            "lse": False}
    assert gpu._find(gpu.load_bundles(entry), want).manifest["entry"] == manifest["entry"]
