"""Time alignment.attribution against ChannelAttribution and DP6's marketing-attribution-models.

A script, not a test. It generates aggregated path data (default: 1,000,000 journeys over 12
channels, about 90,000 distinct paths, seed 7), times parsing plus Markov order 1..4, Shapley
and the rule-based models, and, when they are importable in the same interpreter, the peers:

- ``ChannelAttribution`` (pip ChannelAttribution): ``markov_model(df, "path", "conversions",
  var_null="nulls", order=k)`` with its defaults (simulation, nsim_start=1e5, conv_par=0.05);
- DP6 ``mam`` (pip marketing-attribution-models >= 2): ``MAM(format_type="grouped_journey")``,
  ``run_markov()`` (order 1; exact, so its removal effects are compared too) and
  ``run_shapley(max_size=<all channels>)`` with its conv_rate game: each converting channel
  set splits its conversions as ours does, but DP6 values a coalition by the rate of exactly
  that set, ours by the sum of the rates of its observed subsets (never negative credit).

It prints time ratios and the largest absolute credit difference per channel, and writes
``benchmarks/results/attribution.csv`` (git-ignored). Run with the peers' interpreter::

    python -m venv /tmp/peers && /tmp/peers/bin/pip install ChannelAttribution matplotlib \\
        marketing-attribution-models pyarrow scipy
    PYTHONPATH=src /tmp/peers/bin/python benchmarks/attribution.py

Options: ``--journeys N --channels C --seed S --orders 1,2,3,4 --repeat R --skip-peers``.

Scaling table (ours only): ``--scaling 10000,100000,1000000`` times parsing, Markov order 1..4
(exact) and exact Shapley on 10 thousand, 100 thousand and 1 million distinct paths drawn from
the same chain (:func:`make_distinct_paths`), prints how the cost grows and writes
``benchmarks/results/attribution_scaling.csv``::

    .venv/bin/python benchmarks/attribution.py --scaling 10000,100000,1000000
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alignment import attribution

log = logging.getLogger("benchmarks.attribution")
RESULTS = Path(__file__).resolve().parent / "results"
MAX_LENGTH = 16  # touches per journey; keeps a path's code below 13**16 < 2**63


def make_paths(n_journeys: int, n_channels: int, seed: int,
               journey_seed: int | None = None) -> pd.DataFrame:
    """Aggregated paths from journeys simulated by a first-order chain with channel effects.

    Journey length is 1 + Geometric(0.5) for 75 % of journeys and 1 otherwise (mean 2.5,
    at most 16 touches); the first channel
    follows a Zipf-like popularity, each next one a random transition matrix that favours
    staying near the previous channel; a journey converts with a logistic probability rising
    with the distinct channels it touched. Returns path (channels joined by ">"), conversions,
    nulls and value (revenue, log-normal per conversion).

    ``seed`` draws the chain (transitions, channel effects); ``journey_seed``, when given,
    draws the journeys from that chain with another stream, so batches with different journey
    seeds come from one chain (``None``: one stream for both, as before).
    """
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, n_channels + 1) ** 0.8
    popularity /= popularity.sum()
    transition = rng.dirichlet(np.full(n_channels, 0.6), size=n_channels) + 0.5 * popularity
    transition /= transition.sum(axis=1, keepdims=True)
    cumulative = np.cumsum(transition, axis=1)
    draws = rng if journey_seed is None else np.random.default_rng(journey_seed)
    lengths = np.minimum(1 + draws.geometric(0.5, size=n_journeys), MAX_LENGTH)
    lengths[draws.random(n_journeys) < 0.25] = 1
    codes = np.zeros((n_journeys, MAX_LENGTH), dtype=np.int64)
    codes[:, 0] = draws.choice(n_channels, size=n_journeys, p=popularity)
    for step in range(1, MAX_LENGTH):
        u = draws.random(n_journeys)[:, None]
        codes[:, step] = (u > cumulative[codes[:, step - 1]]).sum(axis=1)
    codes = np.minimum(codes, n_channels - 1)
    touched = np.zeros((n_journeys, n_channels), dtype=bool)
    for step in range(MAX_LENGTH):
        live = lengths > step
        touched[np.flatnonzero(live), codes[live, step]] = True
    effect = rng.normal(0.0, 0.5, size=n_channels)
    logit = -3.2 + touched @ effect + 0.25 * np.minimum(lengths, 6)
    converted = draws.random(n_journeys) < 1.0 / (1.0 + np.exp(-logit))
    key = np.zeros(n_journeys, dtype=np.int64)
    for step in range(MAX_LENGTH):
        key = np.where(lengths > step, key * (n_channels + 1) + codes[:, step] + 1, key)
    keys, inverse = np.unique(key, return_inverse=True)
    conversions = np.bincount(inverse, weights=converted, minlength=len(keys))
    journeys = np.bincount(inverse, minlength=len(keys))
    revenue = np.where(converted, draws.lognormal(7.0, 0.8, size=n_journeys), 0.0)
    value = np.bincount(inverse, weights=revenue, minlength=len(keys))
    names = np.array([f"ch{c:02d}" for c in range(n_channels)])
    return pd.DataFrame(
        {
            "path": [_decode(k, n_channels, names) for k in keys],
            "conversions": conversions.astype(np.int64),
            "nulls": (journeys - conversions).astype(np.int64),
            "value": value,
        }
    )


def _decode(key: int, n_channels: int, names: np.ndarray) -> str:
    parts = []
    key = int(key)
    while key:
        key, digit = divmod(key, n_channels + 1)
        parts.append(names[digit - 1])
    return " > ".join(reversed(parts))


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Best wall time of ``repeat`` runs, in seconds, and the last result."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def run_ours(data: pd.DataFrame, orders: list[int], repeat: int) -> tuple[list[dict], dict]:
    """Time parse + each model; return rows for the results table and the credit Series."""
    rows, credits = [], {}
    t_parse, paths = timed(lambda: attribution.parse_paths(data, sep=">", value_col="value"),
                           repeat)
    rows.append({"tool": "alignment", "task": "parse", "seconds": t_parse})
    log.info("parse: %.3f s, %d distinct paths, %d channels", t_parse, paths.n_paths,
             len(paths.channels))
    for k in orders:
        t, res = timed(lambda k=k: attribution.attribute(paths, "markov", k), repeat)
        rows.append({"tool": "alignment", "task": f"markov_order{k}", "seconds": t,
                     "parse_plus_seconds": t + t_parse})
        credits[f"markov_order{k}"] = res.credit
        credits[f"removal_order{k}"] = res.removal_effects
        log.info("markov order %d: %.3f s (parse + model %.3f s)", k, t, t + t_parse)
    t, res = timed(lambda: attribution.attribute(paths, "shapley"), repeat)
    rows.append({"tool": "alignment", "task": "shapley_exact", "seconds": t})
    credits["shapley"] = res.credit
    t, res = timed(lambda: attribution.attribute(paths, "shapley", shapley_method="sample"),
                   repeat)
    rows.append({"tool": "alignment", "task": "shapley_sample_2000", "seconds": t,
                 "max_abs_diff": float((res.credit - credits["shapley"]).abs().max()),
                 "note": "vs exact; 95% Hoeffding bound max "
                         f"{float(res.approx_error.max()):.1f}"})
    for model in ("linear", "u_shaped", "time_decay"):
        t, _ = timed(lambda model=model: attribution.attribute(paths, model), repeat)
        rows.append({"tool": "alignment", "task": model, "seconds": t})
    t, _ = timed(lambda: attribution.bootstrap(paths, "markov", n_boot=200), 1)
    rows.append({"tool": "alignment", "task": "bootstrap_markov_order1_B200", "seconds": t})
    log.info("bootstrap markov order 1, B=200: %.2f s", t)
    return rows, credits


def run_channel_attribution(data: pd.DataFrame, orders: list[int], credits: dict,
                            t_parse: float, repeat: int) -> list[dict]:
    """ChannelAttribution's markov_model with its defaults, one order at a time (best of
    ``repeat`` runs, as ours)."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            import ChannelAttribution as ca  # noqa: N813
    except Exception as exc:  # noqa: BLE001 - report any import failure and go on
        log.warning("ChannelAttribution not importable: %s", exc)
        return []
    rows = []
    frame = data[["path", "conversions", "nulls", "value"]]
    for k in orders:
        def run(k: int = k) -> pd.DataFrame:
            with contextlib.redirect_stdout(io.StringIO()):
                return ca.markov_model(frame, "path", "conversions", var_null="nulls", order=k,
                                       sep=">", verbose=False, flg_pro=False)
        t, out = timed(run, repeat)
        theirs = out.set_index("channel_name")["total_conversions"] if isinstance(
            out, pd.DataFrame) else out["result"].set_index("channel_name")["total_conversions"]
        ours = credits[f"markov_order{k}"]
        diff = float((theirs.reindex(ours.index) - ours).abs().max())
        ours_t = next(r for r in ROWS if r["task"] == f"markov_order{k}")["parse_plus_seconds"]
        rows.append({"tool": "ChannelAttribution", "task": f"markov_order{k}", "seconds": t,
                     "ratio_peer_over_ours": t / ours_t, "max_abs_diff": diff,
                     "note": "simulation (nsim_start=1e5, conv_par=0.05)"})
        log.info("ChannelAttribution order %d: %.2f s (ours parse+model %.3f s, %.1fx); "
                 "max |credit diff| %.2f conversions", k, t, ours_t, t / ours_t, diff)
    return rows


