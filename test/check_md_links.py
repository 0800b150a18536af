#!/usr/bin/env python3
"""Checks the relative links of a repository's Markdown files.

    check_md_links.py ROOT       # the git-tracked *.md files of ROOT
    check_md_links.py --self-test

Every link `[text](path)`, `[text](path#anchor)`, image `![alt](path)` and
reference definition `[label]: path` of every Markdown file must name a file
or directory that exists inside ROOT; an anchor into a Markdown file (or `#anchor`
alone, into the file itself) must name one of its headings, slugged as GitHub
does. Links with a scheme (https:, mailto:, ...) are not checked; neither are
anchors into other files (GitHub's `#L12` line anchors). Links inside code
spans and fenced code blocks are text, not links. Prints `file:line: broken
link: ...` for each broken link and exits 1 if there is one.

Checked only as far as plain Markdown goes: links split across lines within
a paragraph are found, HTML `<a href>` is not.

The --self-test run is this script's own lit test (the repository's check is
md-links.test):
RUN: %python %s --self-test
"""

import html
import os
import re
import subprocess
import sys
import tempfile
import unicodedata
import urllib.parse

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
CODE_SPAN = re.compile(r"(`+)(.+?)(?<!`)\1(?!`)", re.S)
# [text](destination "title"): text with one level of nested brackets; the
# destination in <...> or without spaces, balanced parentheses allowed.
INLINE = re.compile(
    r"\[((?:[^\[\]\\]|\\.|\[(?:[^\[\]\\]|\\.)*\])*)\]"
    r"\(\s*(<[^<>\n]*>|(?:[^\s()\\]|\\.|\((?:[^\s()\\]|\\.)*\))*)"
    r"(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^()]*\)))?\s*\)")
REFDEF = re.compile(r"^ {0,3}\[((?:[^\[\]\\]|\\.)+)\]:[ \t]*(<[^<>\n]*>|\S+)")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
HTML_ID = re.compile(r"<[A-Za-z][^>]*?\s(?:id|name)\s*=\s*[\"']([^\"']+)[\"']")


def blank_code_spans(text):
    """`text` with each code span's characters replaced by spaces (newlines
    kept), so that offsets and line numbers stay valid."""
    return CODE_SPAN.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)


def heading_text(raw):
    """The text GitHub renders for a heading's source: code spans keep their
    content, links and images their text, HTML tags and emphasis go."""
    parts = []
    pos = 0
    for m in CODE_SPAN.finditer(raw):
        parts.append((False, raw[pos:m.start()]))
        parts.append((True, m.group(2).strip() if m.group(2).strip() else m.group(2)))
        pos = m.end()
    parts.append((False, raw[pos:]))
    out = []
    for code, s in parts:
        if not code:
            s = re.sub(r"!?\[((?:[^\[\]]|\[[^\[\]]*\])*)\](?:\([^)]*\)|\[[^\]]*\])?", r"\1", s)
            s = re.sub(r"<[^>]+>", "", s)
            s = re.sub(r"(?<![\w\\])[*_]+|[*_]+(?![\w])", "", s)  # emphasis delimiters
            s = re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", s)  # backslash escapes
            s = html.unescape(s)
        out.append(s)
    return "".join(out)


def slug(text):
    """GitHub's heading anchor (github-slugger): lower case, characters other
    than letters, marks, numbers, connector punctuation (_), spaces and
    hyphens dropped, spaces made hyphens."""
    kept = [c for c in text.strip().lower()
            if c in " -" or unicodedata.category(c)[0] in "LMN" or unicodedata.category(c) == "Pc"]
    return "".join(kept).replace(" ", "-")


