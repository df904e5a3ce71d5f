"""The Prometheus rule files in dashboards/rules: valid for ``promtool check rules``, their unit
tests pass under ``promtool test rules`` (Debian package ``prometheus``), and every inferwatch
metric they read is one inferwatch exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml

from inferwatch.metrics import Metrics
from test_deploy_files import exposed_metric_names

RULES = Path(__file__).resolve().parent.parent / "dashboards" / "rules"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=RULES, capture_output=True, text=True, timeout=120)


def test_rule_files_pass_promtool_check(promtool):
    done = _run(promtool, "check", "rules", "inferwatch.rules.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 9 rules found" in done.stdout


def test_rule_unit_tests_pass_and_can_fail(promtool, tmp_path):
    done = _run(promtool, "test", "rules", "inferwatch.rules.test.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    # the same tests against a rule file whose reject threshold was raised must fail
    shutil.copy(RULES / "inferwatch.rules.test.yml", tmp_path)
    text = (RULES / "inferwatch.rules.yml").read_text().replace("ratio_rate5m > 0.05", "ratio_rate5m > 0.2")
    (tmp_path / "inferwatch.rules.yml").write_text(text)
    broken = subprocess.run([promtool, "test", "rules", "inferwatch.rules.test.yml"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert broken.returncode != 0 and "InferwatchRejectingRecords" in broken.stdout + broken.stderr


def test_rules_read_only_metrics_inferwatch_exports():
    groups = yaml.safe_load((RULES / "inferwatch.rules.yml").read_text())["groups"]
    exprs = [r["expr"] for g in groups for r in g["rules"]]
    # metric names, not the recording rules' level:metric:operations names
    used = {m for e in exprs for m in re.findall(r"(?<![:\w])inferwatch_[a-z_]+(?![:\w])", e)}
    assert used and used <= exposed_metric_names(Metrics()), used - exposed_metric_names(Metrics())
