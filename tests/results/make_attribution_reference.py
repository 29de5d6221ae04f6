"""Write tests/results/attribution_reference.json: peers' answers on a small fixed path table.

Run with an interpreter that has the peers (they are not project dependencies)::

    python -m venv /tmp/peers
    /tmp/peers/bin/pip install ChannelAttribution==2.2.5 matplotlib \
        marketing-attribution-models==2.1.1
    /tmp/peers/bin/python tests/results/make_attribution_reference.py

- DP6 ``mam`` 2.1.1 ``run_markov(transition_to_same_state=False)``: order-1 removal effects
  from a dense fundamental matrix (``np.linalg.inv``), exact up to rounding.
- ChannelAttribution 2.2.5 ``markov_model(..., order=k, nsim_start=5e6, conv_par=0.002)``:
  credit from simulation, so only close (its median over 10 folds, 0.2 % convergence).
- DP6 ``mam`` 2.1.1 ``run_shapley(max_size=4, value_column="conv_rate")``: each converting
  channel set C splits its conversions in proportion to the Shapley values of the game on C's
  channels with ``v(S)`` = conversion rate of the journeys whose channel set is exactly S
  (exact enumeration, ``V @ W``). Added later without re-running the simulation above::

      /tmp/peers/bin/python tests/results/make_attribution_reference.py --dp6-shapley-only
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path

import pandas as pd

PATHS = pd.DataFrame(
    {
        "path": [
            "search", "search > email", "social > search > email", "email",
            "social", "social > social > search", "display > search", "display",
            "search > display > email > search", "email > email", "social > email",
            "display > social > search > email", "search > social",
        ],
        "conversions": [40, 30, 25, 10, 5, 12, 9, 2, 7, 6, 8, 11, 4],
        "nulls": [400, 120, 60, 90, 300, 50, 70, 250, 20, 40, 60, 25, 80],
    }
)


def dp6_shapley_conv_rate() -> dict[str, float]:
    """DP6's conversion-rate Shapley credit of PATHS (4 channels, so max_size=4 keeps all)."""
    from mam import MAM

    mam = MAM(df=_grouped(), format_type="grouped_journey", channels_colname="journey",
              journey_with_conv_colname="converted", occurrences_colname="occurrences",
              path_separator=" > ")
    frame = mam.run_shapley(max_size=4, value_column="conv_rate").to_pandas()
    return frame.set_index("channels")["attribution"].astype(float).to_dict()


def _grouped() -> pd.DataFrame:
    return pd.concat([
        pd.DataFrame({"journey": PATHS["path"], "converted": True,
                      "occurrences": PATHS["conversions"]}),
        pd.DataFrame({"journey": PATHS["path"], "converted": False,
                      "occurrences": PATHS["nulls"]}),
    ])


def main() -> None:
    target = Path(__file__).with_name("attribution_reference.json")
    if "--dp6-shapley-only" in sys.argv[1:]:
        out = json.loads(target.read_text(encoding="utf-8"))
        out["dp6_mam_2.1.1_shapley_conv_rate"] = dp6_shapley_conv_rate()
        target.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
        return
    with contextlib.redirect_stdout(io.StringIO()):
        import ChannelAttribution as ca
    from mam import MAM

    mam = MAM(df=_grouped(), format_type="grouped_journey", channels_colname="journey",
              journey_with_conv_colname="converted", occurrences_colname="occurrences",
              path_separator=" > ")
    removal = mam.run_markov(transition_to_same_state=False).metadata["removal_effect"]
    out = {
        "paths": PATHS.to_dict(orient="list"),
        "dp6_mam_2.1.1_removal_effects_order1": removal["removal_effect"].to_dict(),
        "dp6_mam_2.1.1_shapley_conv_rate": dp6_shapley_conv_rate(),
        "channelattribution_2.2.5_credit": {},
    }
    for k in (1, 2, 3):
        with contextlib.redirect_stdout(io.StringIO()):
            res = ca.markov_model(PATHS, "path", "conversions", var_null="nulls", order=k,
                                  nsim_start=5e6, conv_par=0.002, verbose=False,
                                  flg_pro=False)
        out["channelattribution_2.2.5_credit"][f"order{k}"] = (
            res.set_index("channel_name")["total_conversions"].to_dict()
        )
    target.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
