"""Alignment analytics: measure how well sales and marketing work together.

Heavy imports (pandas, ibis, statsmodels) stay inside the modules that need them, so that
``import alignment`` and the command line start fast.
"""

__version__ = "0.1.0"
