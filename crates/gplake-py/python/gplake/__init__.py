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


def _interactive() -> bool:
    """True in a Jupyter kernel or with stderr on a terminal: where a progress bar helps."""
    import sys

    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if getattr(shell, "kernel", None) is not None:
        return True
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


class _ProgressBar:
    """Draws a sync's progress: bytes while downloading, then months while building; with
    tqdm (``tqdm.auto``: widgets in a notebook) when installed, else one line of text on
    stderr rewritten in place."""

    def __init__(self):
        import sys

        self._stream = sys.stderr
        self._bars = {}
        self._line = ""
        import warnings

        try:
            # Widgets in a notebook with ipywidgets, else text bars; without ipywidgets,
            # tqdm says so in a warning on import, which is no news to the user here.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from tqdm.auto import tqdm

            self._tqdm = tqdm
        except ImportError:
            self._tqdm = None

    def __call__(self, p: dict) -> None:
        if self._tqdm is not None:
            self._draw_bars(p)
        else:
            self._draw_line(p)

    def _bar(self, name, **options):
        if name not in self._bars:
            self._bars[name] = self._tqdm(**options)
        return self._bars[name]

    def _draw_bars(self, p):
        if p["files"]:
            bar = self._bar("fetch", desc="downloading", unit="B", unit_scale=True)
            bar.total = p["bytes_total"] or None
            bar.n = p["bytes"]
            bar.set_postfix_str(f"{p['files_done']}/{p['files']} files", refresh=False)
            bar.refresh()
        if p["months"]:
            bar = self._bar("build", desc="building", unit=" months", total=p["months"])
            bar.n = p["months_done"]
            after = " · dims and gold" if p["stage"] == "derive" else ""
            bar.set_postfix_str(f"{p['rows']:,} rows{after}", refresh=False)
            bar.refresh()

    def _draw_line(self, p):
        parts = []
        if p["files"]:
            total = f"/{p['bytes_total'] / 1e6:.1f}" if p["bytes_total"] else ""
            parts.append(
                f"downloaded {p['files_done']}/{p['files']} files, "
                f"{p['bytes'] / 1e6:.1f}{total} MB"
            )
        if p["months"]:
            parts.append(f"built {p['months_done']}/{p['months']} months, {p['rows']:,} rows")
        if p["stage"] == "derive":
            parts.append("dims and gold")
        if not parts:
            return
        line = "gplake: " + " · ".join(parts)
        self._stream.write("\r" + line.ljust(len(self._line)))
        self._stream.flush()
        self._line = line

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()
        if self._line:
            self._stream.write("\n")
            self._stream.flush()


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

    def sync(self, source=None, months=None, dry_run=False, progress=None) -> Report:
        """Discover, fetch, build and check; `months` is ``(first, last)`` as ``YYYY-MM``.

        `progress`: ``None`` draws progress bars in a notebook or on a terminal (tqdm's when
        it is installed, else one line of text), ``False`` draws none, ``True`` always draws
        them, and a callable is called with a dict (``stage``: fetch, build, derive or done;
        ``files``, ``files_done``, ``bytes``, ``bytes_total``, ``months``, ``months_done``,
        ``rows``) as the run goes.

        Ctrl-C (KeyboardInterrupt) stops the run at its next safe point: downloads in
        flight are abandoned, a month being written is finished, and the next sync carries
        on. Raises `QualityGateError` (with ``.failures`` and ``.report``) when a month or a
        table's month is kept out; the rest is published either way.
        """
        months = tuple(months) if months is not None else None
        bar = _ProgressBar() if progress is True or (progress is None and _interactive()) else None
        callback = bar if bar is not None else (progress or None)
        try:
            raw = self._lake.sync_json(source, months, dry_run, callback)
        finally:
            if bar is not None:
                bar.close()
        report = Report(json.loads(raw))
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
