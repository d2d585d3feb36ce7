"""Resolving an element graph and running what is missing.

``run(target)`` computes every signature first (nothing runs), looks the target
up, and if it is cached restores only it. Otherwise it walks upstream only as
far as needed (a cached input stops the walk), then runs the missing elements
in dependency order, independent branches concurrently on a thread pool (numpy
releases the GIL). Each computation happens under single flight, so the same
signature asked for at once by two threads or two processes runs once.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

from nrt import metrics
from nrt.cache import Cache, Entry, default_cache
from nrt.element import AnalysisException, Element

log = logging.getLogger(__name__)


class ElementError(RuntimeError):
    """An element's main() raised an unexpected exception (not cached)."""

    def __init__(self, element: Element, signature: str, error: BaseException) -> None:
        self.element_name = type(element).__name__
        self.signature = signature
        super().__init__(
            f"{self.element_name} [{signature[:12]}] failed: {type(error).__name__}: {error}"
        )


@dataclass
class Node:
    """One distinct signature in the graph, with every instance that shares it."""

    signature: str
    instances: list[Element]
    deps: set[str] = field(default_factory=set)
    users: set[str] = field(default_factory=set)
    entry: Entry | None = None

    @property
    def element(self) -> Element:
        return self.instances[0]

    @property
    def name(self) -> str:
        return type(self.element).__name__


def plan(target: Element, cache: Cache) -> dict[str, Node]:
    """The nodes needed for `target`: cached ones carry their entry and stop the walk."""
    nodes: dict[str, Node] = {}

    def visit(element: Element) -> str:
        signature = element.signature
        node = nodes.get(signature)
        if node is not None:
            node.instances.append(element)
            return signature
        node = nodes[signature] = Node(signature, [element])
        node.entry = cache.lookup(signature, persistent=type(element).cached)
        if node.entry is None:
            for child in element.inputs.values():
                dep = visit(child)
                node.deps.add(dep)
                nodes[dep].users.add(signature)
        return signature

    visit(target)
    return nodes


class LocalExecutor:
    """Runs a graph on a thread pool in this process."""

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = max_workers or min(8, (os.cpu_count() or 1) + 2)

    def run(self, target: Element, cache: Cache) -> None:
        cache.remember_graph(list(target.walk()))
        nodes = plan(target, cache)
        failures: dict[str, BaseException] = {}
        pending = {s: set(n.deps) for s, n in nodes.items() if n.entry is None}
        for node in nodes.values():
            if node.entry is not None:
                self._finish(node, node.entry, nodes, failures, pending)

        with cf.ThreadPoolExecutor(self.max_workers, thread_name_prefix="nrt-element") as pool:
            running: dict[cf.Future, Node] = {}
            error: BaseException | None = None
            while True:
                if error is None:
                    for signature in [s for s, deps in pending.items() if not deps]:
                        del pending[signature]
                        node = nodes[signature]
                        running[pool.submit(compute, node.element, cache)] = node
                if not running:
                    break
                finished, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
                for future in finished:
                    node = running.pop(future)
                    try:
                        entry = future.result()
                    except BaseException as exc:  # ElementError, cache errors: not cached
                        error = error or exc
                        continue
                    self._finish(node, entry, nodes, failures, pending)
            if error is not None:
                raise error

        if target.signature in failures:
            raise failures[target.signature]

    @staticmethod
    def _finish(
        node: Node,
        entry: Entry,
        nodes: dict[str, Node],
        failures: dict[str, BaseException],
        pending: dict[str, set[str]],
    ) -> None:
        """Give the result to every instance of the node; fail dependents of a negative one."""
        if entry.failed:
            _fail(
                node,
                AnalysisException(f"{node.name}: {entry.manifest.get('error')}"),
                nodes,
                failures,
                pending,
            )
            return
        outputs = entry.outputs if entry.outputs is not None else {}
        for instance in node.instances:
            instance._set_outputs(outputs)
        for user in node.users:
            if user in pending:
                pending[user].discard(node.signature)


def _fail(
    node: Node,
    error: AnalysisException,
    nodes: dict[str, Node],
    failures: dict[str, BaseException],
    pending: dict[str, set[str]],
) -> None:
    failures[node.signature] = error
    pending.pop(node.signature, None)
    for user in node.users:
        if user not in failures:
            upstream = AnalysisException(f"{nodes[user].name}: input {node.name} failed: {error}")
            _fail(nodes[user], upstream, nodes, failures, pending)


def compute(element: Element, cache: Cache) -> Entry:
    """Run one element (its inputs are in place) under single flight; store the result."""
    signature = element.signature
    cls = type(element)
    with cache.single_flight(signature):
        entry = cache.lookup(signature, persistent=cls.cached)
        if entry is not None:
            return entry  # another thread or process computed it while we waited
        started = time.perf_counter()
        try:
            outputs = element._run_main()
        except AnalysisException as exc:
            seconds = time.perf_counter() - started
            metrics.ELEMENT_RUNS.labels(cls.__qualname__, "expected_failure").inc()
            log.info(
                "%s [%s]: %s (cached as a negative result)", cls.__qualname__, signature[:12], exc
            )
            return cache.store_failure(element, exc, seconds)
        except Exception as exc:
            metrics.ELEMENT_RUNS.labels(cls.__qualname__, "error").inc()
            log.exception("%s [%s] failed", cls.__qualname__, signature[:12])
            raise ElementError(element, signature, exc) from exc
        seconds = time.perf_counter() - started
        metrics.ELEMENT_RUNS.labels(cls.__qualname__, "ok").inc()
        metrics.ELEMENT_RUN_SECONDS.labels(cls.__qualname__).observe(seconds)
        log.debug("ran %s [%s] in %.3f s", cls.__qualname__, signature[:12], seconds)
        return cache.store(element, outputs, seconds)


def run(target: Element, cache: Cache | None = None, executor: Any = None) -> None:
    """Compute or restore `target`'s outputs (and whatever upstream it needs)."""
    (executor or LocalExecutor()).run(target, cache or default_cache())
