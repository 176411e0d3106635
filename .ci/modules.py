#!/usr/bin/env python3
"""Module-level architecture checks (docs/ARCHITECTURE.md, "Invariants").

1. No import loop inside any crate: the graph "file A names an item of file B"
   (through `use`, a `crate::`/`super::`/`self::` path, or a child module's
   name) has no cycle. A loop means two files cannot be understood, tested or
   moved apart.
2. The rooms of lrs-server keep their arrows: each rule below names a room
   and the rooms it never imports.

Paths are read from the source with comments and strings removed; a
re-export (`pub use child::Item` or `pub use child::*`) is followed to the
file that defines the item, so a crate root that re-exports does not tie a
loop by itself. Prints every loop and broken arrow; exits 1 if any.
"""

import os
import re
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))

CRATES = [
    "crates/xapi",
    "crates/lrs-core",
    "crates/lrs-store",
    "crates/lrs-app",
    "crates/lrs-server",
    "crates/lrs-cli",
    "crates/lrs-analytics",
    "projections",
]

# lrs-server's rooms: (room, rooms it never imports). A room is a top-level
# module (file or directory) of the crate.
SERVER_NEVER = {
    # The bottom: request helpers and the error map import nothing above them.
    "error": ["request", "ops", "security", "resources", "api", "web", "server", "config", "tasks", "openapi"],
    "request": ["ops", "security", "resources", "api", "web", "server", "config", "tasks", "openapi"],
    # ops/ and security/ serve the surfaces and never reach into one;
    # ops/ never imports security/ (both may use ops::counters).
    "ops": ["security", "resources", "api", "web", "server", "config", "tasks", "openapi"],
    "security": ["resources", "api", "web", "server", "config", "tasks", "openapi"],
    # The surfaces never import each other, nor the composition root.
    "resources": ["api", "web", "server", "config", "tasks", "openapi"],
    "api": ["resources", "web", "server", "config", "tasks", "openapi"],
    "web": ["resources", "api", "server", "config", "tasks", "openapi"],
}


def strip(source):
    """The source without comments, string and char literals."""
    out = []
    i, n = 0, len(source)
    while i < n:
        c = source[i]
        if source.startswith("//", i):
            j = source.find("\n", i)
            i = n if j < 0 else j
        elif source.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if source.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif source.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif c == "r" and re.match(r'r#*"', source[i:i + 10]) and (i == 0 or not (source[i - 1].isalnum() or source[i - 1] == "_")):
            m = re.match(r'r(#*)"', source[i:])
            end = '"' + m.group(1)
            j = source.find(end, i + len(m.group(0)))
            i = n if j < 0 else j + len(end)
            out.append('""')
        elif c == '"':
            j = i + 1
            while j < n and source[j] != '"':
                j += 2 if source[j] == "\\" else 1
            i = j + 1
            out.append('""')
        elif c == "'":
            # A char literal ('a', '\n', '\u{..}') or a lifetime ('a).
            m = re.match(r"'(\\.|\\u\{[0-9a-fA-F]+\}|[^\\'])'", source[i:])
            if m:
                i += len(m.group(0))
                out.append("' '")
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def module_files(src):
    """module path (tuple) -> file, for every .rs file under src."""
    modules = {}
    for dirpath, _, files in os.walk(src):
        for name in files:
            if not name.endswith(".rs"):
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, src)[:-3].split(os.sep)
            if rel == ["lib"] or rel == ["main"]:
                key = ()
            elif rel[-1] == "mod":
                key = tuple(rel[:-1])
            else:
                key = tuple(rel)
            if rel == ["main"] and () in modules:
                continue  # a binary beside a library: the library is the root
            if rel[0] == "bin":
                continue
            modules[key] = path
    return modules


def use_paths(tree, prefix=""):
    """Expand a use tree `a::{b, c::d as e, f::*}` into full paths."""
    tree = tree.strip()
    m = re.match(r"^(.*?)\{(.*)\}$", tree, re.S)
    if not m:
        path = re.sub(r"\s+as\s+\w+$", "", tree).strip()
        return [prefix + path] if path else []
    head, body = m.group(1), m.group(2)
    parts, depth, current = [], 0, ""
    for ch in body:
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        current += ch
    parts.append(current)
    paths = []
    for part in parts:
        if part.strip():
            paths.extend(use_paths(part, prefix + head))
    return paths


