"""SIGHUP re-reads the configuration; secrets never reach the logs; a bad file is refused."""

from __future__ import annotations

import signal

from tests.daemon.harness import Notifications, daemon_config, start_daemon, wait_until
from tests.support.services import free_port


def test_sighup_reload_and_secrets(tmp_path, mosquitto):
    secret = "s3cret-password-never-logged"
    (tmp_path / "pw").write_text(secret)
    config = daemon_config(tmp_path, mosquitto.url, free_port())
    text = config.read_text()
    config.write_text(
        text.replace('client_id = "e2e"', f'client_id = "e2e"\npassword_file = "{tmp_path / "pw"}"')
        + '[logging]\nlevel = "DEBUG"\n'
    )
    notify = Notifications(tmp_path / "notify.sock")
    daemon = start_daemon(config, notify.path)
    try:
        notify.wait_for("READY=1", timeout=60)
        config.write_text(config.read_text() + "[trigger]\nfar_per_day = 0.1\n")
        daemon.send_signal(signal.SIGHUP)
        notify.wait_for("RELOADING=1", timeout=10)
        wait_until(
            lambda: "STATUS=configuration reloaded" in notify.lines, 10, "reload acknowledged"
        )

        config.write_text(
            config.read_text() + "[trigger]\nfar_per_day = -5\n"
        )  # duplicate table: bad TOML
        daemon.send_signal(signal.SIGHUP)
        wait_until(
            lambda: "STATUS=reload refused (bad configuration)" in notify.lines,
            10,
            "reload refused",
        )
        assert daemon.poll() is None, "a bad configuration must not stop the daemon"
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=60) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
        output = daemon.communicate()[0]
        notify.close()
    assert "configuration reloaded: trigger.far_per_day" in output
    assert "reload refused" in output
    assert secret not in output
