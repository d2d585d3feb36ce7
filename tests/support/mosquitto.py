"""A real mosquitto broker per test, on a free port, with its own configuration.

Options cover what the tests need: persistence (to survive restarts),
password file and ACL, and a TLS listener.
"""

from __future__ import annotations

import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.services import free_port, require_binary, wait_for_port


@dataclass
class Mosquitto:
    """One mosquitto process; `start()` may be called again after `stop()` on the same port."""

    workdir: Path
    port: int = field(default_factory=free_port)
    persistence: bool = True
    password_file: Path | None = None
    acl_file: Path | None = None
    tls: dict[str, Path] | None = None  # keys: cafile, certfile, keyfile
    extra: str = ""
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        scheme = "mqtts" if self.tls else "mqtt"
        return f"{scheme}://127.0.0.1:{self.port}"

    def config_text(self) -> str:
        import getpass

        # As root mosquitto drops to the `mosquitto` user, which cannot write into
        # the test's directories: stay the current user.
        lines = [f"user {getpass.getuser()}", f"listener {self.port} 127.0.0.1"]
        if self.tls:
            lines += [
                f"cafile {self.tls['cafile']}",
                f"certfile {self.tls['certfile']}",
                f"keyfile {self.tls['keyfile']}",
            ]
        if self.password_file:
            lines += ["allow_anonymous false", f"password_file {self.password_file}"]
        else:
            lines.append("allow_anonymous true")
        if self.acl_file:
            lines.append(f"acl_file {self.acl_file}")
        if self.persistence:
            data = self.workdir / "data"
            data.mkdir(parents=True, exist_ok=True)
            lines += ["persistence true", f"persistence_location {data}/", "autosave_interval 1"]
        lines += [f"log_dest file {self.workdir / 'mosquitto.log'}", "log_type all"]
        lines.append(self.extra)
        return "\n".join(lines) + "\n"

    def start(self) -> Mosquitto:
        binary = require_binary("mosquitto")
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(self.config_text())
        self.process = subprocess.Popen(
            [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            wait_for_port(self.port)
        except TimeoutError:
            self.process.kill()
            _, err = self.process.communicate()
            raise RuntimeError(f"mosquitto did not start: {err.decode(errors='replace')}") from None
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def log(self) -> str:
        path = self.workdir / "mosquitto.log"
        return path.read_text(errors="replace") if path.exists() else ""
