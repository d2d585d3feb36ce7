"""Elements: pure analysis steps written as Python classes (DESIGN.md section 3).

An element declares its inputs as ``input_*`` class attributes (an Element class
or instance) and its parameters as other public class attributes holding plain
values. ``main()`` computes and sets outputs as public attributes. ``get()``
computes or restores them. ``signature`` identifies the result before anything
runs: a Merkle hash over name, version, parameters, code and input signatures.
"""

from __future__ import annotations

import copy
import inspect
import threading
import types
from collections.abc import Iterator
from typing import Any, ClassVar

from nrt import signature as sig

#: Class attributes that configure the engine rather than parametrize the analysis.
RESERVED = frozenset({"version", "cached", "hash_includes", "negative_ttl"})


class AnalysisException(Exception):
    """An expected failure (no data, too few counts).

    It is cached as a negative result (with an expiry, ``negative_ttl``) and the
    elements downstream fail with it without running.
    """


class GraphError(TypeError):
    """The element graph is malformed: a bad input declaration or a cycle."""


_constructing = threading.local()


def _is_parameter(name: str, value: Any) -> bool:
    if name.startswith("_") or name in RESERVED or name.startswith("input_"):
        return False
    return not (
        inspect.isroutine(value)
        or isinstance(value, staticmethod | classmethod | property | type | types.ModuleType)
    )