def run_dp6(data: pd.DataFrame, credits: dict, n_channels: int, repeat: int) -> list[dict]:
    """DP6 MAM (polars rewrite, 2.x): grouped journeys, Markov order 1 and Shapley (best of
    ``repeat`` runs, as ours)."""
    try:
        from mam import MAM
    except Exception as exc:  # noqa: BLE001
        log.warning("marketing-attribution-models (mam) not importable: %s", exc)
        return []
    grouped = pd.concat([
        pd.DataFrame({"journey": data["path"], "converted": True,
                      "occurrences": data["conversions"], "revenue": data["value"]}),
        pd.DataFrame({"journey": data["path"], "converted": False,
                      "occurrences": data["nulls"], "revenue": 0.0}),
    ])
    grouped = grouped[grouped["occurrences"] > 0].reset_index(drop=True)
    rows = []
    t_init, mam = timed(lambda: MAM(df=grouped, format_type="grouped_journey",
                                    channels_colname="journey",
                                    journey_with_conv_colname="converted",
                                    occurrences_colname="occurrences", path_separator=" > "),
                       repeat)
    t, res = timed(lambda: mam.run_markov(transition_to_same_state=False), repeat)
    theirs = _mam_credit(res)
    removal = res.metadata["removal_effect"]["removal_effect"]
    ours_t = next(r for r in ROWS if r["task"] == "markov_order1")["parse_plus_seconds"]
    rows.append({"tool": "dp6_mam", "task": "markov_order1", "seconds": t_init + t,
                 "ratio_peer_over_ours": (t_init + t) / ours_t,
                 "max_abs_diff": float((theirs.reindex(credits["markov_order1"].index)
                                        - credits["markov_order1"]).abs().max()),
                 "max_abs_removal_diff": float((removal.reindex(credits["removal_order1"].index)
                                                - credits["removal_order1"]).abs().max()),
                 "note": "credit split per journey by removal effect (not global)"})
    log.info("DP6 markov: %.2f s (%.1fx); removal effects differ by at most %.2e",
             t_init + t, (t_init + t) / ours_t, rows[-1]["max_abs_removal_diff"])
    t, res = timed(lambda: mam.run_shapley(max_size=n_channels, value_column="conv_rate"),
                   repeat)
    theirs = _mam_credit(res)
    ours_t = next(r for r in ROWS if r["task"] == "shapley_exact")["seconds"] + next(
        r for r in ROWS if r["task"] == "parse")["seconds"]
    rows.append({"tool": "dp6_mam", "task": "shapley", "seconds": t_init + t,
                 "ratio_peer_over_ours": (t_init + t) / ours_t,
                 "max_abs_diff": float((theirs.reindex(credits["shapley"].index)
                                        - credits["shapley"]).abs().max()),
                 "note": "coalition worth: DP6 rate of exactly S, ours sum of subset rates"})
    log.info("DP6 shapley: %.2f s (%.1fx)", t_init + t, (t_init + t) / ours_t)
    return rows


