"""The daemon: ``nrt run`` (live) and ``nrt replay`` (a directory), one asyncio process."""

from nrt.daemon.core import Daemon, Layout, Summary

__all__ = ["Daemon", "Layout", "Summary"]
