"""inferwatch report: the real ACS demo through the pipeline on SQLite, the report written by
the CLI, and the page rendered by headless Chromium (Evidently's part is drawn by JavaScript,
so only the DOM after the scripts ran shows what a reader sees)."""

from __future__ import annotations

import heapq
import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import REPO_ROOT, service_unavailable
from detectors.profile import build_profile
from inferwatch import demo
from inferwatch.cli import app
from inferwatch.config import load_config
from inferwatch.metrics import Metrics
from inferwatch.pipeline import window_statistics
from inferwatch.reference import profile_frame, read_reference_file
from inferwatch.report import VERDICT_SECTION_ID, frame_from_profile, scale_counts
from inferwatch.runner import open_store, run_in_process

QUARTER_HOURS = 2190  # the demo's window: a quarter of 365 days
ODD_MODEL = 'emp<b>"loy</b>&ment'  # a model name that must come out escaped
CHROMIUM_TIMEOUT = 120


def _renamed(records, model: str, n: int, every: int = 1) -> list[dict]:
    out = []
    for rec in records[::every][:n]:
        rec = dict(rec)
        rec["model"] = model
        rec["request_id"] = f"{model}-{rec['request_id']}"
        out.append(rec)
    return out


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory):
    """The demo's stream (employment, drifting from 2016), its stationary control
    (employment-control), a model without a reference, one with too few records per window
    and one whose name needs HTML escaping, through the pipeline into SQLite.

    Returns ``(config file, store)``."""
    tmp = tmp_path_factory.mktemp("report")
    db = tmp / "demo.db"
    settings = load_config(None, database_url=f"sqlite:///{db}",
                           window={"length_seconds": QUARTER_HOURS * 3600, "idle_close_seconds": None,
                                   "origin": "2015-01-01T00:00:00Z"},
                           metrics={"enabled": False}, drift={"alpha": 0.001},
                           reference={"bootstrap_records": 10_000_000})  # no reference unless one is set
    store = open_store(settings)
    ref = read_reference_file(demo.write_reference_file(tmp / "train.parquet"))
    profile = profile_frame(ref, set(), settings.reference.n_bins, settings.reference.sample_size).to_dict()
    with store.transaction() as conn:
        for model in ("employment", "employment-control", "tiny", ODD_MODEL):
            store.put_reference(conn, model, "*", "demo: 2015 training half", len(ref), profile)
    main = list(demo.demo_records())
    extra = (_renamed(main, "unreferenced", 300, every=800) + _renamed(main, "tiny", 5, every=40_000)
             + _renamed(main[-40_000:], ODD_MODEL, 400, every=100))
    streams = [main, demo.control_records(n_per_year=20_000), sorted(extra, key=lambda r: r["timestamp"])]
    records = heapq.merge(*streams, key=lambda r: r["timestamp"])
    run_in_process(settings, (demo.encode_record(r) for r in records), store, Metrics(), source_name="demo")
    cfg = tmp / "inferwatch.yaml"
    cfg.write_text(f"database_url: sqlite:///{db}\n")
    yield cfg, store
    store.close()


def _run_report(cfg: Path, *args: str):
    return CliRunner().invoke(app, ["report", "--config", str(cfg), *args], env={"COLUMNS": "400"})


def _windows(store, model: str) -> pd.DataFrame:
    return store.list_windows(model).set_index("id")


def _drifted_by_store(store, window_id: int) -> dict[str, bool]:
    res = store.list_drift_results(window_id)
    return {c: bool(d == d and d) or bool(m == m and m)
            for c, d, m in zip(res.column_name, res.drifted, res.missing_drifted)}


# --- rendering ---------------------------------------------------------------------------------

def render(path: Path) -> str:
    """The page's DOM after its JavaScript ran, from headless Chromium."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        service_unavailable("no chromium binary (Debian: apt-get install -y chromium; scripts/bootstrap.sh --test)")
    # a fresh profile, and none of the browser's own network traffic: the page is self-contained
    done = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           f"--user-data-dir={path.parent / 'chromium-profile'}", "--no-first-run",
                           "--disable-background-networking", "--disable-component-update", "--disable-sync",
                           "--virtual-time-budget=20000", "--dump-dom", path.resolve().as_uri()],
                          capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


class _Page(HTMLParser):
    """The visible text of a DOM (scripts and styles left out), as a list of text nodes, and
    the rows of the verdict table with their attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []
        self.rows: dict[str, dict[str, str]] = {}
        self._skip = 0
        self._in_section = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("script", "style"):
            self._skip += 1
        if tag == "section" and a.get("id") == VERDICT_SECTION_ID:
            self._in_section = True
        if tag == "tr" and "data-column" in a:
            self.rows[a["data-column"]] = a

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self._skip -= 1
        if tag == "section":
            self._in_section = False

    def handle_data(self, data):
        if not self._skip and data.strip():
            self.texts.append(data.strip())


