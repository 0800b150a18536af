# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
"""The build backend of the attn Python package (PEP 517, PEP 660), with
the standard library only, so that `pip install ./python` works offline
with nothing to download:

    [build-system]
    requires = []
    build-backend = "attn_build"
    backend-path = ["build_backend"]

It builds a pure-Python wheel (py3-none-any) of the attn package's .py files
and the C source its native fast path compiles on first use (tests stay
out), an sdist, and an editable wheel whose .pth file puts this directory on
sys.path. Metadata (Metadata-Version 2.1) comes from
pyproject.toml's [project] table; the version from attn/_version.py.
Builds are reproducible: entries are sorted and dated $SOURCE_DATE_EPOCH
(default 1980-01-01).
"""

import base64
import gzip
import hashlib
import io
import json
import os
import re
import tarfile
import time
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "attn"
TAG = "py3-none-any"
# The [project] keys this backend turns into metadata; any other is an
# error rather than silently left out of the wheel.
_PROJECT_KEYS = {"name", "dynamic", "description", "license", "requires-python",
                 "dependencies", "classifiers", "optional-dependencies"}


# PEP 517 / PEP 660 hooks.

def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    return _write_dist_info(metadata_directory)


def prepare_metadata_for_build_editable(metadata_directory, config_settings=None):
    return _write_dist_info(metadata_directory)


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    files = {path: _read(path) for path in _package_files()}
    return _write_wheel(wheel_directory, files)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    name, version = _project()["name"], _version()
    return _write_wheel(wheel_directory, {f"__editable__.{name}-{version}.pth":
                                          (ROOT + "\n").encode()})


def build_sdist(sdist_directory, config_settings=None):
    name, version = _project()["name"], _version()
    base = f"{name}-{version}"
    files = {path: _read(path) for path in
             ["pyproject.toml", "build_backend/attn_build.py"] + _package_files()}
    files["PKG-INFO"] = _metadata().encode()
    license_path = _license()
    if license_path:
        files["LICENSE"] = _read(license_path)
    filename = base + ".tar.gz"
    with open(os.path.join(sdist_directory, filename), "wb") as f, \
            gzip.GzipFile(fileobj=f, mode="wb", mtime=_epoch()) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(files):
            info = tarfile.TarInfo(f"{base}/{path}")
            info.size, info.mtime, info.mode = len(files[path]), _epoch(), 0o644
            tar.addfile(info, io.BytesIO(files[path]))
    return filename


# The package and its metadata.

# What the package ships: its modules, and the C source of the native fast
# path (attn/_fastpath.c), which attn.native compiles on first use.
_SHIPPED = (".py", ".c")


def _package_files():
    """The package's .py and .c files, relative to ROOT, sorted
    ('/'-separated)."""
    found = []
    for directory, subdirs, names in os.walk(os.path.join(ROOT, PACKAGE)):
        subdirs[:] = sorted(d for d in subdirs if d != "__pycache__")
        rel = os.path.relpath(directory, ROOT).replace(os.sep, "/")
        found += [f"{rel}/{n}" for n in names if n.endswith(_SHIPPED)]
    return sorted(found)


def _read(path):
    with open(os.path.join(ROOT, path), "rb") as f:
        return f.read()


def _version():
    text = _read(f"{PACKAGE}/_version.py").decode()
    match = re.search(r'^__version__ = "([0-9][0-9A-Za-z.+-]*)"$', text, re.M)
    if not match:
        raise ValueError(f'{PACKAGE}/_version.py must set __version__ = "X.Y.Z"')
    return match.group(1)


def _project():
    project = _toml(_read("pyproject.toml").decode())["project"]
    unknown = set(project) - _PROJECT_KEYS
    if unknown:
        raise ValueError(f"pyproject.toml: [project] keys this backend does not handle: "
                         f"{', '.join(sorted(unknown))} (build_backend/attn_build.py)")
    if project.get("dynamic") != ["version"]:
        raise ValueError('pyproject.toml: [project] dynamic must be ["version"]')
    return project


def _license():
    """The license file: this directory's (in an sdist), else the
    repository's (in a checkout); None if neither exists."""
    for path in ("LICENSE", os.path.join(os.pardir, "LICENSE")):
        if os.path.isfile(os.path.join(ROOT, path)):
            return path
    return None


def _metadata():
    p = _project()
    lines = ["Metadata-Version: 2.1", f"Name: {p['name']}", f"Version: {_version()}"]
    if "description" in p:
        lines.append(f"Summary: {p['description']}")
    if "license" in p:
        lines.append(f"License: {p['license']['text']}")
    lines += [f"Classifier: {c}" for c in p.get("classifiers", [])]
    if "requires-python" in p:
        lines.append(f"Requires-Python: {p['requires-python']}")
    lines += [f"Requires-Dist: {d}" for d in p.get("dependencies", [])]
    for extra, deps in p.get("optional-dependencies", {}).items():
        lines.append(f"Provides-Extra: {extra}")
        lines += [f'Requires-Dist: {d}; extra == "{extra}"' for d in deps]
    return "\n".join(lines) + "\n"


