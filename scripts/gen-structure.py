#!/usr/bin/env python3
"""The shape of gen/ (issue #16), from the repository root:

    python3 scripts/gen-structure.py [-v]

Lists every .rs file in gen/src and gen/tests over 800 lines and every fn over 150
lines, and checks the floors of gen/src: a module may import only modules on its own
floor or lower, with no cycles. An import is any `crate::`, `super::` or `self::` path
outside comments and `#[cfg(test)] mod tests`; a mod.rs reaching its own children by
bare name sits above them anyway. lib.rs and main.rs are the roots. -v prints each
module's floor and imports. Exits 1 on a floor violation or a cycle."""
import os
import re
import sys

# Module and floor, lowest first. Sub-floors order the parts of one floor.
FLOORS = """
diag 1
topology 2
model::types 3.1
model::check 3.2
model::netplan 3.3
model::defaults 3.4
model::sites 3.4
model::accounts 3.4
model::lint 3.4
model::links 3.5
model::servers 3.6
model::upstreams 3.6
model 3.9
bundle 4
render::layout 5
render::template 5
render::compose 6
render::conf 6
render::diagram 6
render::payload 6
render::pki 6
render::secrets 6
render::terraform::hcl 6.1
render::terraform::firewall 6.1
render::terraform::site 6.1
render::terraform::cloud 6.2
render::terraform::onprem 6.2
render::terraform::aws 6.3
render::terraform::gcp 6.3
render::terraform 6.4
render 7
"""
SRC = "gen/src"
FN = re.compile(r"^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?fn\s+(\w+)")


def code_of(line, st):
    """The line without strings, chars and comments; `st` carries block comments and
    raw or plain strings across lines."""
    out, i = [], 0
    while i < len(line):
        c = line[i]
        if st["block"]:
            if line.startswith("*/", i):
                st["block"] = False
                i += 2
            else:
                i += 1
            continue
        if st["str"]:
            if st["raw"] is None and c == "\\":
                i += 2
                continue
            end = '"' + "#" * (st["raw"] or 0)
            if line.startswith(end, i):
                st["str"], st["raw"] = False, None
                i += len(end)
            else:
                i += 1
            continue
        if line.startswith("//", i):
            break
        if line.startswith("/*", i):
            st["block"] = True
            i += 2
            continue
        m = re.match(r'r(#*)"', line[i:])
        if m and (i == 0 or not (line[i - 1].isalnum() or line[i - 1] == "_")):
            st["str"], st["raw"] = True, len(m.group(1))
            i += len(m.group(0))
            continue
        if c == '"':
            st["str"], st["raw"] = True, None
            i += 1
            continue
        if c == "'":
            m = re.match(r"'(\\.|[^\\'])'|'\\u\{[0-9a-fA-F]+\}'", line[i:])
            if m:
                i += len(m.group(0))
                continue
        out.append(c)
        i += 1
    return "".join(out)


def sizes():
    files, fns = [], []
    for d in ("gen/src", "gen/tests"):
        for dp, _, fs in os.walk(d):
            for f in sorted(fs):
                if not f.endswith(".rs"):
                    continue
                p = os.path.join(dp, f)
                lines = open(p).read().split("\n")
                n = len(lines) - (lines[-1] == "")
                if n > 800:
                    files.append((n, p))
                st = {"block": False, "str": False, "raw": None}
                stack, depth, pending = [], 0, None
                for ln, line in enumerate(lines, 1):
                    m = FN.match(line) if not (st["str"] or st["block"]) else None
                    code = code_of(line, st)
                    if m:
                        pending = (m.group(6), ln)
                    for c in code:
                        if c == "{":
                            depth += 1
                            if pending:
                                stack.append((pending[0], pending[1], depth))
                                pending = None
                        elif c == "}":
                            if stack and stack[-1][2] == depth:
                                name, start, _ = stack.pop()
                                if ln - start + 1 > 150:
                                    fns.append((ln - start + 1, p, name, start))
                            depth -= 1
                        elif c == ";" and pending:
                            pending = None
    return files, fns


def modules():
    mods = {}
    for dp, _, fs in os.walk(SRC):
        for f in fs:
            if f.endswith(".rs"):
                rel = os.path.relpath(os.path.join(dp, f), SRC)[:-3].split(os.sep)
                if rel[-1] == "mod":
                    rel = rel[:-1]
                name = "<%s>" % rel[0] if rel in (["lib"], ["main"]) else "::".join(rel)
                mods[name] = os.path.join(dp, f)
    return mods


def imports(mods):
    def resolve(cur, path):
        parts = path.split("::")
        if parts[0] == "crate":
            parts = parts[1:]
        else:
            base = [] if cur.startswith("<") else cur.split("::")
            while parts and parts[0] in ("super", "self"):
                if parts[0] == "super":
                    base = base[:-1]
                parts = parts[1:]
            parts = base + parts
        for n in range(len(parts), 0, -1):
            if "::".join(parts[:n]) in mods:
                return "::".join(parts[:n])
        return None

    edges = {}
    for m, p in mods.items():
        text = open(p).read()
        cut = text.find("#[cfg(test)]\nmod tests")
        text = text if cut < 0 else text[:cut]
        st = {"block": False, "str": False, "raw": None}
        code = "\n".join(code_of(l, st) for l in text.split("\n"))
        paths = re.findall(r"\b((?:crate|super|self)(?:::[A-Za-z_]\w*)+)", code)
        for root, group in re.findall(r"\b(crate|super|self)::\{([^}]*)\}", code):
            paths += [root + "::" + g.strip() for g in group.split(",") if g.strip()[:1].islower()]
        edges[m] = {d for d in (resolve(m, x.split(" ")[0]) for x in paths) if d and d != m}
    return edges


def main():
    floor = {m: float(f) for m, f in (l.split() for l in FLOORS.split("\n") if l.strip())}
    mods = modules()
    edges = imports(mods)
    bad = []
    for m in sorted(mods):
        if m.startswith("<"):
            continue
        if m not in floor:
            bad.append(f"{m}: no floor")
            continue
        for d in sorted(edges[m]):
            if d.startswith("<") or floor.get(d, 99) > floor[m]:
                bad.append(f"{m} ({floor[m]:g}) imports {d} ({floor.get(d, 'root')})")
    state, cycle = {}, []

    def dfs(m, path):
        state[m] = 1
        for d in sorted(edges.get(m, ())):
            if state.get(d) == 1:
                cycle.extend(path[path.index(d):] + [d])
                return True
            if not state.get(d) and dfs(d, path + [d]):
                return True
        state[m] = 2
        return False

    for m in sorted(mods):
        if not state.get(m) and dfs(m, [m]):
            break
    if "-v" in sys.argv:
        for m in sorted(mods, key=lambda x: (floor.get(x, 99), x)):
            print(f"  {floor.get(m, '-')!s:>4}  {m:28} -> {', '.join(sorted(edges[m]))}")
    n = sum(len(v) for v in edges.values())
    print(f"floors: {len(mods)} module files, {n} imports between them, "
          f"{len(bad)} upward, {'cycle ' + ' -> '.join(cycle) if cycle else 'no cycle'}")
    for b in bad:
        print("  upward: " + b)
    files, fns = sizes()
    print("files over 800 lines:" + ("" if files else " none"))
    for n, p in sorted(files, reverse=True):
        print(f"  {n:5} {p}")
    print("fns over 150 lines:" + ("" if fns else " none"))
    for n, p, name, start in sorted(fns, reverse=True):
        print(f"  {n:5} {p}:{start} {name}")
    sys.exit(1 if bad or cycle else 0)


main()
