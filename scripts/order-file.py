#!/usr/bin/env python3
"""Writes the link order of a processor's hot code (scripts/processor.order) from callgrind runs of probe-step.

    scripts/order-file.py BINARY CALLGRIND_OUT... > scripts/processor.order

BINARY is the probe-step the runs used, with its symbols. Every function of BINARY that callgrind saw run is listed,
in the order of its address in BINARY (so code that sat together stays together), by its mangled name: the name
lld's --symbol-ordering-file takes. Names that do not match a symbol (functions of the shared libraries, code
without a symbol) are left out.
"""
import collections
import re
import subprocess
import sys

OBJECT = re.compile(r"(c?)ob=\((\d+)\)(?: (.*))?$")
FUNCTION = re.compile(r"(c?)fn=\((\d+)\)(?: (.*))?$")


def functions_run(path, binary_name):
    """Names of the functions of `binary_name` in one callgrind output (its names are compressed: `fn=(id) name`
    the first time, `fn=(id)` after; the same for objects, which `cob=`/`cfn=` lines can name first)."""
    object_names, function_names, seen = {}, {}, set()
    current = {"": None, "c": None}
    for line in open(path, errors="replace"):
        line = line.rstrip("\n")
        if match := OBJECT.match(line):
            called, object_id, name = match.groups()
            if name:
                object_names[object_id] = name
            current[called] = object_id
        elif match := FUNCTION.match(line):
            called, function_id, name = match.groups()
            if name:
                function_names[function_id] = name
            seen.add((current[called], function_id))
    return {
        function_names[function_id]
        for object_id, function_id in seen
        if object_names.get(object_id, "").endswith(binary_name) and function_id in function_names
    }


def code_symbols(binary):
    """Mangled name -> address of every function symbol, and demangled name -> mangled names (callgrind demangles
    C++ names; Swift's it leaves as they are)."""
    def nm(*options):
        command = ["nm", "--defined-only", *options, binary]
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout.splitlines()

    addresses, by_demangled = {}, collections.defaultdict(list)
    for mangled, demangled in zip(nm(), nm("-C")):
        address, kind, name = mangled.split(" ", 2)
        if kind in "tTwW":
            addresses[name] = int(address, 16)
            by_demangled[demangled.split(" ", 2)[2]].append(name)
    return addresses, by_demangled


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    binary, outputs = sys.argv[1], sys.argv[2:]
    binary_name = binary.rsplit("/", 1)[-1]
    run = set()
    for path in outputs:
        run |= functions_run(path, binary_name)
    addresses, by_demangled = code_symbols(binary)
    ordered = set()
    for name in run:
        name = re.sub(r"'\d+$", "", name)  # callgrind's mark for a function entered again from a cycle
        ordered.update([name] if name in addresses else by_demangled.get(name, []))
    for name in sorted(ordered, key=addresses.__getitem__):
        print(name)
    print(f"order-file.py: {len(ordered)} functions of {len(run)} run in {binary_name}", file=sys.stderr)


if __name__ == "__main__":
    main()