class Crate:
    def __init__(self, directory):
        self.name = os.path.basename(directory)
        self.src = os.path.join(directory, "src")
        self.modules = module_files(self.src)
        self.text = {}
        self.reexports = {}  # module -> {name: target module}, plus '*' globs
        self.children = {}
        for key, path in self.modules.items():
            with open(path, encoding="utf-8") as f:
                self.text[key] = strip(f.read())
        for key in self.modules:
            self.children[key] = {
                c[len(key)] for c in self.modules if len(c) == len(key) + 1 and c[: len(key)] == key
            }
            self.children[key] |= set(
                name for name in re.findall(r"\bmod\s+(\w+)\s*\{", self.text[key])
            )
        for key in self.modules:
            self.reexports[key] = self.parse_reexports(key)

    def parse_reexports(self, key):
        found = {}
        for m in re.finditer(r"\bpub(?:\([^)]*\))?\s+use\s+([^;]+);", self.text[key]):
            for path in use_paths(m.group(1)):
                segments = [s for s in path.replace(" ", "").split("::") if s]
                target = self.resolve(key, segments, follow=False)
                if target is None or target == key:
                    continue
                name = segments[-1]
                found.setdefault(name, set()).add(target)
        return found

    def resolve(self, key, segments, follow=True, inline_depth=0):
        """The file a path names, or None for another crate or std."""
        if not segments:
            return None
        first = segments[0]
        if first == "crate":
            base, rest = (), segments[1:]
        elif first == "super":
            base, rest = key, segments
            # `super` inside an inline module climbs inside this file first.
            while rest and rest[0] == "super":
                if inline_depth > 0:
                    inline_depth -= 1
                else:
                    base = base[:-1]
                rest = rest[1:]
        elif first == "self":
            base, rest = key, segments[1:]
        elif first in self.children.get(key, ()):  # a child module by its name
            base, rest = key, segments
        else:
            return None
        current = base
        for i, segment in enumerate(rest):
            nxt = current + (segment,)
            if nxt in self.modules:
                current = nxt
                continue
            if follow and current in self.reexports:
                targets = self.reexports[current].get(segment)
                if targets:
                    return sorted(targets)[0]
                for glob in self.reexports[current].get("*", ()):
                    if glob != current:
                        return glob
            break
        return current

    def edges(self):
        graph = {key: set() for key in self.modules}
        for key in self.modules:
            text = self.text[key]
            depth_of = inline_depths(text)
            for m in re.finditer(r"\buse\s+([^;]+);", text):
                inline = depth_of(m.start())
                for path in use_paths(m.group(1)):
                    segments = [s for s in path.replace(" ", "").split("::") if s]
                    if segments and segments[-1] == "*":
                        segments = segments[:-1]
                    target = self.resolve(key, segments, inline_depth=inline)
                    if target is not None and target != key:
                        graph[key].add(target)
            children = "|".join(sorted(self.children.get(key, ())))
            pattern = r"(?<![\w:])((?:crate|super|self)(?:::\w+)+" + (
                r"|(?:" + children + r")(?:::\w+)+" if children else "") + r")"
            for m in re.finditer(pattern, text):
                segments = m.group(1).split("::")
                target = self.resolve(key, segments, inline_depth=depth_of(m.start()))
                if target is not None and target != key:
                    graph[key].add(target)
        return graph


def inline_depths(text):
    """A function: offset -> how many inline `mod x { }` blocks enclose it."""
    spans = []
    for m in re.finditer(r"\bmod\s+\w+\s*\{", text):
        start = m.end() - 1
        depth, i = 0, start
        while i < len(text):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    break
            i += 1
        spans.append((start, i))
    return lambda offset: sum(1 for a, b in spans if a < offset < b)


def cycles(graph):
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, on_stack, stack, result = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return result


def show(key):
    return "::".join(key) or "<root>"


def main():
    failures = 0
    for directory in CRATES:
        if not os.path.isdir(os.path.join(ROOT, directory, "src")):
            continue
        crate = Crate(os.path.join(ROOT, directory))
        graph = crate.edges()
        loops = cycles(graph)
        for component in loops:
            failures += 1
            print(f"loop in {crate.name}: " + ", ".join(show(k) for k in component))
            members = set(component)
            for a in component:
                for b in sorted(graph[a] & members):
                    print(f"    {show(a)} -> {show(b)}")
        if not loops:
            print(f"ok: no import loop among the {len(graph)} files of {crate.name}")
        if crate.name == "lrs-server":
            broken = 0
            for a, targets in graph.items():
                room = a[0] if a else "<root>"
                for b in targets:
                    other = b[0] if b else "<root>"
                    if other in SERVER_NEVER.get(room, ()):
                        broken += 1
                        print(f"arrow broken in lrs-server: {show(a)} imports {show(b)} ({room}/ never imports {other}/)")
            failures += broken
            if not broken:
                print("ok: lrs-server's rooms keep their arrows")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
