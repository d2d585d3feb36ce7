"""A broker whose persistence really works when the tests run as root.

Run as root, mosquitto drops to the ``mosquitto`` user, which cannot write into
pytest's private tmp directory, so its database and log silently go nowhere and a
restart forgets every session. ``user root`` keeps it as it was started (and is
ignored when the tests do not run as root).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.mosquitto import Mosquitto


@pytest.fixture
def broker(tmp_path: Path):
    server = Mosquitto(workdir=tmp_path / "broker", extra="user root").start()
    yield server
    server.stop()
