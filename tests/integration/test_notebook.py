"""notebooks/01_funnel_and_runs.ipynb runs top to bottom on a small generated funnel."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from predictive_scoring.config import GenerateParams
from predictive_scoring.synth import generate_demo

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "01_funnel_and_runs.ipynb"


def test_notebook_executes_on_generated_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    generate_demo(tmp_path / "demo", GenerateParams(n_leads=500, months=6))
    monkeypatch.setenv("PS_PROJECT_ROOT", str(tmp_path))
    monkeypatch.setenv("PS_DATA_DIR", "demo")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    outputs = [
        out.get("text", "") + str(out.get("data", {}).get("text/plain", ""))
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
    ]
    text = "\n".join(outputs)
    assert "500 leads" in text
    assert "no experiment 'lead-scoring'" in text
    assert not any(
        out.get("output_type") == "error"
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
    )
