#!/usr/bin/env python3
"""Prints the crate's file-level import cycles (strongly connected components
of the `use crate::…` / `super::…` graph, re-exports followed to the file that
defines the item), and checks the layering rule: outside the web layer
(src/http/, src/tls.rs, src/cli.rs, src/startup.rs, src/main.rs) nothing names `crate::http`.

    scripts/module_graph.py            # cycles and layering; exit 1 on a violation
    scripts/module_graph.py --edges    # also print every edge
"""
import os, re, sys

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
SRC = os.path.normpath(SRC)
WEB = ("http/", "tls.rs", "cli.rs", "startup.rs", "main.rs")


def module_file(parts):
    """The file of module path `parts` (relative to src), or None."""
    if not parts:
        return "lib.rs"
    base = os.path.join(*parts)
    for cand in (base + ".rs", os.path.join(base, "mod.rs")):
        if os.path.exists(os.path.join(SRC, cand)):
            return cand
    return None


def module_of(path):
    p = path[:-3].split("/")
    if p[-1] in ("mod", "lib", "main"):
        p = p[:-1]
    return [x for x in p if x]


def strip_tests(text):
    # Drop `#[cfg(test)] mod tests { … }` at the end of files (tests are not
    # layering) and comments (a doc link is not an import).
    i = text.find("#[cfg(test)]\nmod tests")
    text = text if i < 0 else text[:i]
    return re.sub(r"(^|\s)//.*$", "", text, flags=re.M)


def use_paths(text):
    """Every `crate::a::b` / `super::a` path, with `use` groups expanded."""
    out = []
    for m in re.finditer(r"\buse\s+([^;]+);", text):
        out.extend(expand(re.sub(r"\s+", "", m.group(1))))
    for m in re.finditer(r"(?<![\w:])((?:crate|super)(?:::\w+)+)", text):
        out.append(m.group(1).split("::"))
    return out


def expand(tree, prefix=()):
    if "{" not in tree:
        return [list(prefix) + [p for p in tree.split("::") if p and p != "self"]]
    head, rest = tree.split("{", 1)
    rest = rest[: rest.rfind("}")]
    head_parts = [p for p in head.split("::") if p]
    items, depth, cur = [], 0, ""
    for ch in rest:
        if ch == "," and depth == 0:
            items.append(cur); cur = ""; continue
        depth += ch == "{"; depth -= ch == "}"
        cur += ch
    items.append(cur)
    out = []
    for it in items:
        if it:
            out.extend(expand(it, tuple(prefix) + tuple(head_parts)))
    return out


def resolve(path, from_mod):
    """Files a path names: the deepest module file, re-exports followed."""
    if path[0] == "crate":
        parts = path[1:]
    elif path[0] == "super":
        base = list(from_mod)
        while path and path[0] == "super":
            base = base[:-1]; path = path[1:]
        parts = base + path
    else:
        return None
    best, i = None, 0
    for i in range(len(parts), -1, -1):
        f = module_file(parts[:i])
        if f:
            best = f
            break
    if best is None:
        return None
    item = parts[i] if i < len(parts) and parts[i] != "*" else None
    seen = set()
    while item and best.endswith(("mod.rs", "lib.rs")) and best not in seen:
        seen.add(best)
        text = open(os.path.join(SRC, best)).read()
        m = re.search(r"pub use\s+([\w:]+)::\{[^}]*\b%s\b[^}]*\}|pub use\s+([\w:]+)::%s\s*;" % (re.escape(item), re.escape(item)), text)
        if not m:
            break
        target = (m.group(1) or m.group(2)).split("::")
        mod = module_of(best)
        tparts = target[1:] if target[0] == "crate" else (mod[:-1] + target[1:] if target[0] == "super" else mod + target)
        f = module_file(tparts)
        if not f:
            break
        best = f
    return best


def graph():
    edges = {}
    for root, _, files in os.walk(SRC):
        for name in files:
            if not name.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(root, name), SRC)
            text = strip_tests(open(os.path.join(SRC, rel)).read())
            mod = module_of(rel)
            targets = set()
            for p in use_paths(text):
                f = resolve(p, mod)
                if f and f != rel:
                    targets.add(f)
            edges[rel] = targets
    return edges


def sccs(edges):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]; counter[0] += 1
        stack.append(v); on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w); low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def main():
    edges = graph()
    if "--edges" in sys.argv:
        for a in sorted(edges):
            for b in sorted(edges[a]):
                print(f"{a} -> {b}")
    bad = [(a, b) for a, ts in edges.items() for b in ts
           if b.startswith("http/") and not a.startswith(WEB)]
    for comp in sccs(edges):
        print(f"cycle of {len(comp)} files: {' '.join(comp)}")
    for a, b in sorted(bad):
        print(f"layering: src/{a} imports src/{b} (only the web layer may)")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
