"""Under MirroredStrategy on 2 (logical) devices, training equals one device."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

HERE = pathlib.Path(__file__).parent


@pytest.mark.parametrize(
    "method",
    ["standard", "il", "label_smoothing", "confidence_penalty", "kd", "tfkd", "dml", "frskd", "isl", "pskd", "ols",
     "il_variants", "il_syncbn", "il_sequential"],
)
def test_two_replicas_equal_one_device(method):
    env = {**os.environ, "PYTHONPATH": str(HERE), "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        [sys.executable, str(HERE / "distributed_worker.py"), method],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    # Raw means inside a step would make the 2-replica gradients 2x too large.
    assert out["max_weight_diff"] < 1e-4
    for key, values in out["one"].items():
        np.testing.assert_allclose(out["two"][key], values, rtol=1e-4, atol=1e-6, err_msg=key)