def blocks(lines):
    """(first line number, lines) of each run of non-blank lines outside
    fenced code blocks."""
    fence, start, block = None, 0, []
    for n, line in enumerate(lines, 1):
        m = FENCE.match(line)
        if fence:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) \
                    and not line.strip().strip(fence[0]):
                fence = None
            continue
        if m and not (m.group(1)[0] == "`" and "`" in line[m.end():]):
            if block:
                yield start, block
            fence, block = m.group(1), []
            continue
        if line.strip():
            if not block:
                start = n
            block.append(line)
        elif block:
            yield start, block
            block = []
    if block:
        yield start, block


_anchors = {}


def anchors(path):
    """The anchors of the Markdown file `path`: its headings' slugs (repeats
    numbered -1, -2, ... as GitHub does) and explicit HTML ids and names."""
    if path in _anchors:
        return _anchors[path]
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().splitlines()
    found, counts = set(), {}

    def add(text):
        base = slug(heading_text(text))
        s, n = base, counts.get(base, 0)
        while s in found:
            n += 1
            s = f"{base}-{n}"
        counts[base] = n
        found.add(s)

    for _, block in blocks(lines):
        paragraph = 0  # where the paragraph a setext underline ends began
        for i, line in enumerate(block):
            m = ATX.match(line)
            if m:
                add(m.group(2) or "")
                paragraph = i + 1
            elif i > paragraph and SETEXT.match(line):
                add(" ".join(l.strip() for l in block[paragraph:i]))
                paragraph = i + 1
            found.update(HTML_ID.findall(line))
    _anchors[path] = found
    return found


def links(path):
    """(line, destination) of each link of the Markdown file `path`."""
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().splitlines()
    for start, block in blocks(lines):
        text = blank_code_spans("\n".join(block))
        for m in INLINE.finditer(text):
            yield start + text.count("\n", 0, m.start()), m.group(2)
        for i, line in enumerate(text.split("\n")):
            m = REFDEF.match(line)
            if m:
                yield start + i, m.group(2)


def check_link(root, source, dest):
    """Why the link `dest` of the file `source` is broken, or None."""
    if dest.startswith("<") and dest.endswith(">"):
        dest = dest[1:-1]
    if SCHEME.match(dest):
        return None  # https:, mailto:, ...: not a file of the repository
    if not dest:
        return "empty destination"
    path, _, anchor = dest.partition("#")
    path = urllib.parse.unquote(path.split("?", 1)[0])
    anchor = urllib.parse.unquote(anchor)
    if not path:
        target = source
    elif path.startswith("/"):  # GitHub: relative to the repository root
        target = os.path.join(root, path.lstrip("/"))
    else:
        target = os.path.join(os.path.dirname(source), path)
    target = os.path.normpath(target)
    if os.path.commonpath([os.path.realpath(root), os.path.realpath(target)]) != \
            os.path.realpath(root):
        return "outside the repository"
    if not os.path.exists(target):
        return "no such file or directory"
    if anchor and os.path.isfile(target) and target.endswith(".md"):
        if anchor.lower() not in anchors(target):
            return f"no heading for #{anchor} in {os.path.relpath(target, root)}"
    return None


def markdown_files(root):
    """The git-tracked *.md files of `root`; every *.md file outside hidden
    and build directories where `root` is not a git work tree."""
    try:
        out = subprocess.run(["git", "-C", root, "ls-files", "-z", "--", "*.md"],
                             capture_output=True, check=True).stdout
        return sorted(p for p in out.decode().split("\0")
                      if p and os.path.isfile(os.path.join(root, p)))
    except (OSError, subprocess.CalledProcessError):
        found = []
        for d, dirs, files in os.walk(root):
            dirs[:] = [x for x in dirs if not x.startswith((".", "build"))]
            found += [os.path.relpath(os.path.join(d, f), root) for f in files if f.endswith(".md")]
        return sorted(found)


def check(root):
    """The broken links of the Markdown files of `root`, as output lines."""
    broken = []
    for rel in markdown_files(root):
        path = os.path.join(root, rel)
        for line, dest in links(path):
            why = check_link(root, path, dest)
            if why:
                broken.append(f"{rel}:{line}: broken link: {dest or '()'} ({why})")
    return broken


