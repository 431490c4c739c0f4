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
]


class Report(dict):
    """A report from the library: a dict (the same fields as the CLI's `--json`)."""

    def to_dict(self) -> dict:
        return dict(self)


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

    def query(self, sql: str):
        """Runs read-only SQL over every table; the result as a ``pyarrow.Table``."""
        import pyarrow

        stream = self._lake.query_stream(sql)
        return pyarrow.RecordBatchReader.from_stream(stream).read_all()

    def __repr__(self) -> str:
        return f"gplake.Lake({self.url!r})"
