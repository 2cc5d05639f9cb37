#!/usr/bin/env python3
"""The module map of proxy/ has no cycles (issue 9).

A module is a name with its .c and .h: foo.c, foo.h and the files of its
family (foo_bar.c, foo_int.h) when foo.c or foo.h exists.  Module A
depends on B when a file of A includes B's header.  Prints the map, and
fails naming the modules of every cycle found.

    tests/unit/module_map.py [PROXY_DIR]
"""
import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s+"([A-Za-z0-9_]+)\.h"', re.M)


def module_of(stem, stems):
    """foo_bar_baz -> the longest prefix that is a module of its own."""
    parts = stem.split("_")
    for n in range(1, len(parts)):
        head = "_".join(parts[:n])
        if head in stems:
            return head
    return stem


def graph(root):
    files = [f for f in os.listdir(root) if f.endswith((".c", ".h"))]
    stems = {f[:-2] for f in files}
    g = {}
    for f in files:
        a = module_of(f[:-2], stems)
        g.setdefault(a, set())
        with open(os.path.join(root, f), encoding="utf-8") as fh:
            for inc in INCLUDE.findall(fh.read()):
                if inc not in stems:
                    continue
                b = module_of(inc, stems)
                if b != a:
                    g[a].add(b)
    return g


def cycles(g):
    """Strongly connected components with more than one module."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(g.get(v, ())):
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

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "proxy")
    g = graph(root)
    for a in sorted(g):
        print("%-14s -> %s" % (a, " ".join(sorted(g[a])) or "-"))
    found = cycles(g)
    for c in found:
        print("cycle: " + " <-> ".join(c), file=sys.stderr)
    if not found:
        print("no cycles among %d modules" % len(g))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
