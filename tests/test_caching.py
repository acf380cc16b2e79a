"""Parsed and validated documents are cached (bounded), and the cache really hits: the
limits' validation rules are the same objects on every request."""

from __future__ import annotations

import strawberry
from strawberry.extensions.validation_cache import _get_validate_cache

from gqlchannels.extension import CACHED_DOCUMENTS, with_server_extensions
from gqlchannels.limits import Limits


@strawberry.type
class Query:
    @strawberry.field
    def hello(self) -> str:
        return "hi"


async def test_validation_is_cached_across_requests_and_bounded() -> None:
    served = with_server_extensions(strawberry.Schema(query=Query), Limits(), introspection=True, debug=False)
    cache = _get_validate_cache(CACHED_DOCUMENTS)
    before = cache.cache_info()
    first = await served.execute("{ hello }")
    second = await served.execute("{ hello }")
    after = cache.cache_info()
    assert first.data == second.data == {"hello": "hi"}
    assert after.misses - before.misses == 1 and after.hits - before.hits == 1
    assert after.maxsize == CACHED_DOCUMENTS


async def test_cached_validation_still_enforces_limits() -> None:
    served = with_server_extensions(strawberry.Schema(query=Query), Limits(max_aliases=2), introspection=True,
                                    debug=False)
    for _ in range(2):  # the second answer comes from the cache and must be the same refusal
        result = await served.execute("{ a: hello b: hello c: hello }")
        assert result.errors and "aliases" in result.errors[0].message
