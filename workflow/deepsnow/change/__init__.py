"""Change-detection testbed: does a detector rank the same on synthetic snow as on real snow?

- :mod:`deepsnow.change.detectors`: four covariance-based anomalous change detectors on
  co-registered pixel pairs (RX of the difference, chronochrome, covariance
  equalization, hyperbolic ACD), global statistics in float64 with a trace-scaled ridge.
- :mod:`deepsnow.change.implant`: the pixel-swap implant (seeded blobs of the after-image
  replaced by after-pixels from elsewhere) that gives the ground-truth mask.
- :mod:`deepsnow.change.evaluate`: ROC AUC, false-alarm rate at the real pair's 1 % FAR
  threshold and score histograms for the pairs real / synthetic / truth.
- :mod:`deepsnow.change.registry`: detectors by name (``change.detectors``): the built-ins and
  those installed packages provide through the entry-point group ``deepsnow.detectors``.
- :mod:`deepsnow.change.ranking`: Kendall's tau between the detectors' AUC rankings on two pairs.
- :mod:`deepsnow.change.benchmark`: an area's pairs (implants in) and implanted-change truth as COGs,
  ``change/benchmark/<area>/``, written by windows; :mod:`deepsnow.change.catalog` their STAC
  collection (label extension); :mod:`deepsnow.change.score` any score map on them, scored as the
  built-in detectors are.
- :mod:`deepsnow.change.commands`: ``deepsnow change area``, ``catalog``, ``score`` and ``summary``.
"""
