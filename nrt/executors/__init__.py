"""Executors that run element graphs beyond this process.

The in-process thread-pool executor is ``nrt.execute.LocalExecutor``; this
package holds the distributed ones (``nrt.executors.dask``), imported only when
used so the engine does not depend on them.
"""
