"""The Python package against the shipped example releases: three lines to a table, the
same totals as the CLI, the console script's exit codes, and exceptions by kind."""

import contextlib
import os
import pathlib
import socket
import subprocess
import sys

import pyarrow
import pytest

import gplake

ROOT = pathlib.Path(__file__).resolve().parents[3]
EXAMPLES = str(ROOT / "examples" / "releases")
GPLAKE = os.path.join(os.path.dirname(sys.executable), "gplake")
TOTALS = (
    "SELECT CAST(snapshot_date AS VARCHAR) AS d, SUM(registered_population) AS n "
    "FROM fact_gp_registered_patients GROUP BY 1 ORDER BY 1"
)


def test_three_lines_give_a_synced_lake_and_a_pyarrow_table(tmp_path):
    lake = gplake.Lake(tmp_path / "lake")
    report = lake.sync(source=EXAMPLES)
    table = lake.query(TOTALS)
    assert isinstance(table, pyarrow.Table)
    assert table.num_rows == 5
    assert report["fetch"]["fetched"] == 35
    assert [m["committed"] for m in report["build"]["months"]] == [True] * 6
    assert lake.status()["months"][0]["month"] == "2016-01"


def test_query_totals_equal_the_command_lines(tmp_path):
    lake = gplake.Lake(tmp_path / "lake")
    lake.sync(source=EXAMPLES, months=("2022-09", "2024-04"))
    table = lake.query(TOTALS)
    cli = subprocess.run(
        [GPLAKE, "--lake", str(tmp_path / "lake"), "query", TOTALS, "--format", "csv"],
        capture_output=True, text=True, check=True,
    )
    from_cli = cli.stdout.strip().splitlines()[1:]
    from_python = [f"{d},{n}" for d, n in zip(table["d"].to_pylist(), table["n"].to_pylist())]
    assert from_python == from_cli and len(from_cli) == 2


def test_the_console_script_is_the_command_line(tmp_path):
    version = subprocess.run([GPLAKE, "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("gplake ")
    missing = subprocess.run(
        [GPLAKE, "--lake", str(tmp_path / "none"), "status"], capture_output=True, text=True
    )
    assert missing.returncode == 2 and "no lake at" in missing.stderr
    assert not (tmp_path / "none").exists()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_failures_raise_one_exception_class_per_kind(tmp_path):
    lake = gplake.Lake(tmp_path / "lake")
    with pytest.raises(gplake.SourceUnreachable) as unreachable:
        lake.sync(source=f"http://127.0.0.1:{free_port()}/series", months=("2024-01", "2024-01"))
    assert "127.0.0.1" in str(unreachable.value)
    with pytest.raises(gplake.UsageError):
        lake.sync(source=EXAMPLES, months=("2024-13", "2024-01"))
    lake.sync(source=EXAMPLES, months=("2024-04", "2024-04"))
    with pytest.raises(gplake.UsageError) as writing:
        lake.query("DELETE FROM fact_gp_registered_patients")
    assert isinstance(writing.value, gplake.GplakeError)
    assert lake.query(TOTALS).num_rows == 1, "a refused query changes nothing"


def test_a_month_kept_out_raises_quality_gate_error_and_the_rest_is_published(tmp_path):
    import shutil

    source = tmp_path / "source"
    for month in ("2018-03", "2022-09"):
        shutil.copytree(ROOT / "examples" / "releases" / month, source / month)
    male = source / "2022-09" / "gp-reg-pat-prac-sing-age-male.csv"
    lines = male.read_text().splitlines(keepends=True)
    male.write_text("".join(lines[:3] + [lines[2]] + lines[3:]))
    lake = gplake.Lake(tmp_path / "lake")
    with pytest.raises(gplake.QualityGateError) as kept_out:
        lake.sync(source=str(source))
    assert any("appears more than once" in f for f in kept_out.value.failures)
    months = {m["month"]: m["committed"] for m in kept_out.value.report["build"]["months"]}
    assert months == {"2018-03": True, "2022-09": False}
    assert lake.query(TOTALS).num_rows == 1, "the good month is published"


def test_a_storage_failure_raises_lake_error_naming_the_month(tmp_path):
    lake = gplake.Lake(tmp_path / "lake")
    lake.sync(source=EXAMPLES, months=("2024-04", "2024-04"))
    manifest = next((tmp_path / "lake" / "bronze").rglob("_manifest.json"))
    manifest.write_text("{ not json")
    with pytest.raises(gplake.LakeError) as storage:
        lake.sync(source=EXAMPLES, months=("2024-04", "2024-04"))
    assert "2024-04" in str(storage.value)


def test_check_table_plot_and_notebook_views(tmp_path):
    lake = gplake.Lake(tmp_path / "lake")
    lake.sync(source=EXAMPLES)
    checked = lake.check()
    assert checked["gate_failed"] is False and len(checked["months"]) == 6
    assert lake.check(max_age_days=1)["stale"].startswith("the newest month in silver is 2026-04")
    assert "<table>" in checked._repr_html_() and "2026-04" in checked._repr_html_()
    delta = lake.table("fact_gp_registered_patients").to_pyarrow_table()
    count = lake.query("SELECT COUNT(*) AS n FROM fact_gp_registered_patients")["n"][0].as_py()
    assert delta.num_rows == count > 0
    with pytest.raises(gplake.UsageError):
        lake.table("no_such_table")
    svg = lake.plot_trend()
    assert svg.data.startswith(b"<svg") and svg._repr_svg_().startswith("<svg")
    png = lake.plot_trend(format="png")
    assert png.data.startswith(b"\x89PNG") and png._repr_png_() == png.data


def test_the_example_notebook_runs_clean(tmp_path):
    import shutil

    import nbclient
    import nbformat

    work = tmp_path / "examples"
    shutil.copytree(ROOT / "examples", work)
    notebook = nbformat.read(work / "notebook.ipynb", as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(work)}}
    )
    client.execute()
    errors = [
        o for c in notebook.cells if c.cell_type == "code" for o in c.outputs
        if o.output_type == "error"
    ]
    assert not errors, errors
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert any("image/svg+xml" in o.get("data", {}) for o in outputs), "the chart is shown"
    assert any("text/html" in o.get("data", {}) for o in outputs), "reports render as tables"
    shown = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "building" in shown and "6/6" in shown, "the sync shows its progress"


