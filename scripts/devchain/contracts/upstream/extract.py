#!/usr/bin/env python3
"""Extracts a contract's ABI and creation bytecode from an abigen-generated Go binding.

Used once to make the fixtures beside this file (see SOURCE.md for the exact files and commit):

    git -C libocr show <commit>:gethwrappers/<dir>/<file>.go > binding.go
    python3 extract.py binding.go <ContractName> > <ContractName>.json

abigen writes either `var <Name>MetaData = &bind.MetaData{ABI: "...", Bin: "0x..."}` (newer
go-ethereum) or `const <Name>ABI = "..."` and `var <Name>Bin = "0x..."` (older); both are Go
string literals holding JSON with escaped quotes.
"""

import ast
import json
import re
import sys


def go_string(literal):
    # abigen's literals use only \" and \\ escapes, which Python's string syntax shares.
    return ast.literal_eval(literal)


def extract(source, name):
    meta = re.search(
        r"var " + re.escape(name) + r'MetaData = &bind\.MetaData\{\s*ABI: ("(?:[^"\\]|\\.)*"),'
        r'(?:\s*Sigs: map\[string\]string\{.*?\},)?\s*Bin: ("(?:[^"\\]|\\.)*"),',
        source,
        re.S,
    )
    if meta:
        abi, binary = meta.group(1), meta.group(2)
    else:
        abi_match = re.search(r"const " + re.escape(name) + r'ABI = ("(?:[^"\\]|\\.)*")', source)
        bin_match = re.search(r"var " + re.escape(name) + r'Bin = ("(?:[^"\\]|\\.)*")', source)
        if not (abi_match and bin_match):
            raise SystemExit(f"{name}: no ABI/Bin in this binding")
        abi, binary = abi_match.group(1), bin_match.group(1)
    bytecode = go_string(binary)
    if not re.fullmatch(r"0x[0-9a-f]+", bytecode):
        raise SystemExit(f"{name}: Bin is not hex")
    return {"contractName": name, "abi": json.loads(go_string(abi)), "bytecode": bytecode}


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: extract.py <binding.go> <ContractName>")
    with open(sys.argv[1], encoding="utf-8") as f:
        print(json.dumps(extract(f.read(), sys.argv[2]), indent=1))
