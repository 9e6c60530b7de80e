"""CSV exports of records and sums: pure text builders.

Cells are written by Python's csv module (quoting as needed); a cell that a spreadsheet
would run as a formula (``=``, ``+``, ``-``, ``@``, tab, CR at its start) is prefixed with
``'``, as OWASP recommends for CSV injection: user and server names are user-controlled.
"""

from __future__ import annotations

import csv
import io
from typing import Iterable, Mapping, Sequence

from .views import RECORD_COLUMNS, SUMMARY_COLUMNS, iso

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6f}".rstrip("0").rstrip(".") if value else "0"
    text = str(value)
    if text.startswith(_FORMULA_START) and not _is_number(text):
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def to_csv(header: Sequence[str], rows: Iterable[Sequence]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([_cell(v) for v in row])
    return out.getvalue()


def records_csv(rows: Iterable[Mapping]) -> str:
    """``rows``: `views.record_row` dicts."""
    def values(r: Mapping) -> list:
        r = dict(r, started_iso=iso(r["started_at"]), stopped_iso=iso(r["stopped_at"]))
        return [r[key] for _, key in RECORD_COLUMNS]

    return to_csv([name for name, _ in RECORD_COLUMNS], (values(r) for r in rows))


def summary_csv(rows: Iterable[Mapping], currency: str) -> str:
    return to_csv(SUMMARY_COLUMNS, ([r["key"], r["records"], r["hours"], r["gpu_hours"], r["cost"], currency]
                                    for r in rows))