INTERRUPTED_SYNC = """
import sys
import gplake
lake = gplake.Lake(sys.argv[1])
try:
    lake.sync(source=sys.argv[2])
except KeyboardInterrupt:
    print("interrupted")
    sys.exit(130)
print("finished")
"""


def test_ctrl_c_during_a_sync_stops_at_a_safe_point_and_a_rerun_completes(tmp_path):
    import queue
    import signal
    import threading
    import time

    point = "commit:fact_gp_registered_patients"
    env = dict(os.environ, GPLAKE_FAILPOINT=f"{point}:stop")
    child = subprocess.Popen(
        [sys.executable, "-c", INTERRUPTED_SYNC, str(tmp_path / "lake"), EXAMPLES],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(l) for l in child.stderr], daemon=True).start()
    while f"failpoint {point} reached" not in lines.get(timeout=120):
        pass
    # The run froze itself mid-build (SIGSTOP at the failpoint): Ctrl-C, then let it go on.
    deadline = time.monotonic() + 30
    while open(f"/proc/{child.pid}/stat").read().split(")")[1].split()[0] != "T":
        assert time.monotonic() < deadline, "the run never stopped"
        time.sleep(0.05)
    child.send_signal(signal.SIGINT)
    child.send_signal(signal.SIGCONT)
    out, _ = child.communicate(timeout=120)
    assert (child.returncode, out.strip()) == (130, "interrupted")

    lake = gplake.Lake(tmp_path / "lake")
    built = [m["month"] for m in lake.status()["months"] if m["silver"] == "built"]
    assert len(built) < 6, f"the build stopped part way, not at the end: {built}"
    lake.sync(source=EXAMPLES)
    fresh = gplake.Lake(tmp_path / "fresh")
    fresh.sync(source=EXAMPLES)
    assert lake.query(TOTALS).equals(fresh.query(TOTALS))
    assert lake.check()["gate_failed"] is False


SYNTH = os.environ.get("GPLAKE_SYNTH", "")


@contextlib.contextmanager
def mirror(months, rate_mb_per_s=None, practices=60):
    """The test kit's mirror of the NHS site (`gplake-synth serve`) on 127.0.0.1; its URL."""
    assert os.path.exists(SYNTH), (
        "GPLAKE_SYNTH names no gplake-synth binary: scripts/test builds it and sets it"
    )
    args = [SYNTH, "serve", "--months", months, "--practices", str(practices)]
    if rate_mb_per_s:
        args += ["--rate-mb-per-s", str(rate_mb_per_s)]
    server = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    try:
        yield server.stdout.readline().strip()
    finally:
        server.kill()
        server.wait()


def test_progress_goes_to_a_callback_through_downloads_and_builds(tmp_path):
    seen = []
    with mirror("2024-04,2024-05") as url:
        report = gplake.Lake(tmp_path / "lake").sync(source=url, progress=seen.append)
    last = seen[-1]
    assert last["stage"] == "done"
    assert last["files"] == last["files_done"] == report["fetch"]["fetched"] > 0
    assert last["bytes"] == last["bytes_total"] == report["fetch"]["bytes"]
    assert last["months"] == last["months_done"] == 2
    written = sum(n for m in report["build"]["months"] for _, n in m["rows"])
    assert last["rows"] == written > 0
    stages = [p["stage"] for p in seen]
    assert "fetch" in stages and stages.index("fetch") < len(stages) - 1
    done = [p["months_done"] for p in seen]
    assert done == sorted(done), "months only go up"


