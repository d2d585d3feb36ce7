"""nrt: near-real-time monitoring daemon for a gamma-ray space observatory.

The engine in one import::

    import nrt as da

    class Analysis(da.DataAnalysis):
        input_b = BAnalysis
        cached = True
        def main(self):
            self.data = self.input_b.data
"""

from nrt.element import AnalysisException, DataAnalysis, Element, GraphError
from nrt.execute import ElementError, run

__version__ = "0.1.0"

__all__ = [
    "AnalysisException",
    "DataAnalysis",
    "Element",
    "ElementError",
    "GraphError",
    "run",
]
