"""Write the reference values for ``alignment.lift.estimate_did`` and ``event_study``.

Run from the project root:  .venv/bin/python tests/results/make_did_reference.py

It writes two files beside itself:

- ``did_reference_data.csv``: a seeded synthetic panel (60 units in 30 regions, 8 periods);
- ``did_reference.json``: statsmodels OLS fits of that panel through the *formula* API
  (an independent path from the numpy design matrices of ``alignment.lift``), at full
  precision, with the formula and fit call of each reference in ``cmdline``.

The data file is committed, so the tests never depend on the random generator; re-running
this script must reproduce both files byte for byte with the versions recorded in the JSON.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import statsmodels
import statsmodels.formula.api as smf

HERE = Path(__file__).parent
SEED = 20261125


def make_panel(seed: int = SEED) -> pd.DataFrame:
    """60 units x 8 periods; regions of 2 units; treated regions roll out at period 4.

    ``first_treated`` is a staggered roll-out (periods 3, 4 or 5; empty = never treated) for
    the event study; ``treated``/``post`` is the common 2x2 roll-out.
    """
    rng = np.random.default_rng(seed)
    n_units, n_periods = 60, 8
    unit = np.repeat(np.arange(n_units), n_periods)
    period = np.tile(np.arange(1, n_periods + 1), n_units)
    region = unit // 2
    treated = (region < 15).astype(int)
    post = (period >= 4).astype(int)
    first_by_unit = np.where(np.arange(n_units) < 30, rng.choice([3, 4, 5], n_units), np.nan)
    first_treated = first_by_unit[unit]
    rel = period - first_treated
    y = (
        rng.normal(0, 1, n_units)[unit]  # unit effect
        + rng.normal(0, 0.5, 30)[region]  # region shock (clustering)
        + 0.1 * period
        + 0.4 * treated * post
        + np.where(rel >= 0, 0.3, 0.0)  # staggered effect (NaN >= 0 is False)
        + rng.normal(0, 1, len(unit))
    )
    return pd.DataFrame(
        {
            "unit": [f"u{u:02d}" for u in unit],
            "region": [f"r{r:02d}" for r in region],
            "period": period,
            "treated": treated,
            "post": post,
            "first_treated": first_treated,
            "y": np.round(y, 6),  # 6 decimals so the CSV holds the exact values used
        }
    )


def fit_reference(frame: pd.DataFrame, formula: str, term: str, cov_type: str) -> dict:
    kwargs = {"cov_type": cov_type, "use_t": True}
    if cov_type == "cluster":
        kwargs["cov_kwds"] = {"groups": pd.factorize(frame["region"])[0]}
    fit = smf.ols(formula, frame).fit(**kwargs)
    low, high = fit.conf_int(alpha=0.05).loc[term]
    return {
        "cmdline": f"smf.ols({formula!r}, data).fit(cov_type={cov_type!r}, use_t=True"
        + (", cov_kwds={'groups': region})" if cov_type == "cluster" else ")"),
        "estimate": float(fit.params[term]),
        "se": float(fit.bse[term]),
        "ci_low": float(low),
        "ci_high": float(high),
        "p_value": float(fit.pvalues[term]),
        "n": int(fit.nobs),
        "df": float(getattr(fit, "df_resid_inference", None) or fit.df_resid),
    }


def event_study_reference(frame: pd.DataFrame) -> dict:
    rel = frame["period"] - frame["first_treated"]
    levels = sorted(int(k) for k in rel.dropna().unique() if k != -1)
    data = frame.copy()
    names = []
    for k in levels:
        name = f"ev_m{-k}" if k < 0 else f"ev_p{k}"
        data[name] = (rel == k).astype(float)
        names.append(name)
    formula = "y ~ " + " + ".join(names) + " + C(unit) + C(period)"
    fit = smf.ols(formula, data).fit(
        cov_type="cluster", cov_kwds={"groups": pd.factorize(data["unit"])[0]}, use_t=True
    )
    leads = [n for n, k in zip(names, levels, strict=True) if k <= -2]
    wald = fit.wald_test(", ".join(f"{n} = 0" for n in leads), use_f=True, scalar=True)
    return {
        "cmdline": f"smf.ols({formula!r}, data).fit(cov_type='cluster', use_t=True, "
        "cov_kwds={'groups': unit}); wald_test('<leads> = 0', use_f=True)",
        "rel_periods": levels,
        "coefficients": [float(fit.params[n]) for n in names],
        "se": [float(fit.bse[n]) for n in names],
        "pretrend_stat": float(wald.statistic),
        "pretrend_p": float(wald.pvalue),
        "pretrend_df": int(wald.df_num),
        "n": int(fit.nobs),
    }


def main() -> None:
    frame = make_panel()
    frame.to_csv(HERE / "did_reference_data.csv", index=False)
    frame = pd.read_csv(HERE / "did_reference_data.csv")  # fit exactly what the tests read
    twfe = "y ~ I(treated * post) + C(unit) + C(period)"
    reference = {
        "source": "tests/results/make_did_reference.py",
        "data": "tests/results/did_reference_data.csv",
        "versions": {
            "statsmodels": statsmodels.__version__,
            "pandas": pd.__version__,
            "numpy": np.__version__,
        },
        "did_2x2": {
            cov: fit_reference(frame, "y ~ treated * post", "treated:post", cov)
            for cov in ("nonrobust", "HC1", "cluster")
        },
        "did_twfe_cluster": fit_reference(frame, twfe, "I(treated * post)", "cluster"),
        "event_study": event_study_reference(frame),
    }
    text = json.dumps(reference, indent=2) + "\n"
    (HERE / "did_reference.json").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
