"""gplake from Python: NHS England "Patients Registered at a GP Practice" in a data lake.

    import gplake
    lake = gplake.Lake("./lake")                     # a folder, s3://bucket/prefix, az://…
    report = lake.sync(source="examples/releases")   # the live NHS site when source is None
    table = lake.query("SELECT … FROM fact_gp_registered_patients")   # a pyarrow.Table

Failures raise one exception class per kind (all are `GplakeError`): `UsageError`,
`QualityGateError`, `SourceUnreachable`, `LakeError`. The `gplake` command installed with
this package is the same command line as the binary, with the same exit codes.
"""

import json

from ._gplake import (
    GplakeError,
    LakeError,
    QualityGateError,
    SourceUnreachable,
    UsageError,
    __version__,
    run_cli,
)
from ._gplake import Lake as _Lake

__all__ = [
    "GplakeError",
    "Lake",
    "LakeError",
    "QualityGateError",
    "Report",
    "SourceUnreachable",
    "UsageError",
    "__version__",
    "run_cli",
    "Chart",
]


class Report(dict):
    """A report from the library: a dict (the same fields as the CLI's `--json`), shown as
    tables in a notebook."""

    def to_dict(self) -> dict:
        return dict(self)

    def _repr_html_(self) -> str:
        return _html(self)


def _html(value, depth=0) -> str:
    """A dict as a two-column table; a list of dicts as one table, a row per item."""
    from html import escape

    if isinstance(value, dict) and depth < 2:
        rows = "".join(
            f"<tr><th style='text-align:left'>{escape(str(k))}</th><td>{_html(v, depth + 1)}</td></tr>"
            for k, v in value.items()
        )
        return f"<table>{rows}</table>"
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value) and depth < 2:
        columns = [k for k, v in value[0].items() if not isinstance(v, (dict, list))]
        head = "".join(f"<th>{escape(c)}</th>" for c in columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{escape(str(item.get(c, '')))}</td>" for c in columns) + "</tr>"
            for item in value
        )
        return f"<table><tr>{head}</tr>{body}</table>"
    return escape(str(value))


class Chart:
    """A chart's image: ``.data`` holds the SVG or PNG bytes; shown inline in Jupyter."""

    def __init__(self, data: bytes, format: str):
        self.data = data
        self.format = format

    def _repr_svg_(self):
        return self.data.decode() if self.format == "svg" else None

    def _repr_png_(self):
        return self.data if self.format == "png" else None

    def save(self, path) -> None:
        with open(path, "wb") as f:
            f.write(self.data)


class Lake:
    """A gplake lake: a folder (default ``./lake``), ``s3://bucket/prefix`` or an Azure URL."""

    def __init__(self, url: str = "./lake"):
        self._lake = _Lake(str(url))

    @property
    def url(self) -> str:
        return self._lake.url

    def sync(self, source=None, months=None, dry_run=False) -> Report:
        """Discover, fetch, build and check; `months` is ``(first, last)`` as ``YYYY-MM``.

        Raises `QualityGateError` (with ``.failures`` and ``.report``) when a month or a
        table's month is kept out; the rest is published either way.
        """
        months = tuple(months) if months is not None else None
        report = Report(json.loads(self._lake.sync_json(source, months, dry_run)))
        failures = [
            failure
            for month in (report.get("build") or {}).get("months", [])
            for failure in month.get("failures", [])
        ]
        if failures:
            error = QualityGateError(f"{len(failures)} quality failure(s): {failures[0]}")
            error.failures = failures
            error.report = report
            raise error
        return report

    def status(self) -> Report:
        """What the lake holds: months in bronze and silver, revisions, quality, gaps."""
        return Report(json.loads(self._lake.status_json()))

    def check(self, max_age_days=None) -> Report:
        """The quality standing of every month and the series; ``report["gate_failed"]`` is
        True when a month or table is kept out, dims/gold are behind silver, or (with
        `max_age_days`) the newest month is older than that (``report["stale"]`` says why)."""
        return Report(json.loads(self._lake.check_json(max_age_days)))

    def table(self, name: str):
        """Table `name` as a ``deltalake.DeltaTable`` (``pip install gplake[delta]``)."""
        from deltalake import DeltaTable

        return DeltaTable(self._lake.table_uri(name))

    def plot_trend(self, practice=None, icb=None, region=None, format="svg") -> Chart:
        """Registered population over time, with the sex split, for a practice, an ICB, a
        region or (by default) England."""
        data = self._lake.plot_trend_bytes(practice, icb, region, format)
        return Chart(bytes(data), format)

    def query(self, sql: str):
        """Runs read-only SQL over every table; the result as a ``pyarrow.Table``."""
        import pyarrow

        stream = self._lake.query_stream(sql)
        return pyarrow.RecordBatchReader.from_stream(stream).read_all()

    def __repr__(self) -> str:
        return f"gplake.Lake({self.url!r})"