def test_progress_bars_are_drawn_with_tqdm_or_as_a_line_of_text(tmp_path, capsys, monkeypatch):
    gplake.Lake(tmp_path / "a").sync(source=EXAMPLES, progress=True)
    with_tqdm = capsys.readouterr().err
    assert "building" in with_tqdm and "6/6" in with_tqdm, with_tqdm
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    gplake.Lake(tmp_path / "b").sync(source=EXAMPLES, progress=True)
    line = capsys.readouterr().err
    assert "gplake: built 6/6 months" in line and line.endswith("\n"), line
    gplake.Lake(tmp_path / "c").sync(source=EXAMPLES)
    assert capsys.readouterr().err == "", "off a terminal and a notebook, no bar by default"


INTERRUPTED_DOWNLOAD = """
import sys
import gplake
lake = gplake.Lake(sys.argv[1])
def progress(p):
    if p["bytes"]:
        print("downloading", flush=True)
try:
    lake.sync(source=sys.argv[2], progress=progress)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(130)
print("finished")
"""


def test_ctrl_c_during_downloads_abandons_them_and_leaves_bronze_untouched(tmp_path):
    import signal
    import time

    # 20 kB/s for about 2 MB: minutes to download whole.
    with mirror("2024-04,2024-05", rate_mb_per_s=0.02) as url:
        child = subprocess.Popen(
            [sys.executable, "-c", INTERRUPTED_DOWNLOAD, str(tmp_path / "lake"), url],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        assert child.stdout.readline().strip() == "downloading"
        interrupted_at = time.monotonic()
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
        stopped_in = time.monotonic() - interrupted_at
    assert (child.returncode, out.splitlines()[-1]) == (130, "interrupted"), err
    assert "stopping at the next safe point" in err
    assert stopped_in < 30, f"downloads were abandoned, not finished ({stopped_in:.0f} s)"
    lake = gplake.Lake(tmp_path / "lake")
    assert lake.status()["months"] == [], "no month's bronze was written"
    assert not list((tmp_path / "lake").rglob("_manifest.json"))
    with mirror("2024-04,2024-05") as url:
        report = lake.sync(source=url)
    assert [m["committed"] for m in report["build"]["months"]] == [True, True]


def test_the_console_script_stops_quietly_on_a_closed_pipe_and_on_ctrl_c(tmp_path):
    import signal
    import time

    lake = str(tmp_path / "lake")
    gplake.Lake(lake).sync(source=EXAMPLES, months=("2024-04", "2024-04"))
    piped = subprocess.run(
        f"'{GPLAKE}' --lake '{lake}' status | head -1", shell=True, capture_output=True, text=True
    )
    assert piped.stdout.startswith("lake ") and piped.stderr == "", piped.stderr

    with mirror("2024-04,2024-05", rate_mb_per_s=0.02) as url:
        child = subprocess.Popen(
            [GPLAKE, "--lake", str(tmp_path / "slow"), "sync", "--source", url],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        time.sleep(3)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
    assert child.returncode == 130, err
    assert "stopping at the next safe point" in err and "Traceback" not in err, err


@pytest.fixture
def s3(monkeypatch):
    """A bucket on the tests' S3-compatible server (moto: CI's, else one started here), with
    the `AWS_*` settings a user would export."""
    import time
    import urllib.request

    endpoint = os.environ.get("GPLAKE_TEST_S3_ENDPOINT")
    server = None
    if not endpoint:
        port = free_port()
        moto = os.path.join(os.path.dirname(sys.executable), "moto_server")
        server = subprocess.Popen(
            [moto, "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        endpoint = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                time.sleep(0.1)
    bucket = f"gplake-py-{os.getpid()}-{free_port()}"
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/{bucket}", method="PUT"))
    for key, value in {
        "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1", "AWS_ALLOW_HTTP": "true",
    }.items():
        monkeypatch.setenv(key, value)
    yield f"s3://{bucket}/gp"
    if server is not None:
        server.kill()
        server.wait()


def test_an_s3_lake_from_python_holds_the_figures_of_a_local_one(tmp_path, s3):
    with mirror("2024-04,2024-05") as url:
        on_s3 = gplake.Lake(s3)
        on_s3.sync(source=url)
        local = gplake.Lake(tmp_path / "lake")
        local.sync(source=url)
    assert on_s3.query(TOTALS).equals(local.query(TOTALS))
    assert on_s3.query(TOTALS).num_rows == 2
    assert on_s3.check()["gate_failed"] is False
    assert on_s3.url == s3
