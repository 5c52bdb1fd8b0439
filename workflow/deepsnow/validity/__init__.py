"""Metric validity: which metric can tell good synthetic snow from bad.

A "perfect" translation (real snowy test patches, or on the simulator the reachable paired
truth) is degraded step by step along ladders of known severity (:mod:`.ladders`); every metric
of the run is computed at every step against the real snowy test patches, with a bootstrap
interval, and summarised by its rank correlation with the severity and its sensitivity
(:mod:`.stats`). :mod:`.run` builds the sets, embeds them and writes ``metrics/validity.csv``
(``deepsnow metrics validity``).
"""
