"""Synthetic change products: whole scenes translated to snow, as COGs with a STAC catalog.

The synthesize stage (``deepsnow synthesize scene`` / ``deepsnow synthesize catalog``,
rules in ``workflow/rules/synthesize.smk``) is what the paper's synthetic imagery is
for: change-detection users get, for every held-out test area (and every scene of
``synthesize.scenes``), the real snow-free scene translated to "after snowfall" by a
chosen checkpoint's generator, on exactly the input's grid.

- :mod:`deepsnow.synthesize.products`: choosing the checkpoint (``synthesize.epoch``),
  checking the input, translating it seam-free (whole-scene instance norm,
  :mod:`deepsnow.gan.translate`) and writing ``snow.tif`` (a Cloud-Optimized GeoTIFF
  written by GDAL's COG driver, deepsnow.cog) and optionally ``snow_reflectance.tif``.
- :mod:`deepsnow.synthesize.catalog`: the STAC catalog (pystac) of every product, with
  the before / real after / truth scenes and the checkpoint as assets, validated offline.
"""