def _dist_info_files():
    files = {"METADATA": _metadata(),
             "WHEEL": ("Wheel-Version: 1.0\nGenerator: attn_build\nRoot-Is-Purelib: true\n"
                       f"Tag: {TAG}\n"),
             "top_level.txt": PACKAGE + "\n"}
    files = {name: text.encode() for name, text in files.items()}
    license_path = _license()
    if license_path:
        files["LICENSE"] = _read(license_path)
    return files


def _dist_info_name():
    return f"{_project()['name']}-{_version()}.dist-info"


def _write_dist_info(metadata_directory):
    name = _dist_info_name()
    os.makedirs(os.path.join(metadata_directory, name), exist_ok=True)
    for file, data in _dist_info_files().items():
        with open(os.path.join(metadata_directory, name, file), "wb") as f:
            f.write(data)
    return name


# Archives.

def _epoch():
    """Archive timestamps: $SOURCE_DATE_EPOCH, else 1980-01-01 (the
    earliest a zip file can hold)."""
    return max(int(os.environ.get("SOURCE_DATE_EPOCH", 0)), 315532800)


def _write_wheel(wheel_directory, files):
    """A wheel of `files` (archive path -> bytes) and the dist-info, its
    RECORD (sha256 of every file) last."""
    dist_info = _dist_info_name()
    files = dict(files)
    files.update({f"{dist_info}/{name}": data for name, data in _dist_info_files().items()})
    record = [f"{path},sha256={_digest(data)},{len(data)}" for path, data in files.items()]
    files[f"{dist_info}/RECORD"] = ("\n".join(record + [f"{dist_info}/RECORD,,"]) + "\n").encode()
    filename = f"{_project()['name']}-{_version()}-{TAG}.whl"
    date = time.gmtime(_epoch())[:6]
    with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w",
                         zipfile.ZIP_DEFLATED) as wheel:
        for path, data in files.items():
            info = zipfile.ZipInfo(path, date)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            wheel.writestr(info, data)
    return filename


def _digest(data):
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


# pyproject.toml.

def _toml(text):
    """pyproject.toml as a dict: tomllib where Python has it (3.11+), else
    _toml_subset."""
    try:
        import tomllib
    except ImportError:
        return _toml_subset(text)
    return tomllib.loads(text)


_TOKEN = re.compile(r'[ \t\r]*(?:(#[^\n]*)|("(?:[^"\\\n]|\\.)*")|([A-Za-z0-9_.+-]+)|([\[\]{}=,\n]))')


def _toml_subset(text):
    """The TOML of this directory's pyproject.toml, for Pythons without
    tomllib: [table] headers (dotted), and key = value with basic strings,
    integers, booleans, arrays (over several lines too) and inline tables;
    comments. Anything else is a ValueError. tests/test_packaging.py checks
    it against tomllib."""
    tokens, pos = [], 0
    while pos < len(text.rstrip()):
        m = _TOKEN.match(text, pos)
        if not m:
            raise ValueError(f"pyproject.toml: cannot read {text[pos:pos + 20]!r}")
        pos = m.end()
        if not m.group(1):
            tokens.append(m.group(2) or m.group(3) or m.group(4))
    tokens.append("\n")
    data, table, i = {}, None, 0

    def value(i):
        t = tokens[i]
        if t.startswith('"'):
            return json.loads(t), i + 1
        if t in ("[", "{"):
            close, items, i = "]" if t == "[" else "}", [], i + 1
            while True:
                while tokens[i] == "\n":
                    i += 1
                if tokens[i] == close:
                    break
                if t == "{":
                    key, i = tokens[i].strip('"'), _expect(tokens, i + 1, "=")
                    item, i = value(i)
                    items.append((key, item))
                else:
                    item, i = value(i)
                    items.append(item)
                while tokens[i] == "\n":
                    i += 1
                if tokens[i] == ",":
                    i += 1
            return (dict(items) if t == "{" else items), i + 1
        if t in ("true", "false"):
            return t == "true", i + 1
        if re.fullmatch(r"[+-]?[0-9]+", t):
            return int(t), i + 1
        raise ValueError(f"pyproject.toml: unsupported value {t!r}")

    while i < len(tokens):
        if tokens[i] == "\n":
            i += 1
        elif tokens[i] == "[":
            table = data
            for part in tokens[i + 1].split("."):
                table = table.setdefault(part, {})
            i = _expect(tokens, _expect(tokens, i + 2, "]"), "\n")
        else:
            if table is None:
                table = data
            key = tokens[i].strip('"')
            item, i = value(_expect(tokens, i + 1, "="))
            table[key] = item
            i = _expect(tokens, i, "\n")
    return data


def _expect(tokens, i, token):
    if tokens[i] != token:
        raise ValueError(f"pyproject.toml: expected {token!r}, found {tokens[i]!r}")
    return i + 1
