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
"""

from __future__ import annotations

import contextlib
import io
import json
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


def main() -> None:
    with contextlib.redirect_stdout(io.StringIO()):
        import ChannelAttribution as ca
    from mam import MAM

    grouped = pd.concat([
        pd.DataFrame({"journey": PATHS["path"], "converted": True,
                      "occurrences": PATHS["conversions"]}),
        pd.DataFrame({"journey": PATHS["path"], "converted": False,
                      "occurrences": PATHS["nulls"]}),
    ])
    mam = MAM(df=grouped, format_type="grouped_journey", channels_colname="journey",
              journey_with_conv_colname="converted", occurrences_colname="occurrences",
              path_separator=" > ")
    removal = mam.run_markov(transition_to_same_state=False).metadata["removal_effect"]
    out = {
        "paths": PATHS.to_dict(orient="list"),
        "dp6_mam_2.1.1_removal_effects_order1": removal["removal_effect"].to_dict(),
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
    target = Path(__file__).with_name("attribution_reference.json")
    target.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
