"""``@traced`` and ``span()``: MentatLab spans on top of the OpenTelemetry API.

``@traced`` decides everything at decoration time (STYLE.md 11.3): the function's shape
(sync, coroutine, generator, async generator), its span name and kind, and which
arguments to capture (an allowlist, because arguments may hold PII). Each call then starts
one span, attaches it as current while the function's own code runs, meters it
(:mod:`mentatlab.sdk.meters`), records an exception and re-raises it unchanged. For
generators the span covers the whole iteration, from the call to exhaustion or close.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Callable, Generator, Mapping, Sequence
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, cast, overload

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from mentatlab.sdk import configure
from mentatlab.sdk._safety import log_internal_error
from mentatlab.sdk.meters import ResourceMeter

__all__ = ["span", "traced"]

P = ParamSpec("P")
R = TypeVar("R")

_KINDS = {kind.name.lower(): kind for kind in SpanKind}
_MAX_ARG_CHARS = 1024
_fallback_tracer = trace.get_tracer("mentatlab")
AttributesFor = Callable[[tuple[Any, ...], dict[str, Any]], Mapping[str, AttributeValue]]


def _to_kind(kind: SpanKind | str) -> SpanKind:
    if isinstance(kind, SpanKind):
        return kind
    try:
        return _KINDS[kind.lower()]
    except KeyError:
        raise ValueError(f"Expected kind to be one of {sorted(_KINDS)}, got {kind!r}") from None


class _Run:
    """One span in flight: the OTel span, its meter and its attach token."""

    __slots__ = ("ctx", "meter", "span", "token")

    def __init__(self, name: str, kind: SpanKind, attributes: Mapping[str, AttributeValue] | None,
                 is_async: bool, context: Context | None) -> None:
        state = configure._state
        tracer = state.tracer if state is not None else _fallback_tracer
        if context is None and state is not None and state.env_context is not None:
            if not trace.get_current_span().get_span_context().is_valid:
                context = state.env_context
        self.span = tracer.start_span(name, context=context, kind=kind, attributes=attributes)
        self.ctx = trace.set_span_in_context(self.span, context)
        self.meter: ResourceMeter | None = None
        if state is not None and state.sampler is not None and self.span.is_recording():
            self.meter = ResourceMeter(state.sampler, is_async=is_async)
        self.token: object = None

    def enter(self) -> None:
        self.token = otel_context.attach(self.ctx)
        if self.meter is not None:
            self.meter.resume()

    def exit(self) -> None:
        if self.meter is not None:
            self.meter.pause()
        otel_context.detach(self.token)  # type: ignore[arg-type]

    def finish(self, exc: BaseException | None) -> None:
        span = self.span
        if exc is not None and not isinstance(exc, GeneratorExit):
            span.record_exception(exc, escaped=True)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        if self.meter is not None:
            span.set_attributes(self.meter.finish())
        span.end()


def _start(name: str, kind: SpanKind, attributes: Mapping[str, AttributeValue] | None,
           is_async: bool, context: Context | None = None) -> _Run | None:
    try:
        return _Run(name, kind, attributes, is_async, context)
    except Exception:
        log_internal_error()
        return None


def _safe(action: Callable[[], None]) -> None:
    try:
        action()
    except Exception:
        log_internal_error()


def _safe_finish(run: _Run, exc: BaseException | None) -> None:
    try:
        run.finish(exc)
    except Exception:
        log_internal_error()


def _arg_value(value: object) -> AttributeValue:
    if isinstance(value, (str, bool, int, float)):
        return value[:_MAX_ARG_CHARS] if isinstance(value, str) else value
    return repr(value)[:_MAX_ARG_CHARS]


def _make_arg_capture(func: Callable[..., Any], capture_args: bool | Sequence[str]
                      ) -> AttributesFor | None:
    if capture_args is False or capture_args == ():
        return None
    signature = inspect.signature(func)
    allowed = None if capture_args is True else frozenset(capture_args)

    def capture(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, AttributeValue]:
        bound = signature.bind_partial(*args, **kwargs)
        return {f"mentat.args.{key}": _arg_value(value) for key, value in bound.arguments.items()
                if (allowed is None or key in allowed) and key not in ("self", "cls")}

    return capture


def _wrap(func: Callable[P, R], name: str | None, kind: SpanKind | str,
          capture_args: bool | Sequence[str], attributes: Mapping[str, AttributeValue] | None
          ) -> Callable[P, R]:
    span_name = name or func.__qualname__
    span_kind = _to_kind(kind)
    static: dict[str, AttributeValue] = {"code.function.name": func.__qualname__}
    static.update(attributes or {})
    capture = _make_arg_capture(func, capture_args)

    def attributes_for(args: tuple[Any, ...], kwargs: dict[str, Any]
                       ) -> Mapping[str, AttributeValue]:
        if capture is None:
            return static
        try:
            return {**static, **capture(args, kwargs)}
        except Exception:
            log_internal_error()
            return static

    if inspect.isasyncgenfunction(func):
        return cast(Callable[P, R], _wrap_async_gen(func, span_name, span_kind, attributes_for))
    if inspect.isgeneratorfunction(func):
        return cast(Callable[P, R], _wrap_gen(func, span_name, span_kind, attributes_for))
    if inspect.iscoroutinefunction(func):
        async_func = cast(Callable[..., Any], func)

        @functools.wraps(func)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            run = _start(span_name, span_kind, attributes_for(args, kwargs), True)
            if run is None:
                return await async_func(*args, **kwargs)
            _safe(run.enter)
            try:
                result = await async_func(*args, **kwargs)
            except BaseException as exc:
                _safe(run.exit)
                _safe_finish(run, exc)
                raise
            _safe(run.exit)
            _safe_finish(run, None)
            return result

        return cast(Callable[P, R], async_wrapper)

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        run = _start(span_name, span_kind, attributes_for(args, kwargs), False)
        if run is None:
            return func(*args, **kwargs)
        _safe(run.enter)
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            _safe(run.exit)
            _safe_finish(run, exc)
            raise
        _safe(run.exit)
        _safe_finish(run, None)
        return result

    return wrapper


def _wrap_gen(func: Callable[..., Generator[Any, Any, Any]], name: str, kind: SpanKind,
              attributes_for: AttributesFor) -> Callable[..., Generator[Any, Any, Any]]:
    @functools.wraps(func)
    def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
        run = _start(name, kind, attributes_for(args, kwargs), False)
        if run is None:
            return (yield from func(*args, **kwargs))
        error: BaseException | None = None
        try:
            gen = func(*args, **kwargs)
            to_send: Any = None
            to_throw: BaseException | None = None
            while True:
                _safe(run.enter)
                try:
                    item = gen.send(to_send) if to_throw is None else gen.throw(to_throw)
                except StopIteration as stop:
                    return stop.value
                finally:
                    _safe(run.exit)
                try:
                    to_send, to_throw = (yield item), None
                except GeneratorExit:
                    gen.close()
                    raise
                except BaseException as exc:  # thrown in by the consumer: pass it on
                    to_send, to_throw = None, exc
        except BaseException as exc:
            error = exc
            raise
        finally:
            _safe_finish(run, error)

    return gen_wrapper


def _wrap_async_gen(func: Callable[..., AsyncIterator[Any]], name: str, kind: SpanKind,
                    attributes_for: AttributesFor) -> Callable[..., AsyncIterator[Any]]:
    @functools.wraps(func)
    async def async_gen_wrapper(*args: Any, **kwargs: Any) -> Any:
        run = _start(name, kind, attributes_for(args, kwargs), True)
        agen: Any = func(*args, **kwargs)
        if run is None:
            async for item in agen:
                yield item
            return
        error: BaseException | None = None
        try:
            to_send: Any = None
            to_throw: BaseException | None = None
            while True:
                _safe(run.enter)
                try:
                    if to_throw is None:
                        item = await agen.asend(to_send)
                    else:
                        item = await agen.athrow(to_throw)
                except StopAsyncIteration:
                    return
                finally:
                    _safe(run.exit)
                try:
                    to_send, to_throw = (yield item), None
                except GeneratorExit:
                    await agen.aclose()
                    raise
                except BaseException as exc:  # thrown in by the consumer: pass it on
                    to_send, to_throw = None, exc
        except BaseException as exc:
            error = exc
            raise
        finally:
            _safe_finish(run, error)

    return async_gen_wrapper


@overload
def traced(func: Callable[P, R], /) -> Callable[P, R]: ...


@overload
def traced(
    *,
    name: str | None = None,
    kind: SpanKind | str = SpanKind.INTERNAL,
    capture_args: bool | Sequence[str] = False,
    attributes: Mapping[str, AttributeValue] | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]: ...


def traced(
    func: Callable[P, R] | None = None,
    /,
    *,
    name: str | None = None,
    kind: SpanKind | str = SpanKind.INTERNAL,
    capture_args: bool | Sequence[str] = False,
    attributes: Mapping[str, AttributeValue] | None = None,
) -> Callable[P, R] | Callable[[Callable[P, R]], Callable[P, R]]:
    """Trace every call of a function, method, coroutine, generator or async generator.

    Use bare (``@traced``) or with options (``@traced(name="plan", kind="client")``).

    Args:
        func: the function, when used bare.
        name: span name; default the function's ``__qualname__``.
        kind: OTel span kind, or its name (``internal``, ``client``, ``server``,
            ``producer``, ``consumer``).
        capture_args: argument names to record as ``mentat.args.<name>`` (str/int/float/
            bool as is, others as ``repr`` cut to 1024 characters); ``True`` records all
            but ``self``/``cls``. Off by default because arguments may hold PII.
        attributes: constant attributes for every span.

    Returns:
        The wrapped function (same signature), or a decorator when ``func`` is None.

    Raises:
        ValueError: ``kind`` is not a span kind name (at decoration time).
    """
    span_kind = _to_kind(kind)
    if func is not None:
        return _wrap(func, name, span_kind, capture_args, attributes)

    def decorator(inner: Callable[P, R]) -> Callable[P, R]:
        return _wrap(inner, name, span_kind, capture_args, attributes)

    return decorator


class span:  # noqa: N801 - used like a function: ``with mentatlab.span("step"):``
    """Trace a block: ``with mentatlab.span("retrieve", tool_name="search") as s:``.

    Works as ``with`` and ``async with``. Keyword attributes are canonical field names,
    recorded as ``mentat.<name>`` (``tool_name`` → ``mentat.tool_name``); names with a
    dot are recorded as given (``gen_ai.request.model``). The block's exception is
    recorded on the span and propagates unchanged. Yields the OTel span.
    """

    __slots__ = ("_attributes", "_context", "_kind", "_name", "_run")

    def __init__(self, name: str, *, kind: SpanKind | str = SpanKind.INTERNAL,
                 context: Context | None = None, **attributes: AttributeValue) -> None:
        self._name = name
        self._kind = _to_kind(kind)
        self._context = context
        self._attributes = {key if "." in key else f"mentat.{key}": value
                            for key, value in attributes.items()}
        self._run: _Run | None = None

    def __enter__(self) -> trace.Span:
        run = self._run = _start(self._name, self._kind, self._attributes, True, self._context)
        if run is None:
            return trace.INVALID_SPAN
        try:
            run.enter()
        except Exception:
            log_internal_error()
        return run.span

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        run = self._run
        if run is not None:
            try:
                run.exit()
            except Exception:
                log_internal_error()
            try:
                run.finish(exc)
            except Exception:
                log_internal_error()

    async def __aenter__(self) -> trace.Span:
        return self.__enter__()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        traceback: TracebackType | None) -> None:
        self.__exit__(exc_type, exc, traceback)