def _parse(dom: str) -> _Page:
    page = _Page()
    page.feed(dom)
    return page


def _evidently_rows(page: _Page) -> dict[str, tuple[str, str]]:
    """Evidently's drift table as drawn: column -> (type, "Detected"/"Not Detected")."""
    t = page.texts
    start = t.index("Drift Score")  # the last header cell of Evidently's table
    rows = {}
    for i in range(start + 1, len(t) - 2):
        if t[i + 2] in ("Detected", "Not Detected") and t[i + 1] in ("num", "cat"):
            rows[t[i]] = (t[i + 1], t[i + 2])
    return rows


# --- the report of a drifted window and of the control ------------------------------------------

def test_report_of_a_drifted_window_shows_its_drifted_columns_in_chromium(demo_store, tmp_path):
    cfg, store = demo_store
    ws = _windows(store, "employment")
    drifted_windows = ws[ws.dataset_drifted.fillna(False).astype(bool) & (ws.record_count > 10_000)]
    wid = int(drifted_windows.n_drifted.idxmax())
    by_store = _drifted_by_store(store, wid)
    drifted = sorted(c for c, d in by_store.items() if d)
    assert "features.ANC" in drifted and len(drifted) < len(by_store)  # the demo's clearest drift

    out = tmp_path / "r.html"
    done = _run_report(cfg, "--model", "employment", "--window", str(wid), "-o", str(out))
    assert done.exit_code == 0, done.output
    assert f"window {wid} of employment" in done.output and "features.ANC" in done.output
    raw = out.read_text()
    assert re.search(rf'<body[^>]*>\s*<style>[^<]*</style>\s*<section id="{VERDICT_SECTION_ID}">', raw)

    page = _parse(render(out))
    # inferwatch's verdict, as stored, column by column
    assert set(page.rows) == set(by_store)
    for column, flag in by_store.items():
        assert page.rows[column]["data-inferwatch-drifted"] == str(flag).lower(), column
    text = " ".join(page.texts)
    assert "DATASET DRIFT" in text and f"drifted columns: {', '.join(drifted)}" in text
    # Evidently's table, drawn by its scripts: it ran inferwatch's tests at thresholds that repeat
    # its decision, so the drifted columns come first and are shown as detected
    shown = _evidently_rows(page)
    assert len(shown) == 10  # one page of Evidently's table, strongest drift first
    for column in drifted:
        kind = "num" if column in ("features.AGEP", "predictions.probability") else "cat"
        assert shown[column] == (kind, "Detected"), column
    calm = [c for c in shown if not by_store[c] and c.startswith("features.") and not c.endswith("AGEP")]
    assert calm and all(shown[c] == ("cat", "Not Detected") for c in calm)
    for column, (_, verdict) in shown.items():
        assert page.rows[column]["data-evidently-drifted"] == str(verdict == "Detected").lower()


def test_report_of_the_control_model_by_time_shows_no_drift(demo_store, tmp_path):
    cfg, store = demo_store
    ws = _windows(store, "employment-control")
    # the control's window over the same quarter of 2018 as the drifted one
    at = "2018-08-15T00:00:00Z"
    t = pd.Timestamp(at).value // 1_000_000
    wid = int(ws[(ws.window_start_ms <= t) & (t < ws.window_end_ms)].index[0])
    by_store = _drifted_by_store(store, wid)
    assert not any(by_store.values())

    done = _run_report(cfg, "-m", "employment-control", "-w", at, "-o", str(tmp_path / "c.html"))
    assert done.exit_code == 0, done.output
    assert f"window {wid} of employment-control" in done.output and "drifted: none" in done.output
    page = _parse(render(tmp_path / "c.html"))
    assert all(page.rows[c]["data-inferwatch-drifted"] == "false" for c in by_store)
    text = " ".join(page.texts)
    assert "no dataset drift" in text and "drifted columns: none" in text
    shown = _evidently_rows(page)
    assert len(shown) == 10 and all(v == "Not Detected" for _, v in shown.values())


