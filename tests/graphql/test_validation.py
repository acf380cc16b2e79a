"""The limits refuse what Strawberry's QueryDepthLimiter and MaxAliasesLimiter refused, on
generated documents; they never recurse; and past a limit the other rules do not run."""

from __future__ import annotations

import random
import sys

import pytest
from graphql import FragmentDefinitionNode, OperationDefinitionNode, parse, specified_rules, validate
from strawberry.extensions import QueryDepthLimiter
from strawberry.extensions.max_aliases import count_fields_with_alias

from gqlchannels.config.limits import Limits
from gqlchannels.graphql.validation import DocumentLimitsRule, check_document, validate_document
from tests.support.ops_schema import schema

UNLIMITED = 10**9


def selections(rng: random.Random, on: str, fragments: int, level: int) -> str:
    """A few selections on `on` (Query or Node): fields, aliases, introspection, inline
    fragments and spreads of the document's fragments."""
    chosen = []
    for _ in range(rng.randint(1, 2)):
        draw = rng.random()
        alias = f"a{rng.randint(0, 9)}: " if rng.random() < 0.3 else ""
        if on == "Query":
            if draw < 0.3 or level > 6:
                chosen.append(alias + "hello")
            elif draw < 0.45:
                chosen.append(alias + "__schema { queryType { name } types { fields { name } } }")
            elif draw < 0.75:
                chosen.append(f"{alias}node {{ {selections(rng, 'Node', fragments, level + 1)} }}")
            elif draw < 0.9 and fragments:
                chosen.append(f"...Q{rng.randrange(fragments)}")
            else:
                chosen.append(f"... on Query {{ {selections(rng, 'Query', fragments, level)} }}")
        elif draw < 0.3 or level > 6:
            chosen.append(alias + "value")
        elif draw < 0.7:
            chosen.append(f"{alias}child {{ {selections(rng, 'Node', fragments, level + 1)} }}")
        elif draw < 0.9 and fragments:
            chosen.append(f"...N{rng.randrange(fragments)}")
        else:
            chosen.append(f"... on Node {{ {selections(rng, 'Node', fragments, level)} }}")
    return " ".join(chosen)


def generated_documents(count: int) -> list[str]:
    rng = random.Random(16)
    documents = []
    while len(documents) < count:
        fragments = rng.randint(0, 3)
        parts = [f"query O{n} {{ {selections(rng, 'Query', fragments, 0)} }}" for n in range(rng.randint(1, 2))]
        parts += [f"fragment Q{n} on Query {{ {selections(rng, 'Query', fragments, 0)} }}" for n in range(fragments)]
        parts += [f"fragment N{n} on Node {{ {selections(rng, 'Node', fragments, 0)} }}" for n in range(fragments)]
        document = " ".join(parts)
        # Strawberry's limiters skip a spread that closes a cycle, the limits here too; such
        # documents are refused for the cycle anyway.
        if not any("within itself" in e.message for e in check_document(parse(document), Limits(max_depth=UNLIMITED))):
            documents.append(document)
    return documents


DOCUMENTS = generated_documents(300)


@pytest.mark.parametrize("max_depth", [2, 3, 4, 5])
def test_depth_is_refused_where_query_depth_limiter_refused_it(max_depth: int) -> None:
    for document in DOCUMENTS:
        node = parse(document)
        refused_before = validate(schema._schema, node, QueryDepthLimiter(max_depth=max_depth).validation_rules,
                                  max_errors=UNLIMITED)
        refused_now = check_document(node, Limits(max_depth=max_depth, max_aliases=UNLIMITED))
        assert bool(refused_before) == bool(refused_now), document


def test_aliases_are_counted_as_max_aliases_limiter_counted_them() -> None:
    for document in DOCUMENTS:
        node = parse(document)
        fragments = {d.name.value: d for d in node.definitions if isinstance(d, FragmentDefinitionNode)}
        aliases = sum(count_fields_with_alias(d, fragments) for d in node.definitions
                      if isinstance(d, OperationDefinitionNode))
        assert check_document(node, Limits(max_depth=UNLIMITED, max_aliases=aliases)) == [], document
        if aliases:
            [refusal] = check_document(node, Limits(max_depth=UNLIMITED, max_aliases=aliases - 1))
            assert refusal.message == f"{aliases} aliases found. Allowed: {aliases - 1}"


def test_long_fragment_chains_and_cycles_do_not_recurse() -> None:
    chain = 3 * sys.getrecursionlimit()
    spreads = " ".join(f"fragment F{n} on Query {{ node {{ ...F{n + 1} }} }}" for n in range(chain))
    document = parse(f"{{ ...F0 }} {spreads} fragment F{chain} on Query {{ hello }}", max_tokens=None)
    assert [e.message for e in check_document(document, Limits(max_depth=chain + 1))] == []
    [refusal] = check_document(document, Limits(max_depth=chain - 1))
    assert refusal.message == f"'anonymous' exceeds maximum operation depth of {chain - 1}"
    cycle = parse(" ".join(["{ ...F0 }", *(f"fragment F{n} on Query {{ ...F{(n + 1) % chain} }}"
                                           for n in range(chain))]), max_tokens=None)
    [refusal] = check_document(cycle, Limits())
    assert refusal.message == f"Cannot spread fragment 'F0' within itself via 'F1', 'F2', 'F3', 'F4', 'F5', " \
                              f"... ({chain - 6} more)."


def test_short_cycles_read_as_graphql_core_reports_them() -> None:
    document = "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A ...B }"
    ours = [e.message for e in check_document(parse(document), Limits())]
    assert sorted(ours) == sorted(e.message for e in validate(schema._schema, parse(document)))


def test_past_a_limit_the_other_rules_do_not_run() -> None:
    document = parse("{ node { child { child { nope } } } }")
    limits_rule = DocumentLimitsRule.for_limits(Limits(max_depth=2))
    assert [e.message for e in validate_document(schema._schema, document, specified_rules, limits_rule)] == \
        ["'anonymous' exceeds maximum operation depth of 2"]
    within = DocumentLimitsRule.for_limits(Limits(max_depth=3))
    assert [e.message for e in validate_document(schema._schema, document, specified_rules, within)] == \
        ["Cannot query field 'nope' on type 'Node'."]
