"""
How fast: the benchmark record
==============================

``bench/compare.py`` times one full-batch :math:`E_{\\text{in}}` and gradient with fastbp and with
the libraries one would otherwise use, side by side in one run, and records everything in
``bench/latest.json``. This example reads that record (it does not rerun the benchmark, which takes
many minutes) and draws, for each network and dtype, each library's time relative to fastbp's.
"""

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

# the record sits in the checkout's bench/ folder, next to this examples/ folder
try:
    here = Path(__file__).resolve().parent
except NameError:                        # run by pasting into an interpreter
    here = Path.cwd()
record_path = next(p / "bench" / "latest.json" for p in (here, *here.parents)
                   if (p / "bench" / "latest.json").exists())
record = json.loads(record_path.read_text())
meta = record["meta"]
print(f"recorded {meta['date']} on {meta['cpu']['model']} ({meta['cpu']['usable_cpus']} cores), "
      f"fastbp {meta['fastbp']['version']} with its {meta['fastbp_kernels']} kernels, "
      f"{meta['threads']} threads")

# %%
# The rows: one per configuration, dtype and library (full-batch runs only)
rows = [r for r in record["rows"] if r["status"] == "ok" and r["impl"] != "reference"
        and r["n"] >= 1000]
cases = sorted({(r["config"], r["dtype"], tuple(r["widths"]), r["n"]) for r in rows},
               key=lambda c: (c[0], c[1] != "float64"))      # float64 first, as in the README
peers = ["numpy", "torch", "torch.compile", "jax", "sklearn"]
times = {(r["config"], r["dtype"], r["impl"]): r["median_s"] for r in rows}

for config, dtype, widths, n in cases:
    ours = times[(config, dtype, "fastbp")]
    line = "  ".join(f"{p} {times[(config, dtype, p)] / ours:4.1f}x" for p in peers
                     if (config, dtype, p) in times)
    print(f"{config} {list(widths)} {dtype} N={n}: fastbp {ours * 1e3:7.2f} ms;  {line}")

# %%
# The chart
# ---------
# Bars above 1: that library took longer than fastbp on the same network, batch and threads.
fig, ax = plt.subplots(figsize=(9, 4.5))
labels = [f"{c} {'f64' if d == 'float64' else 'f32'}" for c, d, _, _ in cases]
pos = np.arange(len(cases))
width = 0.8 / len(peers)
for k, peer in enumerate(peers):
    ratio = [times.get((c, d, peer), np.nan) / times[(c, d, "fastbp")] for c, d, _, _ in cases]
    ax.bar(pos + (k - (len(peers) - 1) / 2) * width, ratio, width, label=peer)
ax.axhline(1, color="black", linewidth=1)
ax.set_xticks(pos, labels)
ax.set_ylabel("time / fastbp's time")
ax.set_title(f"One full-batch gradient, {meta['threads']} threads "
             f"(bench/latest.json, {meta['date'][:10]})")
ax.legend(ncol=5, fontsize=8, loc="upper right")
ax.set_ylim(0, None)
fig.tight_layout()
plt.show()
