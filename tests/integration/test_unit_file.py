"""contrib/mailedge.service, as far as it can be checked without a running
systemd: `systemd-analyze verify` on it (every key known, every value
parsed, every command executable), with the binary under test standing in
for /usr/local/sbin/mailedge, and the binary built with what the unit asks
of it (Type=notify and WatchdogSec need sd_notify)."""

import os
import shutil
import subprocess

import pytest

import harness as h

UNIT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "contrib",
                    "mailedge.service")
INSTALLED = "/usr/local/sbin/mailedge"


def _verify(path):
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", path],
                       capture_output=True, text=True, timeout=h.DEADLINE)
    return r.returncode, (r.stdout + r.stderr).strip()


@pytest.fixture
def analyze():
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is missing (Debian: systemd; scripts/deps.sh test)",
                    pytrace=False)


def test_unit_file_verifies(binary, analyze, tmp_path):
    with open(UNIT) as f:
        text = f.read()
    assert text.count(INSTALLED) == 3, "ExecStartPre, ExecStart and ExecReload name %s" % INSTALLED
    unit = tmp_path / "mailedge.service"
    unit.write_text(text.replace(INSTALLED, binary))
    rc, out = _verify(str(unit))
    # Unknown keys and bad values are only warnings (exit status 0): any
    # output at all fails.
    assert rc == 0 and out == "", out


def test_unit_file_check_catches_a_bad_key(analyze, tmp_path):
    """The check above can fail: a misspelt key and a bad value are reported."""
    unit = tmp_path / "bad.service"
    unit.write_text("[Service]\nType=notfy\nExecStart=/bin/true\nWatchdogSecs=30s\n")
    rc, out = _verify(str(unit))
    assert "notfy" in out and "WatchdogSecs" in out, out


def test_binary_speaks_sd_notify(binary):
    """Type=notify and WatchdogSec=: without sd_notify systemd would wait for
    READY=1 until TimeoutStartSec and then kill the service."""
    with open(UNIT) as f:
        text = f.read()
    assert "Type=notify" in text and "WatchdogSec=" in text
    assert "systemd-notify" in h.run_mailedge(binary, ["-V"]).stdout
