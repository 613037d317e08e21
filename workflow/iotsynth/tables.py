"""Write result tables as CSV for programs and Markdown for readers."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

logger = logging.getLogger(__name__)


def write_table(frame: pd.DataFrame, stem: str | Path) -> tuple[Path, Path]:
    """Write a table as ``<stem>.csv`` and ``<stem>.md``.

    Parameters
    ----------
    frame : pandas.DataFrame
        The table. Its index is not written, so keep row labels in a column.
    stem : str or pathlib.Path
        Output path without suffix, e.g. ``results/tables/table06_split``.
        Missing parent folders are created.

    Returns
    -------
    csv_path, markdown_path : pathlib.Path
        The two files written.

    Notes
    -----
    The Markdown table comes from :meth:`pandas.DataFrame.to_markdown`, which
    needs the ``tabulate`` package.
    """
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    csv_path = stem.with_name(stem.name + ".csv")
    markdown_path = stem.with_name(stem.name + ".md")

    frame.to_csv(csv_path, index=False)
    markdown_path.write_text(frame.to_markdown(index=False) + "\n", encoding="utf-8")

    logger.info("wrote table of %d rows to %s and %s", len(frame), csv_path, markdown_path)
    return csv_path, markdown_path
