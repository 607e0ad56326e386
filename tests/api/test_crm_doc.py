"""docs/crm.md holds: its field map and both CRMs' requests, sent as written to a real uvicorn.

The CRM side (HubSpot's workflow, Salesforce's flow) cannot run here; what can is checked: the
service reads each request exactly as the page shows it, with the page's headers and map, and
answers with the fields the page tells the CRM to write back.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import httpx
import pytest
import yaml
from tests.scorers import build_scorer
from tests.servers import uvicorn_service

from predictive_scoring.config import FIELD_MAP_ENV
from predictive_scoring.serve.schemas import ScoreResponse

pytestmark = [pytest.mark.api, pytest.mark.slow]

PAGE = Path(__file__).resolve().parents[2] / "docs" / "crm.md"
KEY = "crm-doc-key"


def _block(name: str) -> str:
    """The fenced block that follows ``<!-- crm-doc: name -->`` in the page."""
    found = re.search(rf"<!-- crm-doc: {name} -->\n```[a-z]*\n(.*?)\n```", PAGE.read_text(), re.S)
    assert found, f"docs/crm.md has no block marked {name!r}"
    return found.group(1)


def _request(name: str) -> tuple[str, dict[str, str], bytes]:
    """The path, headers and body of an ``http`` block."""
    head, _, body = _block(name).partition("\n\n")
    line, *fields = head.splitlines()
    method, path, _ = line.split(" ")
    assert method == "POST"
    headers = dict(f.split(": ", 1) for f in fields)
    headers.pop("Host")
    return path, headers, body.encode()


def test_the_pages_requests_are_scored_as_written(tmp_path: Path) -> None:
    mapping = yaml.safe_load(_block("field-map"))
    (tmp_path / "field-map.yaml").write_text(_block("field-map"))
    bundle = build_scorer(version="7", seed=3, rounds=20, crm_inputs=True).save(
        tmp_path / "bundle"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREDICTIVE_SCORING_")}
    env |= {
        "PREDICTIVE_SCORING_API_KEYS": KEY,
        "PREDICTIVE_SCORING_BUNDLE_DIR": str(bundle),
        FIELD_MAP_ENV: str(tmp_path / "field-map.yaml"),
        "PREDICTIVE_SCORING_LOG_ENABLED": "false",
    }
    answers = {}
    with uvicorn_service(env, cwd=tmp_path) as base:
        for crm in ("hubspot", "salesforce"):
            path, headers, body = _request(f"{crm}-request")
            headers["X-API-Key"] = KEY  # the page shows a placeholder
            sent = json.loads(body)
            assert set(sent) <= set(mapping), f"{crm}: fields the map lacks"
            answer = httpx.post(f"{base}{path}", content=body, headers=headers, timeout=60)
            assert answer.status_code == 200, (crm, answer.text)
            answers[crm] = (sent, answer.json())
    for crm, (sent, answer) in answers.items():
        ids = [v for k, v in sent.items() if mapping[k] == "lead_id"]
        assert answer["lead_id"] == ids[0], crm
        assert 1 <= answer["score"] <= 99 and answer["stage"] in {"SQL", "MQL", "nurture"}
        assert 0 < answer["probability"] < 1 and answer["model"]["version"] == "7"
        ScoreResponse.model_validate(answer)
    # the answer shown on the page has the shape the service answers with
    ScoreResponse.model_validate(json.loads(_block("response")))
    warned = {(w["field"], w["value"]) for w in answers["salesforce"][1]["warnings"]}
    assert ("lead_source", "Web") in warned  # never seen in training, as the page says
