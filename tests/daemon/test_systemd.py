"""The systemd unit passes systemd's own checks; the notify protocol speaks to a real socket."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from nrt.systemd import Notifier, watchdog_interval
from tests.support.services import require_binary

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "nrt.service"


@pytest.fixture
def unit_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this checkout's nrt (verify wants an executable)."""
    nrt = shutil.which("nrt") or str(Path(os.sys.executable).with_name("nrt"))
    text = UNIT.read_text().replace("/usr/local/bin/nrt", nrt)
    path = tmp_path / "nrt.service"
    path.write_text(text)
    return path


def test_unit_verifies_without_any_warning(unit_copy):
    analyze = require_binary("systemd-analyze")
    out = subprocess.run(
        [analyze, "verify", str(unit_copy)], capture_output=True, text=True, cwd=unit_copy.parent
    )
    messages = [
        ln
        for ln in (out.stdout + out.stderr).splitlines()
        if "nrt.service" in ln or "Unknown" in ln
    ]
    assert out.returncode == 0 and not messages, out.stdout + out.stderr


def test_unit_exposure_is_at_most_2_5(unit_copy):
    analyze = require_binary("systemd-analyze")
    out = subprocess.run(
        [analyze, "security", "--offline=yes", str(unit_copy)],
        capture_output=True,
        text=True,
        cwd=unit_copy.parent,
    )
    match = re.search(r"Overall exposure level for nrt.service: ([\d.]+)", out.stdout + out.stderr)
    assert match, out.stdout + out.stderr
    assert float(match.group(1)) <= 2.5


def test_unit_is_type_notify_with_watchdog_and_state_directories():
    text = UNIT.read_text()
    for line in (
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "StateDirectory=nrt",
        "CacheDirectory=nrt",
        "ConfigurationDirectory=nrt",
        "LoadCredential=mqtt-password",
        "SystemCallFilter=sched_setaffinity",  # [daemon] cpus (nrt.affinity)
    ):
        assert line in text


def _receiver(tmp_path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.settimeout(5)
    return sock


def test_notifier_sends_the_protocol_lines(tmp_path):
    sock = _receiver(tmp_path)
    notifier = Notifier(str(tmp_path / "notify.sock"))
    assert notifier.ready("listening")
    assert sock.recv(4096) == b"READY=1\nSTATUS=listening"
    notifier.watchdog()
    assert sock.recv(4096) == b"WATCHDOG=1"
    notifier.stopping("draining")
    assert sock.recv(4096) == b"STOPPING=1\nSTATUS=draining"


def test_notifier_abstract_socket_and_absence():
    name = f"nrt-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(5)
    Notifier("@" + name).status("hello")
    assert sock.recv(4096) == b"STATUS=hello"
    assert Notifier("").send(READY=1) is False  # not under systemd: a no-op


def test_watchdog_interval_is_half_of_watchdog_usec(monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert watchdog_interval() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", "1")  # meant for another process
    assert watchdog_interval() is None
