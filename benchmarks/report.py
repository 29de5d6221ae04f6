"""Time the whole quarterly report (`alignment report`) on the small and medium demo.

Run: ``.venv/bin/python benchmarks/report.py [--scales small,medium]``. Prints the time of
each step (validation, each study notebook, the executive summary, rendering) and the total,
and writes ``benchmarks/results/report.csv``. Target (issue 8): the full report on `small`,
all notebooks + HTML + PDF, in under 60 s on a 2-core machine. Studies run with 2 workers, so
the "studies" step is shorter than the sum of the study rows.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

from alignment import demo, pipeline
from alignment.params import load_report_params, project_root

RESULTS = Path(__file__).parent / "results"


def time_report(scale: str, workdir: Path) -> list[dict[str, object]]:
    """Build the demo at ``scale`` and the 2026Q3 report on it; one row per step."""
    data = workdir / f"demo-{scale}"
    started = time.perf_counter()
    demo.generate_demo(data, seed=7, scale=scale)
    demo_s = time.perf_counter() - started
    params_file = project_root() / "params" / "2026Q3.yaml"
    started = time.perf_counter()
    result = pipeline.build_report(
        load_report_params(params_file),
        params_file=params_file,
        data_dir=data,
        out_root=workdir / f"build-{scale}",
        renderer="offline",
    )
    total = time.perf_counter() - started
    rows = [{"scale": scale, "step": "demo data (not part of the report)", "seconds": demo_s}]
    rows += [{"scale": scale, "step": k, "seconds": v} for k, v in result.timings.items()]
    rows.append({"scale": scale, "step": "report total", "seconds": total})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="small,medium")
    args = parser.parse_args()
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        for scale in args.scales.split(","):
            rows += time_report(scale.strip(), Path(tmp))
    print(f"{'scale':<8} {'step':<36} {'seconds':>8}")
    for row in rows:
        print(f"{row['scale']:<8} {row['step']:<36} {row['seconds']:>8.1f}")
    RESULTS.mkdir(exist_ok=True)
    with (RESULTS / "report.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["scale", "step", "seconds"])
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()
