# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
"""Packaging: the in-tree build backend (python/build_backend/attn_build.py)
makes a correct wheel, sdist and editable wheel with no network, and pip
installs the package offline into a fresh venv, where attn, attn.jit and
attn.bundles import without NumPy or torch."""

import base64
import email.parser
import hashlib
import importlib.util
import os
import re
import subprocess
import sys
import tarfile
import zipfile

import pytest

PYTHON_DIR = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def _backend():
    spec = importlib.util.spec_from_file_location(
        "attn_build", os.path.join(PYTHON_DIR, "build_backend", "attn_build.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _version():
    text = open(os.path.join(PYTHON_DIR, "attn", "_version.py")).read()
    return re.search(r'__version__ = "(.+)"', text).group(1)


def _package_files():
    """The modules, and the fast path's C source (compiled on first use)."""
    return sorted(f"attn/{f}" for f in os.listdir(os.path.join(PYTHON_DIR, "attn"))
                  if f.endswith((".py", ".c")))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    name = _backend().build_wheel(str(out))
    return out / name


def test_hooks_need_nothing():
    backend = _backend()
    for hook in ("wheel", "sdist", "editable"):
        assert getattr(backend, f"get_requires_for_build_{hook}")() == []


def test_wheel_contents(wheel):
    version = _version()
    assert wheel.name == f"attn-{version}-py3-none-any.whl"
    dist_info = f"attn-{version}.dist-info"
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        # The package's modules, the dist-info; no tests, caches or others.
        assert sorted(n for n in names if not n.startswith(dist_info)) == _package_files()
        assert not [n for n in names if "tests/" in n or n.endswith(".pyc")]
        assert names[-1] == f"{dist_info}/RECORD"
        meta = email.parser.Parser().parsestr(z.read(f"{dist_info}/METADATA").decode())
        wheel_file = email.parser.Parser().parsestr(z.read(f"{dist_info}/WHEEL").decode())
        top_level = z.read(f"{dist_info}/top_level.txt").decode()
        record = z.read(f"{dist_info}/RECORD").decode().splitlines()
        contents = {n: z.read(n) for n in names}
    assert (meta["Metadata-Version"], meta["Name"], meta["Version"]) == ("2.1", "attn", version)
    assert meta["Requires-Python"] == ">=3.9"
    assert meta["License"] == "Apache-2.0 WITH LLVM-exception"
    assert sorted(meta.get_all("Provides-Extra")) == ["numpy", "torch"]
    # NumPy and torch only with extras: nothing is a hard requirement.
    requires = meta.get_all("Requires-Dist")
    assert requires and all(re.search(r'; extra == "(numpy|torch)"$', r) for r in requires)
    assert (wheel_file["Wheel-Version"], wheel_file["Root-Is-Purelib"], wheel_file["Tag"]) == \
        ("1.0", "true", "py3-none-any")
    assert top_level == "attn\n"
    # RECORD: every other file with its sha256 and size, itself unhashed.
    rows = dict(line.split(",", 1) for line in record)
    assert sorted(rows) == sorted(names)
    assert rows.pop(f"{dist_info}/RECORD") == ","
    for name, row in rows.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(contents[name]).digest())
        assert row == f"sha256={digest.rstrip(b'=').decode()},{len(contents[name])}", name


def test_wheel_is_reproducible(wheel, tmp_path):
    again = _backend().build_wheel(str(tmp_path))
    assert (tmp_path / again).read_bytes() == wheel.read_bytes()


def test_sdist_and_editable(tmp_path):
    backend = _backend()
    version = _version()
    sdist = backend.build_sdist(str(tmp_path))
    assert sdist == f"attn-{version}.tar.gz"
    with tarfile.open(tmp_path / sdist) as tar:
        names = tar.getnames()
    base = f"attn-{version}/"
    assert all(n.startswith(base) for n in names)
    names = {n[len(base):] for n in names}
    assert {"PKG-INFO", "pyproject.toml", "build_backend/attn_build.py"} <= names
    assert set(_package_files()) <= names and not [n for n in names if n.startswith("tests")]
    editable = tmp_path / "editable"
    editable.mkdir()
    with zipfile.ZipFile(editable / backend.build_editable(str(editable))) as z:
        pth = [n for n in z.namelist() if n.endswith(".pth")]
        assert len(pth) == 1 and z.read(pth[0]).decode() == PYTHON_DIR + "\n"
        assert not [n for n in z.namelist() if n.startswith("attn/")]


def test_toml_subset_reads_pyproject_as_tomllib_does():
    tomllib = pytest.importorskip("tomllib")
    text = open(os.path.join(PYTHON_DIR, "pyproject.toml")).read()
    assert _backend()._toml_subset(text) == tomllib.loads(text)
    with pytest.raises(ValueError, match="unsupported value"):
        _backend()._toml_subset("[project]\nversion = 1.5e3\n")


def test_version_is_the_compilers():
    cmake = os.path.join(PYTHON_DIR, "..", "CMakeLists.txt")
    if not os.path.exists(cmake):
        pytest.skip("not a source checkout")
    project = re.search(r"project\(attn VERSION ([0-9.]+)", open(cmake).read())
    assert project.group(1) == _version()


def _venv(path):
    """A fresh venv with pip (ensurepip's, offline) or a skip."""
    if importlib.util.find_spec("ensurepip") is None:
        pytest.skip("no ensurepip here (apt-get install python3-venv)")
    made = subprocess.run([sys.executable, "-m", "venv", str(path)], capture_output=True,
                          text=True)
    if made.returncode:
        pytest.skip(f"python -m venv failed: {made.stderr.strip()[-200:]}")
    return str(path / "bin" / "python")


def test_offline_pip_install(tmp_path):
    python = _venv(tmp_path / "venv")
    env = dict(os.environ, PIP_NO_CACHE_DIR="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.pop("PYTHONPATH", None)

    def run(*args, cwd=tmp_path):
        done = subprocess.run([python, *args], cwd=cwd, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout
    check = ("import importlib.util, attn, attn.jit, attn.bundles, attn.cudatime; "
             "print(attn.__version__, attn.__file__, importlib.util.find_spec('numpy') is None)")
    run("-m", "pip", "install", "--no-index", PYTHON_DIR)
    version, where, no_numpy = run("-c", check).split()
    assert version == _version() and no_numpy == "True"
    site = os.path.dirname(os.path.dirname(where))
    assert where.startswith(str(tmp_path)) and not os.path.exists(os.path.join(site, "tests"))
    assert "--variant JSON" in run("-m", "attn.bundles", "--help")
    run("-m", "pip", "uninstall", "-y", "attn")
    run("-m", "pip", "install", "--no-index", "-e", PYTHON_DIR)
    version, where, _ = run("-c", check).split()
    assert where == os.path.join(PYTHON_DIR, "attn", "__init__.py")
