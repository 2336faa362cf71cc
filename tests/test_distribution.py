"""Under MirroredStrategy on 2 (logical) devices, training equals one device."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

HERE = pathlib.Path(__file__).parent


METHODS = ["standard", "il", "label_smoothing", "confidence_penalty", "kd", "tfkd", "dml", "frskd", "isl", "pskd",
           "ols", "il_variants", "il_syncbn", "il_sequential"]
# The logical devices must be made before TensorFlow starts: one fresh process trains every method, and the tests
# share it (one test process runs this file).
pytestmark = pytest.mark.xdist_group("test_distribution")


@pytest.fixture(scope="module")
def results():
    env = {**os.environ, "PYTHONPATH": str(HERE), "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        [sys.executable, str(HERE / "distributed_worker.py"), *METHODS],
        capture_output=True, text=True, env=env, timeout=1200,
    )
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith('{"method"')]
    return {line["method"]: line for line in lines}, result


@pytest.mark.parametrize("method", METHODS)
def test_two_replicas_equal_one_device(method, results):
    by_method, result = results
    assert method in by_method, f"exit {result.returncode}: {result.stderr[-3000:]}"
    out = by_method[method]
    assert "error" not in out, out.get("error")
    # Raw means inside a step would make the 2-replica gradients 2x too large.
    assert out["max_weight_diff"] < 1e-4
    for key, values in out["one"].items():
        np.testing.assert_allclose(out["two"][key], values, rtol=1e-4, atol=1e-6, err_msg=key)
