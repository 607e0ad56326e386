"""featurize.engine: spark without pyspark: one line that names the extra, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from predictive_scoring.errors import ConfigError
from predictive_scoring.spark import spark_connection, spark_session

ROOT = Path(__file__).resolve().parents[2]
# Run the featurize stage with pyspark made unimportable (a None entry in sys.modules).
WITHOUT_PYSPARK = (
    "import runpy, sys; sys.modules['pyspark'] = None; "
    "sys.argv = ['featurize.py', '--params', sys.argv[1], '--out', sys.argv[2]]; "
    "runpy.run_path({script!r}, run_name='__main__')"
)


@pytest.mark.parametrize("open_spark", [spark_connection, spark_session])
def test_the_library_names_the_extra(monkeypatch: pytest.MonkeyPatch, open_spark: object) -> None:
    monkeypatch.setitem(sys.modules, "pyspark", None)
    with pytest.raises(ConfigError) as failed:
        open_spark({"spark.master": "local[1]"})  # type: ignore[operator]
    message = str(failed.value)
    assert "pip install -e '.[spark]'" in message and "setup.sh dev,spark" in message
    assert "\n" not in message


def test_the_featurize_stage_fails_in_one_line(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"featurize": {"engine": "spark"}}))
    code = WITHOUT_PYSPARK.format(script=str(ROOT / "pipelines" / "featurize.py"))
    done = subprocess.run(
        [sys.executable, "-c", code, str(params), str(tmp_path / "features")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "featurize failed" in lines[0] and "pip install -e '.[spark]'" in lines[0]


def test_spark_tests_without_java_skip_saying_how_to_get_it() -> None:
    env = {"PATH": str(Path(sys.executable).parent), "HOME": str(Path.home())}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "tests/spark/test_session.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "skipped" in done.stdout and "passed" not in done.stdout
    assert "apt-get install -y default-jre-headless" in done.stdout