def test_default_file_name_and_evidently_default_tests(demo_store, tmp_path, monkeypatch):
    cfg, store = demo_store
    wid = int(_windows(store, "employment").index[-2])
    monkeypatch.chdir(tmp_path)
    done = _run_report(cfg, "--model", "employment", "--window", str(wid), "--evidently-tests", "default",
                       "--max-rows", "5000")
    assert done.exit_code == 0, done.output
    raw = (tmp_path / f"report-employment-{wid}.html").read_text()
    # Evidently's own rule above 1,000 reference rows: distances, not p-values
    assert "Jensen-Shannon distance" in raw and "its default tests" in raw
    assert "rows scaled down to 5,000" in raw
    # its distances stay under 0.1 on the demo's drift: the page names each column inferwatch
    # alerted on that Evidently calls stable
    drifted = [c for c, d in _drifted_by_store(store, wid).items() if d]
    assert drifted and 'id="inferwatch-disagreements"' in raw
    for column in drifted:
        assert f"<li>{column}: inferwatch drifted (chi2, adjusted p-value" in raw
        assert re.search(rf'data-column="{re.escape(column)}" data-inferwatch-drifted="true" '
                         r'data-evidently-drifted="false"', raw)


def test_a_model_name_is_escaped_in_the_page(demo_store, tmp_path):
    cfg, store = demo_store
    wid = int(_windows(store, ODD_MODEL).index[0])
    done = _run_report(cfg, "--model", ODD_MODEL, "--window", str(wid), "-o", str(tmp_path / "o.html"))
    assert done.exit_code == 0, done.output
    raw = (tmp_path / "o.html").read_text()
    section = raw[raw.index(f'<section id="{VERDICT_SECTION_ID}">'):raw.index("</section>")]
    assert "emp&lt;b&gt;&quot;loy&lt;/b&gt;&amp;ment" in section and "<b>" not in section


# --- errors name the flag and the fix ---------------------------------------------------------

def test_errors_exit_2_naming_the_flag_and_the_fix(demo_store, tmp_path):
    cfg, store = demo_store
    ids = _windows(store, "employment").index
    other = int(_windows(store, "employment-control").index[0])
    unreferenced = int(_windows(store, "unreferenced").index[0])
    tiny = int(_windows(store, "tiny").index[0])
    cases = [
        (["-m", "nope", "-w", "1"], ["--model nope: no closed window for model nope",
                                     "models with closed windows: ", "employment, employment-control"]),
        (["-m", "employment", "-w", "99999"],
         ["--window 99999: no window 99999 for model employment", f"{int(ids[0])} (2015-01-01T00:00Z)",
          "`inferwatch windows --model employment`"]),
        (["-m", "employment", "-w", str(other)], [f"--window {other}: no window {other} for model employment"]),
        (["-m", "employment", "-w", "2030-01-01T00:00:00Z"], ["no closed window of model employment contains"]),
        (["-m", "employment", "-w", "last tuesday"], ["give a window id or an RFC 3339 time"]),
        (["-m", "employment", "-w", str(int(ids[0])), "--model-version", "9"],
         ["--model-version 9", "versions: 1"]),
        (["-m", "unreferenced", "-w", str(unreferenced)],
         ["closed before the model had a reference", "inferwatch reference set --model unreferenced"]),
        (["-m", "tiny", "-w", str(tiny)], ["too few records to test", "status insufficient_data"]),
    ]
    for args, expected in cases:
        done = _run_report(cfg, *args, "-o", str(tmp_path / "x.html"))
        assert done.exit_code == 2, (args, done.output)
        said = " ".join(done.output.split())
        for part in expected:
            assert part in said, (args, said)
    assert not (tmp_path / "x.html").exists()


