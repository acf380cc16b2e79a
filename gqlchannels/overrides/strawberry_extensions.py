"""Strawberry's extension runner, without per-event and per-subscription work for hooks that
no extension has.

For every message of every subscription Strawberry asks each extension for results
(`get_results`, awaited one by one) and opens an `on_stream_result` context manager (an
AsyncExitStack and its deque), even when no extension defines either hook, as none of ours
and few of the users' do. Here both are skipped when no extension overrides them; when one
does, Strawberry's own runner does the work, so every hook still runs as before.

The `on_operation` context of a subscription lives as long as the subscription. Strawberry's
holds an AsyncExitStack whose deque allocates a 64-slot block (760 bytes), and wraps each
generator hook in a new decorated function (about 600 bytes with its attribute dict) for
every operation. Here the stack keeps its callbacks in a list and each hook function is
decorated once; entering, exiting and exception handling are contextlib's own.

This replaces Strawberry's runner and operation context manager, using their internals
(`hooks`, `default_hook`, the exit stack's `_exit_callbacks`), hence the gate: with another
Strawberry, or --no-fast-paths, or a schema class that brings its own runner, Strawberry's
runner serves.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from typing import Any

from strawberry.extensions import SchemaExtension
from strawberry.extensions.context import OperationContextManager, WrappedHook
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.schema import Schema
from strawberry.types import ExecutionContext

from . import Kind, override

GATE = override(
    "strawberry-lean-extension-runner", Kind.FAST_PATH, {"strawberry-graphql": ">=0.341,<0.342"},
    stock="Strawberry's extension runner (per-message hook work, about 1.4 KB more per subscription)",
)

_NO_HOOK = contextlib.nullcontext()  # stateless: one for every result


def _overrides(extension: SchemaExtension, hook: str) -> bool:
    return getattr(type(extension), hook) is not getattr(SchemaExtension, hook)


class _ListExitStack(contextlib.AsyncExitStack):
    """contextlib's AsyncExitStack, its callbacks in a list: it only appends and pops them."""

    def __init__(self) -> None:
        self._exit_callbacks = []  # type: ignore[assignment]


# Bounded by the hook functions the program defines; the size only guards against classes
# made at run time.
_sync_hook = functools.lru_cache(maxsize=256)(contextlib.contextmanager)
_async_hook = functools.lru_cache(maxsize=256)(contextlib.asynccontextmanager)


class LeanOperationContextManager(OperationContextManager):
    __slots__ = ()

    def get_hook(self, extension: SchemaExtension) -> WrappedHook | None:
        hook = getattr(type(extension), self.HOOK_NAME)
        if hook is not self.default_hook:
            if inspect.isgeneratorfunction(hook):
                return WrappedHook(extension, functools.partial(_sync_hook(hook), extension), False)
            if inspect.isasyncgenfunction(hook):
                return WrappedHook(extension, functools.partial(_async_hook(hook), extension), True)
        return super().get_hook(extension)  # no hook, or a plain callable: Strawberry's way

    async def __aenter__(self) -> None:
        self.async_exit_stack = _ListExitStack()
        await self.async_exit_stack.__aenter__()
        for hook in self.hooks:
            if hook.is_async:
                await self.async_exit_stack.enter_async_context(hook.hook())  # type: ignore[arg-type]
            else:
                self.async_exit_stack.enter_context(hook.hook())  # type: ignore[arg-type]


class LeanExtensionsRunner(SchemaExtensionsRunner):
    def __init__(self, execution_context: ExecutionContext, extensions: list[SchemaExtension] | None = None) -> None:
        super().__init__(execution_context, extensions)
        self._any_results = any(_overrides(e, "get_results") for e in self.extensions)
        self._any_stream_hook = any(_overrides(e, "on_stream_result") for e in self.extensions)

    def operation(self) -> OperationContextManager:
        return LeanOperationContextManager(self.extensions)

    def on_stream_result(self, result: Any) -> Any:
        if self._any_stream_hook:
            return super().on_stream_result(result)
        return _NO_HOOK

    async def get_extensions_results(self, ctx: ExecutionContext) -> dict[str, Any]:
        if self._any_results:
            return await super().get_extensions_results(ctx)
        return dict(ctx.extensions_results)


def create_lean_extensions_runner(execution_context: ExecutionContext,
                                  extensions: list[SchemaExtension]) -> SchemaExtensionsRunner:
    """Drop-in for `Schema.create_extensions_runner`."""
    return LeanExtensionsRunner(execution_context, extensions)


def use_lean_runner(schema: Any) -> None:
    """Give `schema` (a served copy) the lean runner, unless its class brings its own runner."""
    if GATE.active and getattr(type(schema), "create_extensions_runner", None) is Schema.create_extensions_runner:
        schema.create_extensions_runner = create_lean_extensions_runner


def needs_result_hooks(runner: SchemaExtensionsRunner) -> bool:
    """Whether each result must be given to the extensions (`get_results`, `on_stream_result`):
    always, unless `runner` is the lean runner and knows no extension defines either."""
    if not isinstance(runner, LeanExtensionsRunner):
        return True
    return runner._any_results or runner._any_stream_hook
