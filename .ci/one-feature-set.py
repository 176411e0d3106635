#!/usr/bin/env python3
"""One feature set for the whole workspace (docs/development.md).

`cargo build --workspace` resolves features without the dev-dependencies,
`cargo test --workspace` and `cargo clippy --all-targets` with them. Where the
two differ for a crate, everything that depends on it is built twice
(DataFusion took ~14 minutes more on 2 cores). This lists every crate whose
features differ between the two and exits 1 if there is one; the fix is to
make the test-only crate that adds the feature a normal dependency of the
test package (tests/Cargo.toml says which ones are).
"""
import re
import subprocess
import sys


def features(edges):
    out = subprocess.run(
        ["cargo", "tree", "--workspace", "--locked", "-e", edges, "--prefix", "none",
         "-f", "{p} [{f}]"],
        check=True, capture_output=True, text=True).stdout
    found = {}
    for line in out.splitlines():
        m = re.match(r"(\S+ v\S+)(?: \(.*?\))? \[(.*)\]", line.strip())
        if m:
            found.setdefault(m.group(1), set()).update(f for f in m.group(2).split(",") if f)
    return found


normal = features("normal,build")
with_dev = features("normal,build,dev")
differ = [(k, sorted(with_dev[k] - normal[k])) for k in sorted(normal)
          if k in with_dev and normal[k] != with_dev[k]]
for crate, added in differ:
    print(f"feature set split: the dev-dependencies add {added} to {crate}")
if differ:
    sys.exit(1)
print("ok: cargo build --workspace and cargo test --workspace resolve the same features")