def test_the_installed_command_writes_the_report(demo_store, tmp_path):
    cfg, store = demo_store
    wid = int(_windows(store, "employment").index[0])
    done = subprocess.run([sys.executable, "-m", "inferwatch.cli", "report", "-m", "employment", "-w", str(wid),
                           "-o", str(tmp_path / "s.html"), "--config", str(cfg)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "s.html").stat().st_size > 100_000


# --- rebuilding frames from profiles -----------------------------------------------------------

def test_scale_counts_keeps_the_total_and_the_proportions():
    assert scale_counts([5, 3, 2], 10) == [5, 3, 2]
    assert scale_counts([5, 3, 2], 5) == [3, 1, 1] or scale_counts([5, 3, 2], 5) == [2, 2, 1]
    out = scale_counts([70_000, 29_000, 1_000], 1_000)
    assert out == [700, 290, 10] and sum(scale_counts([1, 1, 1], 100)) == 100
    assert scale_counts([0, 0], 4) == [0, 0]


def test_frames_rebuilt_from_profiles_keep_counts_kinds_and_bins():
    rng = np.random.default_rng(7)
    n = 3_000
    frame = pd.DataFrame({"x": np.where(rng.random(n) < 0.1, np.nan, rng.gamma(2.0, 3.0, n)),
                          "c": rng.choice(np.array(["a", "b", "c", None], dtype=object), n, p=[.5, .3, .15, .05])})
    ref = build_profile(frame, {"x": "numeric", "c": "categorical"}, n_bins=8)
    full = ref.to_dict()
    rebuilt, notes = frame_from_profile(full, ["x", "c"])
    assert len(rebuilt) == n and rebuilt["x"].dtype == np.float64 and not notes
    assert pd.api.types.is_string_dtype(rebuilt["c"]) and not pd.api.types.is_numeric_dtype(rebuilt["c"])
    assert sorted(rebuilt["x"].dropna()) == sorted(frame["x"].dropna())  # the sample holds every value
    assert rebuilt["c"].value_counts(dropna=False).to_dict() == frame["c"].value_counts(dropna=False).to_dict()

    # a closed window keeps no sample: values from its histogram and quantile sketch
    cur = build_profile(frame.iloc[:2_000], {"x": "numeric", "c": "categorical"}, reference=ref)
    stats = json.loads(json.dumps(window_statistics(cur)))
    assert "sample" not in stats["columns"]["x"]
    rebuilt, notes = frame_from_profile(stats, ["x", "c"], max_rows=1_000)
    assert len(rebuilt) == 1_000 and any("quantile sketch" in s for s in notes)
    assert any("scaled down to 1,000" in s for s in notes)
    edges = np.array([float(e) for e in stats["columns"]["x"]["edges"]])
    hist = np.histogram(rebuilt["x"].dropna(), bins=edges)[0]
    assert hist.tolist() == scale_counts(stats["columns"]["x"]["hist"], int(rebuilt["x"].notna().sum()))
    assert abs(rebuilt["x"].isna().mean() - frame["x"].iloc[:2_000].isna().mean()) < 0.002
    shares = {str(k): v for k, v in rebuilt["c"].value_counts(normalize=True, dropna=False).items()}
    truth = {str(k): v for k, v in frame["c"].iloc[:2_000].value_counts(normalize=True, dropna=False).items()}
    assert shares.keys() == truth.keys() and all(abs(shares[k] - truth[k]) < 0.001 for k in truth)


def test_the_page_says_when_the_reference_changed_after_the_numbers_until_a_backfill(tmp_path):
    """The note about a replaced reference follows which reference the stored results used:
    present after ``reference set``, gone once ``backfill`` recomputed the window against it."""
    import time

    from inferwatch.backfill import backfill
    from inferwatch.report import build_report

    settings = load_config(None, database_url=f"sqlite:///{tmp_path / 'c.db'}",
                           window={"length_seconds": QUARTER_HOURS * 3600, "idle_close_seconds": None,
                                   "origin": "2015-01-01T00:00:00Z"},
                           metrics={"enabled": False}, reference={"bootstrap_records": 10_000_000})
    store = open_store(settings)
    try:
        records = list(demo.control_records(n_per_year=4_000))
        ref = read_reference_file(demo.write_reference_file(tmp_path / "train.parquet"))
        first = profile_frame(ref, set(), settings.reference.n_bins, settings.reference.sample_size).to_dict()
        with store.transaction() as conn:
            store.put_reference(conn, "employment-control", "*", "training", len(ref), first)
        run_in_process(settings, (demo.encode_record(r) for r in records), store, Metrics(), source_name="demo")
        window = str(int(store.list_windows("employment-control").id.iloc[2]))
        assert not any("replaced" in n for n in build_report(store, "employment-control", window).notes)

        time.sleep(0.01)  # a later created_at_ms
        half = ref.iloc[: len(ref) // 2]
        second = profile_frame(half, set(), settings.reference.n_bins, settings.reference.sample_size).to_dict()
        with store.transaction() as conn:
            store.put_reference(conn, "employment-control", "*", "training, first half", len(half), second)
        notes = build_report(store, "employment-control", window).notes
        assert any("replaced" in n and "inferwatch backfill" in n for n in notes), notes

        out = backfill(settings, store, "employment-control", 0, 2**62)
        assert out and all(o.kept is None for o in out)
        assert any(o.changed and o.window_id == int(window) for o in out)  # other statistics, new stamp stored
        assert not any("replaced" in n for n in build_report(store, "employment-control", window).notes)
    finally:
        store.close()