def self_test():
    files = {
        "README.md": """# The `attn.attention` op (attn::AttentionOp)

[ok](docs/b.md) [dir](docs) [dir/](docs/) ![img](docs/b.md) [up](docs/../README.md)
[root-relative](/docs/b.md) [anchor](docs/b.md#second-heading-2) [self](#dup-1)
[code anchor](#the-attnattention-op-attnattentionop) [setext](docs/b.md#setext-title)
[case](docs/b.md#Second-Heading) [<angle>](<docs/b.md>) [esc](docs/b%2Emd)
[web](https://example.com/missing.md) [mail](mailto:a@b.c) `[code](missing0.md)`
[titled](docs/b.md "a title") [paren](docs/c(1).md) [line anchor](x.py#L3)
[id](docs/b.md#custom-id) [nested [brackets]](docs/b.md)

```sh
[fenced](missing0.md)
```

## Dup
## Dup

[missing](missing1.md) and [split
text](missing2.md), [bad anchor](docs/b.md#nope), [bad self](#dup-2)
[outside](../outside.md) [empty]() ![image](missing3.png)
[x.py anchor ok](x.py#anything) [dir anchor](docs#x)

[ref]: missing4.md
[ref ok]: docs/b.md#title
""",
        "docs/b.md": """# Title

## Second Heading
## Second heading!
### Second Heading

Setext Title
------------

<a id="custom-id"></a>

~~~
# not a heading
~~~
""",
        "docs/c(1).md": "",
        "x.py": "",
    }
    expected = [
        "README.md:18: broken link: missing1.md (no such file or directory)",
        "README.md:18: broken link: missing2.md (no such file or directory)",
        "README.md:19: broken link: docs/b.md#nope (no heading for #nope in docs/b.md)",
        "README.md:19: broken link: #dup-2 (no heading for #dup-2 in README.md)",
        "README.md:20: broken link: ../outside.md (outside the repository)",
        "README.md:20: broken link: () (empty destination)",
        "README.md:20: broken link: missing3.png (no such file or directory)",
        "README.md:23: broken link: missing4.md (no such file or directory)",
    ]
    with tempfile.TemporaryDirectory() as root:
        for name, text in files.items():
            os.makedirs(os.path.join(root, os.path.dirname(name)), exist_ok=True)
            with open(os.path.join(root, name), "w") as f:
                f.write(text)
        # The same answer without git (all *.md files) and with it (the
        # tracked ones: an untracked file's broken link does not count).
        got = [check(root)]
        with open(os.path.join(root, "untracked.md"), "w") as f:
            f.write("[x](missing5.md)\n")
        if subprocess.run(["git", "-C", root, "init", "-q"], capture_output=True).returncode == 0:
            subprocess.run(["git", "-C", root, "add"] + list(files), check=True)
            got.append(check(root))
        b_anchors = sorted(anchors(os.path.join(root, "docs", "b.md")))
    ok = True
    for g in got:
        if g != expected:
            ok = False
            print("self-test: expected\n  " + "\n  ".join(expected) + "\ngot\n  " + "\n  ".join(g))
    want = ["custom-id", "second-heading", "second-heading-1", "second-heading-2",
            "setext-title", "title"]
    if b_anchors != want:
        ok = False
        print(f"self-test: anchors of docs/b.md: expected {want}, got {b_anchors}")
    print("self-test:", "ok" if ok else "FAILED")
    return 0 if ok else 1


def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    root = os.path.abspath(sys.argv[1])
    broken = check(root)
    for line in broken:
        print(line)
    n = len(markdown_files(root))
    if broken:
        print(f"{len(broken)} broken link(s) in {n} Markdown files")
        return 1
    print(f"all relative links of {n} Markdown files resolve")
    return 0


if __name__ == "__main__":
    sys.exit(main())
