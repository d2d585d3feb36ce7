"""mosquitto started with the repository's production configuration (deploy/mosquitto).

Only what cannot be the same on a test machine is swapped: the listener's port (and
address: loopback), the paths of the certificates, password file, ACL and persistence
directory, the log destination, and the user to run as. Every other line, in particular
``allow_anonymous false``, the TLS settings and the ACL file's content, is the deployed one.
"""

from __future__ import annotations

import getpass
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.support.mosquitto import Mosquitto
from tests.support.services import require_binary

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto"
USERS = ("nrt", "producer", "subscriber", "intruder")  # intruder: a login, no ACL entry


def password_file(path: Path, passwords: dict[str, str]) -> Path:
    """A mosquitto password file (hashed by mosquitto_passwd)."""
    tool = require_binary("mosquitto_passwd")
    path.write_text("")
    for user, password in passwords.items():
        subprocess.run([tool, "-b", str(path), user, password], check=True)
    return path


def render(text: str, files: dict[str, Path], port: int, workdir: Path) -> str:
    """The deployed configuration with this machine's paths and port."""
    swap = {
        "listener": f"{port} 127.0.0.1",
        "password_file": files["passwords"],
        "acl_file": DEPLOY / "nrt.acl",
        "cafile": files["ca.crt"],
        "certfile": files["broker.crt"],
        "keyfile": files["broker.key"],
        "persistence_location": f"{workdir / 'data'}/",
        "log_dest": f"file {workdir / 'mosquitto.log'}",
    }
    out, seen = [f"user {getpass.getuser()}"], set()
    for line in text.splitlines():
        key = line.split(" ", 1)[0]
        if key in swap and not line.startswith("#"):
            line = f"{key} {swap[key]}"
            seen.add(key)
        elif key == "log_type":
            line = "log_type all"
        out.append(line)
    missing = set(swap) - seen
    assert not missing, f"deploy/mosquitto/nrt.conf lost its {sorted(missing)} lines"
    return "\n".join(out) + "\n"


@dataclass
class DeployedBroker(Mosquitto):
    """`Mosquitto` whose configuration is deploy/mosquitto/nrt.conf, rendered."""

    files: dict[str, Path] | None = None

    def config_text(self) -> str:
        (self.workdir / "data").mkdir(parents=True, exist_ok=True)
        text = (DEPLOY / "nrt.conf").read_text()
        return render(text, self.files or {}, self.port, self.workdir)

    @property
    def url(self) -> str:
        return f"mqtts://127.0.0.1:{self.port}"
