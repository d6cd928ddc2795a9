#!/usr/bin/env python3
"""The module graph of src/ (non-test code): which module uses which, and its cycles.

A node is a top-level module (`fleet`, `tui`, …); inside the larger folders (commands,
sim, connect, session, …) each file is a node of its own (`sim::gateway`). An edge is a
`crate::X` or `super::X` path in the code (comments and `#[cfg(test)] mod tests` left
out). Prints the cycles between top-level modules and within each folder; exits 1 when
there is one. `-v` prints every top-level edge.

    scripts/module-graph.py [-v] [SRC]
"""
import os
import re
import sys

args = [a for a in sys.argv[1:] if a != "-v"]
root = args[0] if args else "src"
GROUPS = {d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d))}


def is_module(group, name):
    return os.path.exists(os.path.join(root, group, name + ".rs")) or os.path.isdir(
        os.path.join(root, group, name)
    )


def node(path):
    parts = os.path.relpath(path, root)[:-3].split(os.sep)
    if parts[-1] == "mod":
        parts = parts[:-1]
    if parts[0] in GROUPS and len(parts) > 1:
        return parts[0] + "::" + parts[1]
    return parts[0]


edges = {}
for d, _, files in os.walk(root):
    for f in files:
        if not f.endswith(".rs") or f == "tests.rs" or f.endswith("_tests.rs"):
            continue
        path = os.path.join(d, f)
        src = open(path).read()
        cut = src.find("#[cfg(test)]\nmod tests")
        if cut >= 0:
            src = src[:cut]
        src = re.sub(r"//[^\n]*", "", src)
        me = node(path)
        refs = set()
        for a, b in re.findall(r"crate::(\w+)(?:::(\w+))?", src):
            refs.add(a + "::" + b if a in GROUPS and b and is_module(a, b) else a)
        group = me.split("::")[0]
        if "::" in me:
            names = re.findall(r"super::(\w+)", src)
            for m in re.findall(r"use super::\{([^}]*)\}", src):
                names += re.findall(r"\b(\w+)\b", m)
            refs |= {group + "::" + b for b in names if is_module(group, b)}
        refs.discard(me)
        edges.setdefault(me, set()).update(refs)


def top(n):
    return n.split("::")[0]


def sccs(graph):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in list(graph):
        if v not in index:
            visit(v)
    return out


tops = {}
for a, bs in edges.items():
    for b in bs:
        if top(a) != top(b):
            tops.setdefault(top(a), set()).add(top(b))
inner = {a: {b for b in bs if top(b) == top(a)} for a, bs in edges.items()}
cycles = sccs(tops) + sccs(inner)
if "-v" in sys.argv:
    for a in sorted(tops):
        print(a, "->", ", ".join(sorted(tops[a])))
for c in cycles:
    print("cycle:", " <-> ".join(c))
if not cycles:
    print("module graph: no cycles")
sys.exit(1 if cycles else 0)
