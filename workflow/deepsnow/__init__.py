"""deepsnow: synthetic after-snowfall Sentinel-2 imagery with cycleGAN, and how far to trust it.

One subpackage per workflow stage (``data``, ``gan``, ``features``, ``metrics``,
``figures``, ``synthesize``, ``change``) and one for the provenance sidecars every stage
writes (``provenance``); ``deepsnow.cli`` is the ``deepsnow`` command.
"""

__version__ = "0.1.0"


class DeepsnowError(Exception):
    """An error the user can act on: the message names the file or key and what was expected.

    The command line prints it without a traceback and exits non-zero.
    """
