"""The one exception every telemetry reader raises for unusable input."""

from __future__ import annotations


class TelemetryError(ValueError):
    """A telemetry file that cannot be used; says which file, what is wrong and how to fix it.

    ``str(error)`` is ``"<file>: <field>: <problem>; fix: <fix>"``, one line, suitable for a
    quarantine ``.reason`` file; the parts are kept as attributes for metrics and logs.
    """

    def __init__(self, file: str, field: str, problem: str, fix: str) -> None:
        self.file, self.field, self.problem, self.fix = file, field, problem, fix
        super().__init__(f"{file}: {field}: {problem}; fix: {fix}")

    @property
    def reason(self) -> str:
        """One line for a quarantine ``.reason`` file."""
        return str(self)
