"""Which bands the patches and the networks carry, and how reflectance meets the network (docs/bands.md).

``patches.encoding`` says how a patch holds its bands:

- ``rgb8`` (default, the paper's setting): B04, B03, B02 rendered to ``uint8`` RGB
  (:func:`deepsnow.data.render.render_rgb`); the network sees ``x = v / 127.5 - 1``.
- ``reflectance``: the ``patches.bands`` as ``uint16`` surface reflectance x 10000, in the order given.
  The network sees each band through a FIXED per-band mapping, the same for every run and every
  dataset (no statistics of any data, so nothing of the test set leaks into training):

      x = 2 * clip(r / UNIT_REFLECTANCE[band], 0, 1) - 1

  quantised to 16 bits (the "unit code" ``q = round(65535 * clip(r / s_b, 0, 1))``, then
  ``x = q / 32767.5 - 1``; the quantisation step, s_b / 65535 <= 2e-5 reflectance, is below the
  1e-4 step of the stored reflectance). Network output goes back the same way:
  ``r = s_b * (x + 1) / 2``, rounded to reflectance x 10000.

The scales ``UNIT_REFLECTANCE`` come from the physics of the surfaces the run is about (USGS and
ECOSTRESS spectral libraries, see docs/bands.md): fresh snow reflects ~0.9-1.0 across the visible and
~0.7-0.85 in the NIR, and sunlit slopes exceed 1 in L2A, so the visible, red-edge and NIR bands keep
headroom to 1.2; in the SWIR snow is dark (B11 0.02-0.15, B12 0.01-0.08) and the brightest common
surfaces are cloud and dry bare soil (B11 <= ~0.5, B12 <= ~0.4), so B11 maps 0.6 and B12 0.5 to the top
of the range, keeping the SWIR's resolution where snow and cloud separate.
"""

from __future__ import annotations

import numpy as np

from deepsnow import DeepsnowError

#: The Sentinel-2 L2A reflectance bands a patch may carry (as ``deepsnow.data.scene.REFLECTANCE_BANDS``).
BAND_NAMES = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
#: The paper's bands, rendered as RGB: ``patches.bands``'s default.
RGB_BANDS = ("B04", "B03", "B02")
ENCODINGS = ("rgb8", "reflectance")
#: Reflectance stored x this in a ``reflectance`` patch (as in a scene).
SCALE = 10000
#: Per band, the reflectance mapped to the top (+1) of the network's range; 0 maps to -1 (module docstring).
UNIT_REFLECTANCE = {
    "B02": 1.2, "B03": 1.2, "B04": 1.2,  # visible: fresh snow ~0.9-1.0, more on sunlit slopes
    "B05": 1.2, "B06": 1.2, "B07": 1.2,  # red edge: snow ~0.9, vegetation rising 0.1 -> 0.4
    "B08": 1.2, "B8A": 1.2,  # NIR: snow 0.7-0.85, vegetation 0.3-0.5, bright cloud ~0.8-1
    "B11": 0.6,  # SWIR 1610 nm: snow 0.02-0.15, vegetation 0.15-0.25, cloud 0.3-0.5, dry soil <= 0.45
    "B12": 0.5,  # SWIR 2190 nm: snow 0.01-0.08, vegetation 0.08-0.12, cloud and dry soil <= 0.4
}
#: Largest unit code (16 bits).
CODE_MAX = 65535


def check_bands(bands, encoding: str, key: str = "patches.bands") -> list[str]:
    """Problems (lines naming ``key``) of a band list for an encoding; [] when it is usable."""
    bands = list(bands)
    allowed = f"allowed: {list(BAND_NAMES)}"
    if encoding not in ENCODINGS:
        return [f"key 'patches.encoding': {encoding!r} is not one of {list(ENCODINGS)}"]
    if not bands:
        return [f"key '{key}': empty; name at least one band ({allowed})"]
    unknown = [b for b in bands if b not in BAND_NAMES]
    if unknown:
        return [f"key '{key}': unknown band names {unknown} ({allowed})"]
    repeated = sorted({b for b in bands if bands.count(b) > 1})
    if repeated:
        return [f"key '{key}': bands {repeated} given more than once"]
    if encoding == "rgb8" and tuple(bands) != RGB_BANDS:
        return [
            f"key '{key}': {bands} with patches.encoding rgb8, which renders exactly {list(RGB_BANDS)} as 8-bit "
            "RGB; set patches.encoding: reflectance to carry other bands"
        ]
    return []