def _mam_credit(res: Any) -> pd.Series:
    frame = res.to_pandas() if hasattr(res, "to_pandas") else res.aggregated.to_pandas()
    return frame.set_index("channels")["attribution"].astype(float)


def make_distinct_paths(n_paths: int, n_channels: int, seed: int,
                        batch: int = 2_000_000) -> pd.DataFrame:
    """The ``n_paths`` most frequent distinct paths of :func:`make_paths`' chain.

    Journeys are drawn from the chain of ``seed`` in batches (journey seeds ``seed``,
    ``seed + 1``, ...) and their path counts summed until at least ``n_paths`` distinct paths
    exist; the most frequent ``n_paths``
    (ties by path) are kept, so a smaller table is the head of a larger one. Distinct paths
    grow slower than journeys (about 90 thousand in the first million).
    """
    total: pd.DataFrame | None = None
    batch_seed = seed
    while total is None or len(total) < n_paths:
        part = make_paths(batch, n_channels, seed, journey_seed=batch_seed)
        batch_seed += 1
        total = part if total is None else (
            pd.concat([total, part]).groupby("path", as_index=False, sort=False).sum()
        )
        log.info("  %d batches of %d journeys: %d distinct paths", batch_seed - seed, batch,
                 len(total))
    frequency = total["conversions"] + total["nulls"]
    order = np.lexsort((total["path"].to_numpy(), -frequency.to_numpy()))
    return total.iloc[order[:n_paths]].reset_index(drop=True)


