"""The test suite's own setup does what pytest.ini relies on."""

import os
import subprocess
import sys
import textwrap


def test_loadgroup_runs_a_group_in_one_process(tmp_path):
    """Files marked `xdist_group` build costly module fixtures once: the installed pytest and pytest-xdist must
    keep a group in one process (pytest 9.2 silently spread it over all of them, pytest-dev/pytest-xdist#1386)."""
    (tmp_path / "test_grouped.py").write_text(textwrap.dedent('''
        import os
        import pytest

        pytestmark = pytest.mark.xdist_group("grouped")


        @pytest.mark.parametrize("i", range(8))
        def test_records_its_process(i):
            with open(os.environ["GROUP_LOG"], "a") as log:
                log.write(os.environ["PYTEST_XDIST_WORKER"] + "\\n")
    '''))
    log = tmp_path / "workers.log"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-q", "-p", "no:cacheprovider",
         "-c", os.devnull, "--rootdir", str(tmp_path), str(tmp_path / "test_grouped.py")],
        capture_output=True, text=True, env={**os.environ, "GROUP_LOG": str(log)}, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    workers = log.read_text().split()
    assert len(workers) == 8 and len(set(workers)) == 1, workers