class Element:
    """Base class of every analysis element (alias: ``DataAnalysis``).

    Engine settings (class attributes): ``version`` (bump to invalidate results),
    ``cached`` (True: results go to the persistent cache tiers; False: memory
    only), ``hash_includes`` (helper functions, classes, modules or constants the
    code depends on), ``negative_ttl`` (seconds an AnalysisException is remembered).
    """

    version: ClassVar[str] = "v0"
    cached: ClassVar[bool] = False
    hash_includes: ClassVar[tuple] = ()
    negative_ttl: ClassVar[float] = 3600.0

    # ------------------------------------------------------------ declaration

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, value in vars(cls).items():
            if name.startswith("input_"):
                if not _is_element_spec(value):
                    raise GraphError(
                        f"{cls.__name__}.{name} must be an Element class or instance, "
                        f"got {type(value).__name__} {value!r}; declare inputs as "
                        f"`{name} = SomeElement` or `{name} = SomeElement(param=...)`"
                    )
            elif _is_parameter(name, value):
                try:
                    sig.canonical(value)
                except sig.SignatureError as exc:
                    raise TypeError(
                        f"{cls.__name__}.{name}: parameters must be plain values; {exc}. "
                        f"Make it private (`_{name}`) if it is not a parameter."
                    ) from None
        cls._code_hash = None
        cls._include_tokens = None

    @classmethod
    def declared_parameters(cls) -> dict[str, Any]:
        """Parameters and their class-level defaults, base classes first."""
        found: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            if klass is object or not issubclass(klass, Element) or klass is Element:
                continue
            for name, value in vars(klass).items():
                if _is_parameter(name, value):
                    found[name] = value
        return found

    @classmethod
    def declared_inputs(cls) -> dict[str, Any]:
        """Inputs as declared on the class: name -> Element class or instance."""
        found: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            for name, value in vars(klass).items():
                if name.startswith("input_"):
                    found[name] = value
        return found

    @classmethod
    def code_hash(cls) -> str:
        """Hash of this class's own methods (and its bases' up to Element)."""
        if cls.__dict__.get("_code_hash") is None:
            cls._code_hash = sig.class_code_hash(cls, Element)
        return cls._code_hash

    @classmethod
    def include_tokens(cls) -> list:
        """Tokens of ``hash_includes`` (their ASTs hashed once per class, like the code)."""
        if cls.__dict__.get("_include_tokens") is None:
            cls._include_tokens = [sig.include_token(item) for item in cls.hash_includes]
        return cls._include_tokens

    # ------------------------------------------------------------ instances

    def __init__(self, **kwargs: Any) -> None:
        cls = type(self)
        params = cls.declared_parameters()
        inputs = cls.declared_inputs()
        unknown = sorted(set(kwargs) - set(params) - set(inputs))
        if unknown:
            raise TypeError(
                f"{cls.__name__}() got unknown keyword(s) {', '.join(unknown)}; "
                f"parameters: {', '.join(sorted(params)) or 'none'}; "
                f"inputs: {', '.join(sorted(inputs)) or 'none'}"
            )
        for name, default in params.items():
            value = kwargs.get(name, default)
            if name in kwargs:
                try:
                    sig.canonical(value)
                except sig.SignatureError as exc:
                    raise TypeError(f"{cls.__name__}({name}=...): {exc}") from None
            object.__setattr__(self, name, copy.deepcopy(value))
        stack = _constructing.__dict__.setdefault("stack", [])
        if cls in stack:
            path = " -> ".join(k.__name__ for k in [*stack[stack.index(cls) :], cls])
            raise GraphError(
                f"cycle in the element graph: {path}; an element cannot depend on itself"
            )
        stack.append(cls)
        try:
            for name, spec in inputs.items():
                spec = kwargs.get(name, spec)
                if not _is_element_spec(spec):
                    raise GraphError(
                        f"{cls.__name__}({name}=...) must be an Element class or instance, "
                        f"got {type(spec).__name__}"
                    )
                object.__setattr__(self, name, spec() if isinstance(spec, type) else spec)
        finally:
            stack.pop()
        self._output_names: tuple[str, ...] = ()

    def main(self) -> None:
        """Compute the outputs from the inputs and parameters. Override this."""
        raise NotImplementedError(f"{type(self).__name__} must define main()")

    # ------------------------------------------------------------ identity

    @property
    def parameters(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in type(self).declared_parameters()}

    @property
    def inputs(self) -> dict[str, Element]:
        return {name: getattr(self, name) for name in type(self).declared_inputs()}

    def components(self) -> dict[str, Any]:
        """The canonical parts the signature is made of (what ``nrt cache why`` compares)."""
        cls = type(self)
        return {
            "name": cls.__qualname__,
            "version": str(cls.version),
            "params": {k: sig.canonical(v) for k, v in sorted(self.parameters.items())},
            "inputs": {k: v.signature for k, v in sorted(self.inputs.items())},
            "code": cls.code_hash(),
            "includes": cls.include_tokens(),
        }

    @property
    def signature(self) -> str:
        """Hex sha256 identifying this element's result; computing nothing.

        Memoized; setting a public attribute forgets it. (Changing a parameter of
        an *input* after its user's signature was taken is not tracked: build a
        new element instead.)
        """
        found = self.__dict__.get("_signature")
        if found is None:
            found = self.__dict__["_signature"] = sig.merkle(self.components())
        return found

    def __setattr__(self, name: str, value: Any) -> None:
        if not name.startswith("_"):
            self.__dict__.pop("_signature", None)
        object.__setattr__(self, name, value)

    @property
    def pointing(self) -> str | None:
        """The pointing this result belongs to: a ``pointing`` parameter, else an input's."""
        own = self.parameters.get("pointing")
        if isinstance(own, str):
            return own
        for element in self.inputs.values():
            found = element.pointing
            if found:
                return found
        return None

    def walk(self) -> Iterator[Element]:
        """This element and everything upstream, depth first, inputs before users."""
        for element in self.inputs.values():
            yield from element.walk()
        yield self

    # ------------------------------------------------------------ outputs

    @property
    def outputs(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._output_names}

    def _set_outputs(self, outputs: dict[str, Any]) -> None:
        for name, value in outputs.items():
            object.__setattr__(self, name, value)
        self._output_names = tuple(outputs)

    def _run_main(self) -> dict[str, Any]:
        """Run main() and return the public attributes it set."""
        before = set(self.__dict__)
        self.main()
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_") and k not in before}

    def get(self, cache: Any = None, executor: Any = None) -> Element:
        """Compute or restore this element's outputs; returns self."""
        from nrt.execute import run

        run(self, cache=cache, executor=executor)
        return self

    def __repr__(self) -> str:
        cls = type(self)
        defaults = cls.declared_parameters()
        changed = {
            k: v
            for k, v in self.parameters.items()
            if sig.canonical(v) != sig.canonical(defaults[k])
        }
        args = ", ".join(f"{k}={v!r}" for k, v in changed.items())
        return f"{cls.__name__}({args})"


def _is_element_spec(value: Any) -> bool:
    return isinstance(value, Element) or (isinstance(value, type) and issubclass(value, Element))


DataAnalysis = Element
