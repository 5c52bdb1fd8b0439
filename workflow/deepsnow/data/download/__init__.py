"""Real Sentinel-2 L2A scenes: Sentinel Hub / Copernicus Data Space (``sentinelhub``) or a STAC API (``stac``).

``download_scene(params, aoi, season, output)`` writes one scene GeoTIFF in
the format of docs/formats.md (the simulator's), for one area of interest
and one season, from the source named in ``params["source"]``; see
:mod:`deepsnow.data.download.sentinelhub` and :mod:`deepsnow.data.download.stac`.
Failures raise :class:`~deepsnow.data.download.common.DownloadError` (a
``DeepsnowError`` naming the area and season) and leave no output behind.
Credentials and OAuth tokens are redacted from every error message, log record
and warning of the process (:func:`~deepsnow.data.download.common.redact`).
"""

from __future__ import annotations

import logging

from deepsnow import DeepsnowError
from deepsnow.areas import SEASONS, find_area
from deepsnow.data.download.common import DownloadError, download_bands, install_log_redaction

log = logging.getLogger("deepsnow.download")

SOURCES = ("sentinelhub", "stac")


def download_scene(
    params: dict, aoi: str, season: str, output, cache=None, source: str | None = None, bands=None
) -> dict:
    """Download one area's scene of one season to ``output``; return a JSON-able summary.

    ``bands``: the run's ``patches.bands`` (default the RGB ones); the download fetches those and the
    mask's (:func:`~deepsnow.data.download.common.download_bands`), and the scene holds exactly them."""
    install_log_redaction()  # remote text and third-party DEBUG lines can carry credentials or tokens
    source = source or params["source"]
    if source not in SOURCES:
        raise DeepsnowError(
            f"source {source!r} has nothing to download (use 'deepsnow simulate' for the simulator); "
            f"choose one of {list(SOURCES)} with data.source or --source"
        )
    if season not in SEASONS:
        raise DeepsnowError(f"--season {season!r}: expected one of {list(SEASONS)}")
    fetched = download_bands(bands)
    area = find_area(params, aoi)
    if source == "sentinelhub":
        from deepsnow.data.download import sentinelhub as backend
    else:
        from deepsnow.data.download import stac as backend
    return backend.download(params, area, season, output, cache=cache, bands=fetched)


__all__ = ["download_scene", "DownloadError", "SOURCES"]
