"""Per-pointing quick-look: calibrated spectrum, light curves, detector and sky images,
SPI-ACS summary and the health checks, as cached nrt elements (see ``graph``)."""

from detectors.quicklook.graph import Graph, QuickLook, build, roots_from_files, run_quicklook

__all__ = ["Graph", "QuickLook", "build", "roots_from_files", "run_quicklook"]
