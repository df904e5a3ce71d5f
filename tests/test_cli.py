"""The command line as users run it: the main job on embedded defaults, and reference set."""

import subprocess
import sys
import time
import urllib.request

import pandas as pd

from inferwatch.store import Store

from e2e import REPO, free_port


def test_demo_main_job_serves_metrics_prints_the_table_and_exits_0(tmp_path):
    port = free_port()
    db = tmp_path / "demo.db"
    proc = subprocess.Popen([sys.executable, "-m", "inferwatch.cli", "demo", "--db", str(db), "--metrics-port",
                             str(port)], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    scraped = ""
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            scraped = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
            if 'inferwatch_records_ingested_total{model="employment"}' in scraped:
                break
        except OSError:
            pass
        time.sleep(0.2)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert 'inferwatch_records_ingested_total{model="employment"}' in scraped

    windows = Store(f"sqlite:///{db}").list_windows()
    assert windows.record_count.sum() == 243_285  # 2015 hold-out half + all of 2016-2018
    years = pd.to_datetime(windows.window_start_ms, unit="ms").dt.year
    # the hold-out half of 2015 is the reference population: no drift; 2018 is mostly drifted
    assert not windows[years == 2015].dataset_drifted.any()
    assert windows[(years == 2018) & (windows.record_count > 1000)].dataset_drifted.sum() >= 2
    assert "DRIFT" in out and "ANC" in out and "2018-07-01" in out


def test_reference_set_from_csv_with_categorical_codes(tmp_path):
    from inferwatch import demo

    ref = demo.write_reference_file(tmp_path / "train.csv")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"database_url: sqlite:///{tmp_path / 'x.db'}\ndrift:\n  categorical:\n    employment: "
                   f"[{', '.join(demo.CODE_COLUMNS)}, employed]\n")
    done = subprocess.run([sys.executable, "-m", "inferwatch.cli", "reference", "set", "--model", "employment",
                           "--file", str(ref), "--config", str(cfg)], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 numeric and 16 categorical columns" in " ".join(done.stdout.split())  # AGEP, probability
    bad = subprocess.run([sys.executable, "-m", "inferwatch.cli", "reference", "set", "--model", "m", "--file",
                          str(cfg), "--config", str(cfg)], cwd=REPO, capture_output=True, text=True)
    assert bad.returncode == 2 and "--file" in bad.stdout + bad.stderr


def test_reference_set_refuses_files_without_values(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"database_url: sqlite:///{tmp_path / 'x.db'}\n")
    for name, text in (("header.csv", "AGEP,SCHL\n"), ("nan.csv", "AGEP,SCHL\n,\n,\n")):
        (tmp_path / name).write_text(text)
        done = subprocess.run([sys.executable, "-m", "inferwatch.cli", "reference", "set", "--model", "m", "--file",
                               str(tmp_path / name), "--config", str(cfg)], cwd=REPO, capture_output=True, text=True)
        assert done.returncode == 2 and "no rows with values" in " ".join(done.stdout.split())