def unit_scales(bands) -> list[float]:
    """``UNIT_REFLECTANCE`` of each band, in order (a :class:`DeepsnowError` naming an unknown band)."""
    unknown = [b for b in bands if b not in UNIT_REFLECTANCE]
    if unknown:
        raise DeepsnowError(f"bands {unknown} have no fixed network mapping (known: {list(BAND_NAMES)})")
    return [UNIT_REFLECTANCE[b] for b in bands]


def encode_units(dn: np.ndarray, scales) -> np.ndarray:
    """Reflectance x 10000 ``(..., C) uint16`` -> unit codes ``(..., C) uint16`` (module docstring)."""
    s = np.asarray(scales, dtype=np.float64) * SCALE
    unit = np.clip(np.asarray(dn, dtype=np.float64) / s, 0.0, 1.0)
    return np.rint(unit * CODE_MAX).astype(np.uint16)


def decode_units(codes: np.ndarray, scales) -> np.ndarray:
    """Unit codes ``(..., C) uint16`` -> reflectance x 10000 ``(..., C) uint16``."""
    s = np.asarray(scales, dtype=np.float64) * SCALE
    return np.rint(np.asarray(codes, dtype=np.float64) / CODE_MAX * s).astype(np.uint16)


def code_max(dtype) -> int:
    """The largest code of an image dtype the networks take: 255 (uint8 RGB) or 65535 (uint16 unit codes)."""
    dtype = np.dtype(dtype)
    if dtype == np.uint8:
        return 255
    if dtype == np.uint16:
        return CODE_MAX
    raise DeepsnowError(f"network images are uint8 (RGB) or uint16 (unit codes), got {dtype}")


def image_of(arrays: dict, path, what: str = "patches") -> tuple[str, tuple[str, ...], str]:
    """``(array name, bands, encoding)`` of a patches or dataset file's arrays, checked: ``rgb`` ``(N,S,S,3)
    uint8`` (no ``encoding`` array: rgb8 B04 B03 B02), or with ``encoding`` = reflectance a ``reflectance``
    ``(N,S,S,C) uint16`` array whose ``bands`` ``(C,)`` name its channels. Errors name the file."""
    if "encoding" not in arrays:
        key, bands, encoding, dtype = "rgb", RGB_BANDS, "rgb8", np.uint8
    else:
        encoding = str(np.asarray(arrays["encoding"]))
        if encoding != "reflectance" or "bands" not in arrays:
            raise DeepsnowError(
                f"{path}: array 'encoding' is {encoding!r}{'' if 'bands' in arrays else ' and there is no array bands'}; "
                "a file with an 'encoding' holds reflectance patches named by a 'bands' array"
            )
        key, bands, dtype = "reflectance", tuple(str(b) for b in np.asarray(arrays["bands"]).ravel()), np.uint16
        problems = check_bands(bands, encoding, key=f"{path}: bands")
        if problems:
            raise DeepsnowError("; ".join(problems))
    if key not in arrays:
        raise DeepsnowError(f"{path}: missing arrays [{key!r}] ({what} file, encoding {encoding}); found {sorted(arrays)}")
    img = arrays[key]
    if img.ndim != 4 or img.shape[3] != len(bands) or img.dtype != dtype:
        raise DeepsnowError(
            f"{path}: {key!r} must be (N, S, S, {len(bands)}) {np.dtype(dtype)} for bands {list(bands)}, "
            f"found {img.shape} {img.dtype}"
        )
    return key, bands, encoding
