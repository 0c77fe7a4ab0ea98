"""Where data files are looked for, and the error a user sees when one is missing.

Search order for a file (for example ``"aclImdb.tar.gz"`` or ``"spa-eng/spa.txt"``):

1. an explicit path (the ``--data`` option): the file itself, or a folder holding it;
2. the folder named by the environment variable ``FUSEDRNN_DATA``;
3. the user cache folder, ``$XDG_CACHE_HOME/fusedrnn/data`` (default ``~/.cache/fusedrnn/data``).

A loader may offer to download a missing file from its public location with
:func:`download`; with no network it fails with :class:`DataNotFoundError`, which says which
file is missing, where it was looked for and where to put it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import List, Optional, Sequence, Union

PathLike = Union[str, "os.PathLike[str]"]

ENV_VAR = "FUSEDRNN_DATA"


class DataNotFoundError(FileNotFoundError):
    """A data file is in none of the searched places (the message says where to put it)."""


def cache_dir() -> Path:
    """The user cache folder for fusedrnn: ``$XDG_CACHE_HOME/fusedrnn`` or ``~/.cache/fusedrnn``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "fusedrnn"


def data_cache_dir() -> Path:
    """Where downloaded data files live: ``cache_dir() / "data"``."""
    return cache_dir() / "data"


def candidates(name: str, explicit: Optional[PathLike] = None) -> List[Path]:
    """The paths tried for data file `name`, in search order."""
    out: List[Path] = []
    if explicit is not None:
        p = Path(explicit).expanduser()
        out.append(p if not p.is_dir() else p / name)
        if p.is_dir() and Path(name).name != name:
            out.append(p / Path(name).name)
    env = os.environ.get(ENV_VAR)
    if env:
        out.append(Path(env).expanduser() / name)
    out.append(data_cache_dir() / name)
    return out


def find_data_file(name: str, explicit: Optional[PathLike] = None, *, what: str = "",
                   url: Optional[str] = None, alternatives: Sequence[str] = ()) -> Path:
    """The first existing path for data file `name` (see the module docstring for the order).

    `alternatives` are other acceptable names (an extracted folder instead of an archive, say);
    each is searched in the same places after `name`. When an explicit path is given and exists,
    it wins even if its name differs. Raises :class:`DataNotFoundError` naming the file, every
    place tried, and where to put it (`what` describes the data set; `url` is where to get it).
    """
    if explicit is not None:
        p = Path(explicit).expanduser()
        if p.exists() and not p.is_dir():
            return p
    tried: List[Path] = []
    for n in (name, *alternatives):
        for c in candidates(n, explicit):
            tried.append(c)
            if c.exists():
                return c
    if explicit is not None and not Path(explicit).expanduser().exists():
        raise DataNotFoundError(f"data: {explicit} does not exist")
    label = f"{what} ({name})" if what else name
    where = "\n  ".join(str(t) for t in tried)
    hint = f"\nDownload it from {url} and put it" if url else "\nPut it"
    raise DataNotFoundError(
        f"data file {label} not found. Looked in:\n  {where}{hint} in {data_cache_dir()}, or in a folder named by "
        f"${ENV_VAR}, or pass its path with --data.")


def sha256_of(path: PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk)
            if not block:
                return h.hexdigest()
            h.update(block)


def download(url: str, name: str, sha256: Optional[str] = None, timeout: float = 60.0) -> Path:
    """Fetches `url` into ``data_cache_dir() / name`` atomically and checks its SHA-256.

    Raises :class:`DataNotFoundError` when the network is unreachable (saying where to put the
    file by hand) and ``ValueError`` when the checksum does not match (nothing is kept).
    """
    import urllib.error
    import urllib.request

    dest = data_cache_dir() / name
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (fixed https URLs)
                    while True:
                        block = resp.read(1 << 20)
                        if not block:
                            break
                        out.write(block)
            except (urllib.error.URLError, OSError) as err:
                raise DataNotFoundError(f"could not download {url} ({err}); download it by hand and put it at "
                                        f"{dest}, or pass its path with --data") from None
        if sha256 is not None:
            got = sha256_of(tmp)
            if got != sha256:
                raise ValueError(f"{url}: checksum mismatch (sha256 {got}, expected {sha256}); the file was not kept")
        os.replace(tmp, dest)
        return dest
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
