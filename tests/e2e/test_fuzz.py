"""Spec-driven fuzzing: Schemathesis reads the running API's own OpenAPI document
(`/schema/openapi.json`), generates valid and invalid requests for every operation
from it, sends them over real HTTP and checks every response against the same
document.

It runs as the `schemathesis` command, the way anyone would run it against the
service (its pytest plugin does not work with pytest 9), in every phase: the
document's examples, boundary values of every constraint ("coverage"), random
valid and invalid requests ("fuzzing"), and chains of requests that follow the
links it infers, create -> get -> cancel -> history ("stateful"). The checks:

- not_a_server_error: no 5xx, ever;
- status_code / content_type / response_headers / response_schema conformance:
  each response is one the document describes (X-Request-ID, problem+json …);
- negative_data_rejection and missing_required_header: requests the document
  calls invalid are refused with a 4xx;
- valid_requests_are_accepted (tests/e2e/fuzz_hooks.py): requests it calls valid
  are accepted, but for the refusals no schema can express, named there;
- unsupported_method and allow_header_conformance: 405 with Allow, and OPTIONS
  lists every method;
- use_after_free and ensure_resource_availability: what was created can be read,
  in the stateful phase.

The run is deterministic (derandomized Hypothesis, no example database) and
bounded by MAX_EXAMPLES per operation and phase. It prints how many requests it
made and the statuses it got back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from scripts.stack.paths import REPO
from tests.support.pipeline import Pipeline

MAX_EXAMPLES = 50
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "missing_required_header",
    "valid_requests_are_accepted",
    "unsupported_method",
    "allow_header_conformance",
    "use_after_free",
    "ensure_resource_availability",
]
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


def fuzz(api: Pipeline, reports: Path) -> subprocess.CompletedProcess[str]:
    command = [
        str(SCHEMATHESIS), "run", f"{api.api_url}/schema/openapi.json",
        "--checks", ",".join(CHECKS),
        "--max-examples", str(MAX_EXAMPLES),
        "--generation-deterministic",  # derandomized Hypothesis, so no example database
        "--seed", "1",
        "--workers", "1",
        "--request-timeout", "10",
        # Authenticated as staff, who may act for any customer the fuzzer makes up.
        "--header", f"Authorization: Bearer {api.key.admin()}",
        "--report", "json,har",
        "--report-json-path", str(reports / "run.json"),
        "--report-har-path", str(reports / "requests.har"),
        "--no-color",
    ]  # fmt: skip
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.e2e.fuzz_hooks",
        "PYTHONPATH": str(REPO),
    }
    # cwd: nothing (.hypothesis, reports) lands in the repository
    return subprocess.run(
        command, cwd=reports, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def statuses(har: dict[str, Any]) -> Counter[int]:
    return Counter(int(entry["response"]["status"]) for entry in har["log"]["entries"])


def test_every_response_matches_the_openapi_document(
    api: Pipeline,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    record_property: Any,
) -> None:
    result = fuzz(api, tmp_path)
    output = result.stdout[-30_000:] + result.stderr[-5_000:]
    assert (tmp_path / "run.json").exists(), output
    run = json.loads((tmp_path / "run.json").read_text())
    seen = statuses(json.loads((tmp_path / "requests.har").read_text()))
    requests = sum(seen.values())
    summary = (
        f"fuzz run: {requests} requests ({run['test_cases']['generated']} test cases) over "
        f"{run['operations']['tested']} operations in {run['running_time']:.0f} s; "
        f"{len(run['failures'])} failures, {len(run['errors'])} errors; "
        f"statuses {dict(sorted(seen.items()))}"
    )
    record_property("fuzz", summary)
    with capsys.disabled():
        print(f"\n{summary}")

    assert result.returncode == 0, output
    assert run["complete"] and run["failures"] == [] and run["errors"] == []
    assert run["operations"]["tested"] == run["operations"]["total"] >= 7
    assert all(phase["status"] == "success" for phase in run["phases"].values()), run["phases"]
    # Not vacuous: orders were created, and invalid requests were refused.
    assert seen[201] > 0
    assert sum(count for status, count in seen.items() if 400 <= status < 500) > 0
    assert not [status for status in seen if status >= 500]
