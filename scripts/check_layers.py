#!/usr/bin/env python3
"""Fails when a module imports a layer above it, or when modules import each other in a circle.

The layers of reseal, lowest first (docs/design.md draws them):

    esdk (crate reseal-esdk), jwe (crate reseal-jwe)   the formats: pure, no I/O
    clock, input, telemetry                            leaf utilities, on the side
    keys                                               keyrings, key material, AWS-backed keys
    registry                                           configuration model, validation, reload
    broker                                             the use case
    transport, wire                                    connections, TLS, caller certificates; shared wire forms
    doors: grpc, http, lambda                          wire forms over the one broker call
    server, vectors                                    the listeners wired together; test vectors
    app, cli                                           composition and commands

A module may use its own layer's modules only where the table below allows it
(doors never use each other), and any module of a lower layer. The check reads
every `crate::x` and `super::x` path of every file under src/ (and `crate::x` in
the format crates, whose modules must not form circles either).

Usage: scripts/check_layers.py [ROOT]    (exit 1 with one line per violation)
       scripts/check_layers.py --self-test (shows the check catches violations)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

RANK = {
    "clock": 1,
    "input": 1,
    "telemetry": 1,
    "keys": 2,
    "registry": 3,
    "broker": 4,
    "grpc": 6,
    "http": 6,
    "lambda": 6,
    "transport": 5,
    "wire": 5,
    "server": 7,
    "app": 8,
    "cli": 9,
    "vectors": 7,
    # The format crates, re-exported under these names.
    "esdk": 0,
    "jwe": 0,
}
# Same-rank uses that are allowed (from, to).
ALLOWED_SIDEWAYS: set[tuple[str, str]] = set()

USE_BLOCK = re.compile(r"\buse\s+(crate|super)::\{([^;]*)\};", re.S)
PATH = re.compile(r"\b(crate|super)::([a-z_][a-z0-9_]*)")


def strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return "\n".join(line.split("//", 1)[0] for line in text.splitlines())


def top_module(src: Path, file: Path) -> str:
    rel = file.relative_to(src)
    return rel.parts[0].removesuffix(".rs")


def module_path(src: Path, file: Path) -> list[str]:
    rel = list(file.relative_to(src).with_suffix("").parts)
    if rel[-1] in ("mod", "lib", "main"):
        rel = rel[:-1]
    return rel


def referenced(src: Path, file: Path, text: str) -> set[tuple[str, ...]]:
    """Module paths (from the crate root) a file refers to, one level below the root at least."""
    here = module_path(src, file)
    # `super` from a file is its parent module; from mod.rs the module's parent.
    is_mod_file = file.name in ("mod.rs",)
    parent = here[:-1] if not is_mod_file else here[:-1]
    out: set[tuple[str, ...]] = set()

    def resolve(kind: str, first: str, rest: list[str]) -> tuple[str, ...]:
        base = [] if kind == "crate" else list(parent)
        return tuple(base + [first] + rest)

    for kind, body in USE_BLOCK.findall(text):
        for item in re.split(r",(?![^{]*\})", body):
            item = item.strip()
            m = re.match(r"([a-z_][a-z0-9_]*)", item)
            if m and m.group(1) not in ("self",):
                out.add(resolve(kind, m.group(1), []))
    for kind, first in PATH.findall(text):
        if first == "self":
            continue
        out.add(resolve(kind, first, []))
    return out


def check_crate(src: Path, ranks: bool) -> list[str]:
    problems: list[str] = []
    edges: dict[str, set[str]] = {}
    for file in sorted(src.rglob("*.rs")):
        text = strip_comments(file.read_text())
        # Test modules may reach anywhere (they exercise, they are not layers).
        text = text.split("#[cfg(test)]", 1)[0]
        mine = module_path(src, file)
        if not mine:
            continue
        top = mine[0]
        for target in referenced(src, file, text):
            if not target:
                continue
            to = target[0]
            if to == top:
                # Inside one module: record sibling edges for the cycle check.
                if len(mine) >= 2 and len(target) >= 2 and target[1] != mine[1]:
                    edges.setdefault("/".join(mine[:2]), set()).add("/".join(target[:2]))
                continue
            edges.setdefault(top, set()).add(to)
            if not ranks:
                continue
            a, b = RANK.get(top), RANK.get(to)
            if a is None:
                problems.append(f"{file}: module `{top}` has no layer in scripts/check_layers.py")
            elif b is None:
                problems.append(f"{file}: uses `{to}`, which has no layer in scripts/check_layers.py")
            elif b > a or (b == a and (top, to) not in ALLOWED_SIDEWAYS):
                problems.append(
                    f"{file}: `{top}` (layer {a}) uses `crate::{to}` (layer {b}): "
                    "lower layers must not name higher ones, and doors not each other"
                )
    problems += cycles(src, edges)
    return problems


def cycles(src: Path, edges: dict[str, set[str]]) -> list[str]:
    found: list[str] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> None:
        state[n] = 1
        stack.append(n)
        for m in sorted(edges.get(n, ())):
            if state.get(m) == 1:
                loop = stack[stack.index(m):] + [m]
                found.append(f"{src}: import circle: {' -> '.join(loop)}")
            elif m not in state:
                visit(m)
        stack.pop()
        state[n] = 2

    for n in sorted(edges):
        if n not in state:
            visit(n)
    return found


def self_test() -> int:
    """The check itself can fail: a tree with an upward import and a circle is refused."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "src"
        (src / "keys").mkdir(parents=True)
        (src / "broker").mkdir()
        (src / "keys" / "mod.rs").write_text("use crate::registry::model::AwsSpec;\n")
        (src / "registry.rs").write_text("use crate::keys;\n")
        (src / "broker" / "mod.rs").write_text("mod a;\nmod b;\n")
        (src / "broker" / "a.rs").write_text("use super::b::X;\n")
        (src / "broker" / "b.rs").write_text("use super::{a::Y, Z};\n")
        (src / "grpc.rs").write_text("use crate::http::Door;\n")
        (src / "http.rs").write_text("// use crate::grpc; (a comment is no import)\n")
        problems = check_crate(src, ranks=True)
    wanted = ["`keys` (layer 2) uses `crate::registry`", "`grpc` (layer 6) uses `crate::http`",
              "import circle: broker/a -> broker/b -> broker/a",
              "import circle: keys -> registry -> keys"]
    missing = [w for w in wanted if not any(w in p for p in problems)]
    if missing or len(problems) != len(wanted):
        print("self-test failed; missing:", missing, "got:", problems)
        return 1
    print("self-test: violations are caught")
    return 0


def main() -> int:
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent)
    problems = check_crate(root / "src", ranks=True)
    for crate in sorted((root / "crates").glob("*/src")):
        problems += check_crate(crate, ranks=False)
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} layering problem(s); see scripts/check_layers.py for the layers")
        return 1
    print("layers point down; no import circles")
    return 0


if __name__ == "__main__":
    sys.exit(main())
