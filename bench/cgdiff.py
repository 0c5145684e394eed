"""Where the instructions go: per-request costs from callgrind_annotate.

    cgdiff.py diff A0 AN D0 DN REQUESTS TOP
        A0, AN, D0, DN: `callgrind_annotate --inclusive=no` listings of runs
        of configurations A and D serving 0 and REQUESTS requests.  Prints
        the TOP functions whose cost per request, (DN - D0) - (AN - A0), over
        REQUESTS, grew most, and the growth by object (module, nginx, libc..).
        The rows of the last line add up to D's minus A's Ir per request.

        With --src DIR, the module's share is also split by the source file
        (of DIR) that defines each function.

    cgdiff.py calls REQUESTS CONFIG:RUN0:RUNN... -- NAME=REGEX...
        RUN0, RUNN: callgrind.out files of CONFIG serving 0 and REQUESTS
        requests.  Prints how many times per request, in each CONFIG, the
        functions whose names match REGEX (the whole name) were called.
"""

import glob
import os
import re
import sys

LINE = re.compile(r"^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(.*?)(?:\s+\[(.*)\])?\s*$")
MODULE = "ngx_http_xray_module.so"


def obj_name(path, where):
    if path:
        return path.rsplit("/", 1)[-1]
    # callgrind_annotate leaves the object out of some lines (functions of
    # the module whose source file it found)
    return MODULE if "xray" in where else "?"


def load(path):
    """the function table of a listing: {function: Ir}, {function: object}.
    What follows it (auto-annotated sources) would count lines twice."""
    costs, objs = {}, {}
    table = False
    for line in open(path, errors="replace"):
        if not table:
            table = re.match(r"^Ir\s+file:function", line) is not None
            continue
        if line.startswith("-- ") or (not line.strip() and costs):
            break
        m = LINE.match(line)
        if not m or m.group(2) == "PROGRAM TOTALS":
            continue
        where = m.group(2)
        func = where.rsplit(":", 1)[-1]
        obj = obj_name(m.group(3), where)
        costs[func] = costs.get(func, 0) + int(m.group(1).replace(",", ""))
        if obj != "?" or func not in objs:
            objs[func] = obj
    return costs, objs


def per_request(base, runs, n):
    """(runs - base) / n per function."""
    (b, _), (r, objs) = load(base), load(runs)
    return {f: (r.get(f, 0) - b.get(f, 0)) / n for f in set(b) | set(r)}, objs


def defining_files(src):
    """function name -> the .c file under src that defines it (nginx style:
    the name at the start of a line, the type on the line before)."""
    where = {}
    for path in glob.glob(os.path.join(src, "*.c")) + \
            glob.glob(os.path.join(src, "src", "*.c")):
        rel = os.path.relpath(path, src)
        for line in open(path, errors="replace"):
            m = re.match(r"^([A-Za-z_]\w*)\(", line)
            if m:
                where.setdefault(m.group(1), rel)
    return where


def calls(path):
    """total calls to each function in a callgrind.out file"""
    names, total, callee = {}, {}, None
    for line in open(path, errors="replace"):
        m = re.match(r"^c?fn=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
        if m:
            if m.group(2):
                names[m.group(1)] = m.group(2)
            callee = m.group(1) if line.startswith("cfn=") else None
            continue
        if callee and line.startswith("calls="):
            n = int(line[6:].split()[0])
            name = names.get(callee, callee)
            total[name] = total.get(name, 0) + n
            callee = None
    return total


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    src = None
    if "--src" in args:
        i = args.index("--src")
        src = args[i + 1]
        del args[i:i + 2]

    if mode == "calls":
        n = int(args[0])
        sep = args.index("--")
        configs = [a.split(":") for a in args[1:sep]]
        runs = [(c, calls(f0), calls(fn)) for c, f0, fn in configs]
        print("%-28s" % "" + "".join("%9s" % c for c, _, _ in runs))
        for spec in args[sep + 1:]:
            label, _, pattern = spec.partition("=")
            rx = re.compile(pattern or label)
            line = "%-28s" % label
            for _, r0, rn in runs:
                c0 = sum(v for k, v in r0.items() if rx.fullmatch(k))
                cn = sum(v for k, v in rn.items() if rx.fullmatch(k))
                line += "%9.3f" % ((cn - c0) / n)
            print(line)
        return

    n, top = int(args[4]), int(args[5])
    a, aobjs = per_request(args[0], args[1], n)
    d, dobjs = per_request(args[2], args[3], n)
    objs = dict(aobjs)
    objs.update({f: o for f, o in dobjs.items() if o != "?" or f not in objs})
    delta = {f: d.get(f, 0) - a.get(f, 0) for f in set(a) | set(d)}

    rows = sorted(((v, f) for f, v in delta.items()), reverse=True)
    print("%9s  %s" % ("Ir/req", "function [object]"))
    for v, f in rows[:top]:
        if v < 0.5:
            break
        print("%+9.0f  %s [%s]" % (v, f, objs.get(f, "?")))

    by_obj = {}
    for f, v in delta.items():
        o = objs.get(f, "?")
        by_obj[o] = by_obj.get(o, 0) + v
    parts = sorted(((v, o) for o, v in by_obj.items()), reverse=True)
    print("by object: " + ", ".join("%s %+.0f" % (o, v)
                                    for v, o in parts if abs(v) >= 1))

    if src:
        files = defining_files(src)
        by_file = {}
        for f, v in delta.items():
            if objs.get(f) != MODULE:
                continue
            name = files.get(f, "?")
            by_file[name] = by_file.get(name, 0) + v
        parts = sorted(((v, n) for n, v in by_file.items()), reverse=True)
        print("module by source file: " + ", ".join(
            "%s %+.0f" % (n, v) for v, n in parts if abs(v) >= 1))


if __name__ == "__main__":
    main()
