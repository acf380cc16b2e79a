"""Strawberry's extension runner, without per-event work for hooks that no extension has.

For every message of every subscription Strawberry asks each extension for results
(`get_results`, awaited one by one) and opens an `on_stream_result` context manager (an
AsyncExitStack and its deque), even when no extension defines either hook, as none of ours
and few of the users' do. Here both are skipped when no extension overrides them; when one
does, Strawberry's own runner does the work, so every hook still runs as before.
"""

from __future__ import annotations

import contextlib
from typing import Any

from strawberry.extensions import SchemaExtension
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.types import ExecutionContext

_NO_HOOK = contextlib.nullcontext()  # stateless: one for every result


def _overrides(extension: SchemaExtension, hook: str) -> bool:
    return getattr(type(extension), hook) is not getattr(SchemaExtension, hook)


class LeanExtensionsRunner(SchemaExtensionsRunner):
    def __init__(self, execution_context: ExecutionContext, extensions: list[SchemaExtension] | None = None) -> None:
        super().__init__(execution_context, extensions)
        self._any_results = any(_overrides(e, "get_results") for e in self.extensions)
        self._any_stream_hook = any(_overrides(e, "on_stream_result") for e in self.extensions)

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
