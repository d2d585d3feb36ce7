"""nrt: near-real-time monitoring daemon for a gamma-ray space observatory."""

__version__ = "0.1.0"