def run_scaling(sizes: list[int], orders: list[int], n_channels: int, seed: int,
                repeat: int) -> pd.DataFrame:
    """Seconds of parsing, Markov order k (exact) and exact Shapley per number of paths."""
    largest = make_distinct_paths(max(sizes), n_channels, seed)
    rows = []
    for size in sorted(sizes):
        data = largest.iloc[:size]
        row: dict[str, Any] = {"distinct_paths": size, "channels": n_channels,
                               "journeys": int(data[["conversions", "nulls"]].to_numpy().sum())}
        row["parse_s"], paths = timed(
            lambda data=data: attribution.parse_paths(data, sep=">", value_col="value"), repeat)
        for k in orders:
            row[f"markov_order{k}_s"], _ = timed(
                lambda k=k, paths=paths: attribution.attribute(paths, "markov", k), repeat)
        row["shapley_exact_s"], _ = timed(
            lambda paths=paths: attribution.attribute(paths, "shapley"), repeat)
        log.info("%s", "  ".join(f"{k} {v:.3g}" for k, v in row.items()))
        rows.append(row)
    table = pd.DataFrame(rows)
    smallest = table.iloc[0]
    for column in [c for c in table.columns if c.endswith("_s")]:
        table[column.replace("_s", "_growth")] = table[column] / smallest[column]
    return table


ROWS: list[dict] = []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--journeys", type=int, default=1_000_000)
    parser.add_argument("--channels", type=int, default=12)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--orders", default="1,2,3,4")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-peers", action="store_true")
    parser.add_argument("--scaling", default="",
                        help="distinct-path counts for the scaling table, e.g. 10000,100000")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    orders = [int(k) for k in args.orders.split(",")]
    if args.scaling:
        sizes = [int(n) for n in args.scaling.split(",")]
        table = run_scaling(sizes, orders, args.channels, args.seed, args.repeat)
        RESULTS.mkdir(exist_ok=True)
        out = RESULTS / "attribution_scaling.csv"
        table.to_csv(out, index=False)
        log.info("\n%s\nwritten to %s", table.to_string(index=False, float_format="%.3g"), out)
        return
    t0 = time.perf_counter()
    data = make_paths(args.journeys, args.channels, args.seed)
    log.info("generated %d journeys, %d distinct paths, %d conversions in %.1f s",
             int(data[["conversions", "nulls"]].to_numpy().sum()), len(data),
             int(data["conversions"].sum()), time.perf_counter() - t0)
    rows, credits = run_ours(data, orders, args.repeat)
    ROWS.extend(rows)
    if not args.skip_peers:
        t_parse = rows[0]["seconds"]
        ROWS.extend(run_channel_attribution(data, orders, credits, t_parse, args.repeat))
        ROWS.extend(run_dp6(data, credits, args.channels, args.repeat))
    RESULTS.mkdir(exist_ok=True)
    table = pd.DataFrame(ROWS)
    table.insert(0, "journeys", args.journeys)
    table.insert(1, "distinct_paths", len(data))
    table.insert(2, "channels", args.channels)
    out = RESULTS / "attribution.csv"
    table.to_csv(out, index=False)
    log.info("\n%s\nwritten to %s", table.drop(columns=["journeys", "distinct_paths",
                                                        "channels"]).to_string(), out)
    report_targets(table)


def report_targets(table: pd.DataFrame) -> None:
    """Print the issue's two targets as met / not met (ours vs ChannelAttribution's default)."""
    def seconds(tool: str, task: str, column: str = "seconds") -> float | None:
        match = table[(table["tool"] == tool) & (table["task"] == task)]
        return float(match[column].iloc[0]) if len(match) else None

    ours_1 = seconds("alignment", "markov_order1", "parse_plus_seconds")
    theirs_1 = seconds("ChannelAttribution", "markov_order1")
    if ours_1 is not None and theirs_1 is not None:
        verdict = "met" if ours_1 <= theirs_1 else "NOT met"
        log.info("parse + exact Markov order 1 at least as fast as ChannelAttribution: %s "
                 "(%.2f s vs %.2f s)", verdict, ours_1, theirs_1)
    ours_3 = seconds("alignment", "markov_order3", "parse_plus_seconds")
    if ours_3 is not None:
        log.info("parse + exact Markov order 3 within 10 s: %s (%.2f s)",
                 "met" if ours_3 <= 10 else "NOT met", ours_3)


if __name__ == "__main__":
    main()
