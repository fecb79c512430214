#!/usr/bin/env python3
"""make lint: the include graph of src/ (#include "x.h" lines) against the layers.

Usage: includes.py --layers "base codecs conf ..." [--known-upward "f>h ..."]
                   [--known-cycles "a,b,c d,e ..."]

1. Direction: a file in src/<layer>/ includes only headers of its own layer
   or of the layers before it in --layers (lowest first).
2. Cycles: no cycle between modules. A module is x.c with x.h; a private
   header <m>_int.h, and the files without a header of their own that
   include it (session_connect.c), belong to module <m>.

--known-upward and --known-cycles list what is not fixed yet (issue 16);
they must match exactly, so a fix also shrinks the list. Exits 1 with one
line per problem.
"""
import argparse
import collections
import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def modules_of(paths, includes, headers):
    """Module name of each file."""
    mod = {}
    for p in paths:
        stem = os.path.basename(p)[:-2]
        if stem.endswith("_int") and p.endswith(".h"):
            mod[p] = stem[:-4]
        elif p.endswith(".c") and stem + ".h" not in headers:
            owners = [h[:-6] for h in includes[p] if h.endswith("_int.h")]
            mod[p] = owners[0] if owners else stem
        else:
            mod[p] = stem
    return mod


def cycles(graph):
    """Strongly connected components of more than one node (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
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
                out.append(tuple(sorted(comp)))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", default="src")
    ap.add_argument("--layers", required=True)
    ap.add_argument("--known-upward", default="")
    ap.add_argument("--known-cycles", default="")
    a = ap.parse_args()
    layers = a.layers.split()
    rank = {l: i for i, l in enumerate(layers)}
    problems = []

    paths, headers = [], {}
    for d in sorted(os.listdir(a.src)):
        full = os.path.join(a.src, d)
        if not os.path.isdir(full):
            problems.append(f"lint: {full} is not in a layer folder")
            continue
        if d not in rank:
            problems.append(f"lint: {full}/ is not a layer (scripts/lint.sh: layers)")
            continue
        for f in sorted(os.listdir(full)):
            if f.endswith((".c", ".h")):
                p = os.path.join(full, f)
                paths.append(p)
                if f.endswith(".h"):
                    if f in headers:
                        problems.append(f"lint: {p} and {headers[f]}: one name, two headers")
                    headers[f] = p
    includes = {p: INCLUDE.findall(open(p, encoding="utf-8").read()) for p in paths}

    known_up = set(a.known_upward.split())
    seen_up = set()
    for p in paths:
        layer = p.split(os.sep)[-2]
        for h in includes[p]:
            hp = headers.get(h)
            if hp is None:
                problems.append(f"lint: {p} includes \"{h}\", which is not in src/")
                continue
            hl = hp.split(os.sep)[-2]
            if rank[hl] > rank[layer]:
                key = f"{layer}/{os.path.basename(p)}>{hl}/{h}"
                seen_up.add(key)
                if key not in known_up:
                    problems.append(
                        f"lint: {p} includes {h} of layer {hl}, above {layer} "
                        f"(a file includes its own layer and those below: {' < '.join(layers)})")
    for key in sorted(known_up - seen_up):
        problems.append(f"lint: known upward include {key} is gone: "
                        "take it off the list in scripts/lint.sh")

    mod = modules_of(paths, includes, headers)
    graph = collections.defaultdict(set)
    for p in paths:
        graph[mod[p]]
        for h in includes[p]:
            if h in headers and mod[headers[h]] != mod[p]:
                graph[mod[p]].add(mod[headers[h]])
    known_cyc = {tuple(sorted(c.split(","))) for c in a.known_cycles.split()}
    found = set(cycles(graph))
    for c in sorted(found - known_cyc):
        problems.append("lint: include cycle between modules " + " ".join(c) +
                        " (" + " ".join(f"{m}->{','.join(sorted(graph[m] & set(c)))}" for m in c) + ")")
    for c in sorted(known_cyc - found):
        problems.append("lint: known cycle " + ",".join(c) +
                        " is gone or smaller: update the list in scripts/lint.sh")

    for line in problems:
        print(line, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
