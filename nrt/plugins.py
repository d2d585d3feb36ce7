"""Where the engine finds the science: hooks registered as entry points.

``nrt`` never imports ``detectors`` or ``checks`` at module level; the daemon asks
for a hook by name and gets whatever the installed packages registered in the
``nrt.hooks`` entry-point group (see pyproject.toml). A site can replace a hook
by installing a package that registers the same name.

Hooks the daemon uses:

- ``stream_triggers``: ``factory(config) -> object`` with ``push(chunk) -> list[Trigger]``
  and ``flush() -> list[Trigger]`` (the stream detectors); optionally
  ``push_many(chunks) -> list[Trigger]`` for a backlog (else ``push`` one by one);
- ``pointing_graph``: ``builder(ready, config) -> list[Element]`` (the quick-look and
  health elements of one pointing);
- ``localize``: ``localize(events_chunks, trigger, attitude) -> Localization | None``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from importlib.metadata import entry_points
from typing import Any

GROUP = "nrt.hooks"


class MissingHook(LookupError):
    """No installed package registers the hook."""


@cache
def hook(name: str) -> Callable[..., Any]:
    """The object registered under `name` in the ``nrt.hooks`` group."""
    found = entry_points(group=GROUP, name=name)
    if not found:
        raise MissingHook(
            f"no package registers the nrt hook {name!r}; install nrt with its science "
            f"packages (`pip install -e .` in the checkout registers detectors and checks)"
        )
    return next(iter(found)).load()


def available() -> list[str]:
    return sorted(ep.name for ep in entry_points(group=GROUP))
