"""Loaders for the reference tasks' data: IMDB reviews, the Nietzsche text, Spanish-English pairs.

Files are found by :mod:`fusedrnn.datasets.locate` (an explicit path, ``$FUSEDRNN_DATA``, then
the user cache folder). Import the loader modules directly, e.g. ``fusedrnn.datasets.imdb``.
"""

from fusedrnn.datasets.locate import DataNotFoundError, find_data_file

__all__ = ["DataNotFoundError", "find_data_file"]
