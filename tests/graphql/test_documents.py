"""Parsed and validated documents are cached (bounded in number and in size), and the cache
really hits: the limits' validation rules are the same objects on every request."""

from __future__ import annotations

import strawberry
from graphql.validation import ValidationRule
from strawberry.extensions import AddValidationRules

from gqlchannels.config.limits import Limits
from gqlchannels.graphql.documents import DOCUMENTS, DocumentCache
from gqlchannels.graphql.extension import with_server_extensions

VALIDATIONS: list[str] = []


class CountValidations(ValidationRule):
    def __init__(self, context) -> None:  # type: ignore[no-untyped-def]
        super().__init__(context)
        VALIDATIONS.append(context.document.loc.source.body)


@strawberry.type
class Query:
    @strawberry.field
    def hello(self) -> str:
        return "hi"


async def test_validation_is_cached_across_requests() -> None:
    schema = strawberry.Schema(query=Query, extensions=[lambda: AddValidationRules([CountValidations])])
    served = with_server_extensions(schema, Limits(), introspection=True, debug=False)
    query = "query CachingProbe { hello }"
    hits, misses = DOCUMENTS.hits, DOCUMENTS.misses
    first = await served.execute(query)
    second = await served.execute(query)
    assert first.data == second.data == {"hello": "hi"}
    assert (DOCUMENTS.misses - misses, DOCUMENTS.hits - hits) == (1, 1)
    assert VALIDATIONS.count(query) == 1


async def test_cached_validation_still_enforces_limits() -> None:
    served = with_server_extensions(strawberry.Schema(query=Query), Limits(max_aliases=2), introspection=True,
                                    debug=False)
    for _ in range(2):  # the second answer comes from the cache and must be the same refusal
        result = await served.execute("{ a: hello b: hello c: hello }")
        assert result.errors and "aliases" in result.errors[0].message


def test_cache_is_bounded_in_documents_and_in_text() -> None:
    def query(number: int) -> str:
        return f"{{ a{number:03}: b }}"

    by_number = DocumentCache(max_documents=3, max_chars=1000)
    for number in range(4):
        by_number.parse(query(number), None)
    assert len(by_number) == 3 and by_number.get(query(0), None) is None  # the oldest went

    by_text = DocumentCache(max_documents=100, max_chars=200)
    for number in range(20):
        by_text.parse(query(number), None)
    assert len(by_text) == 200 // len(query(0)) and by_text.get(query(1), None) is None
    long_query = "{ " + "b " * 20 + "}"  # longer than a tenth of the whole: prepared, not kept
    assert by_text.parse(long_query, None).document is not None
    assert by_text.get(long_query, None) is None
