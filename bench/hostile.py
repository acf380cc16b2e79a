"""Hostile GraphQL documents: each attack shape as large as the default limits let it be, the
cost of parsing and validating each, and the load side that sends them, as its own process.

    python -m bench.hostile attack HTTP_URL --clients 4 --seconds 10

`attack` sends the shapes in turn from each client, every document different (a fresh
string in it), so the server's document cache never helps. It prints {"started": true} once
the first answer is in, and one JSON object with what was sent when its time is up.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import time
from collections.abc import Callable

import httpx
from graphql import parse
from graphql.language import Lexer, Source, TokenKind

from gqlchannels.config.limits import Limits

MAX_TOKENS = Limits().max_tokens  # the server's default limits
MAX_SELECTION_FIELDS = Limits().max_selection_fields


def tokens(document: str) -> int:
    lexer = Lexer(Source(document))
    count = 0
    while lexer.advance().kind != TokenKind.EOF:
        count += 1
    return count


def largest(make: Callable[[str, int], str], cap: int = MAX_SELECTION_FIELDS) -> Callable[[str], str]:
    """`make(seed, n)` with the largest n up to `cap` whose document stays within the token limit."""
    low, high = 1, cap + 1
    while low < high - 1:
        middle = (low + high) // 2
        if tokens(make("seed-0000", middle)) <= MAX_TOKENS:
            low = middle
        else:
            high = middle
    return lambda seed: make(seed, low)


def fragment_bomb(seed: str, levels: int, leaf: str = "hello") -> str:
    return " ".join(["{ ...F0 }", *(f"fragment F{n} on Query {{ ...F{n + 1} ...F{n + 1} }}" for n in range(levels)),
                     f'fragment F{levels} on Query {{ {leaf}(name: "{seed}") }}'])


def same_named_fields(seed: str, count: int) -> str:
    return "{ " + " ".join(f'hello(name: "{seed}-{n}")' for n in range(count)) + " }"


def fragments_side_by_side(seed: str, count: int) -> str:
    return "{ " + " ".join(f"...F{n}" for n in range(count)) + " } " + " ".join(
        f'fragment F{n} on Query {{ hello(name: "{seed}-{n}") }}' for n in range(count))


def fields_against_a_fragment(seed: str, count: int) -> str:
    return ("{ " + " ".join(f'hello(name: "{seed}-a{n}")' for n in range(count - 1)) + " ...G } fragment G on Query { "
            + " ".join(f'hello(name: "{seed}-b{n}")' for n in range(count)) + " }")


def nested_same_named_fields(seed: str, count: int) -> str:
    return "{ " + " ".join(f'__type(name: "{seed}-{n}") {{ name kind description }}' for n in range(count)) + " }"


def fragment_cycle(seed: str, count: int) -> str:
    return " ".join([f'{{ hello(name: "{seed}") ...F0 }}',
                     *(f"fragment F{n} on Query {{ ...F{(n + 1) % count} }}" for n in range(count))])


def operations_sharing_a_chain(seed: str, operations: int, chain: int = 198) -> str:
    """graphql-core aborts past 200 levels of fragment nesting: a chain just within it."""
    return " ".join([*(f"query Q{n} {{ ...F0 }}" for n in range(operations)),
                     *(f"fragment F{n} on Query {{ ...F{n + 1} }}" for n in range(chain)),
                     f'fragment F{chain} on Query {{ hello(name: "{seed}") }}'])


def fragment_chains(seed: str, length: int) -> str:
    """Valid: four chains of fragments, one per root of __schema, hundreds of fragments in all."""
    roots = ("types", "queryType", "mutationType", "subscriptionType")
    return " ".join([
        "{ __schema { " + " ".join(f"{root} {{ ...{root}0 }}" for root in roots) + f' }} hello(name: "{seed}") }}',
        *(f"fragment {root}{n} on __Type {{ name ofType {{ ...{root}{n + 1} }} }}" for root in roots for n in range(length)),
        *(f"fragment {root}{length} on __Type {{ name }}" for root in roots)])


def aliased_introspection(seed: str, count: int) -> str:
    """Valid: the same introspection query under as many aliases as allowed."""
    fields = "name kind description fields { name description args { name type { name kind ofType { name } } } " \
             "type { name kind ofType { name kind ofType { name } } } isDeprecated deprecationReason }"
    return "{ " + " ".join(f'q{n}: __type(name: "Query") {{ {fields} }}' for n in range(count)) + \
        f' hello(name: "{seed}") }}'


def unknown_fields(seed: str, count: int) -> str:
    return "{ " + " ".join(f"helo{n}" for n in range(count - 1)) + f' hello(name: "{seed}") }}'


def megabyte_string(seed: str) -> str:
    return f'{{ hello(name: "{seed}{"x" * 1_000_000}") }}'


SHAPES: dict[str, Callable[[str], str]] = {
    "fragment bomb, 22 levels": lambda seed: fragment_bomb(seed, 22),
    "alias bomb, 22 levels": lambda seed: fragment_bomb(seed, 22, "a: hello"),
    "same-named fields, to the token limit": largest(same_named_fields, cap=830),
    "same-named fields, at the cap": largest(same_named_fields),
    "fragments side by side, at the cap": largest(fragments_side_by_side),
    "fields against a fragment": largest(fields_against_a_fragment),
    "nested same-named fields": largest(nested_same_named_fields),
    "fragment cycle": largest(fragment_cycle, cap=10_000),
    "operations sharing a fragment chain": largest(operations_sharing_a_chain, cap=10_000),
    "unknown fields (suggestions)": largest(unknown_fields),
    # graphql-core nests fragments 200 levels at most (each of these spends two)
    "fragment chains (valid)": largest(fragment_chains, cap=95),
    "aliased introspection (valid)": largest(aliased_introspection, cap=50),
    "1 MB string argument": megabyte_string,
}


def measure_validation(repeats: int) -> dict[str, dict[str, object]]:
    """Parse and validate each shape in this process as the server does (default limits): the
    CPU time each takes (this thread's: on a machine shared with other work, the wall clock
    would measure them too), in ms, the best of `repeats` runs."""
    from graphql import specified_rules

    from gqlchannels.config.limits import Limits
    from gqlchannels.examples.chat import schema
    from gqlchannels.graphql.extension import policy_for

    policy = policy_for(Limits(), introspection=True, debug=False)
    validate = policy.validator(schema._schema, (*specified_rules, *policy.validation_rules))
    figures: dict[str, dict[str, object]] = {}
    for name, make in SHAPES.items():
        document_text = make("seed-0000")
        parse_ms = validate_ms = float("inf")
        for _ in range(repeats):
            started = time.thread_time()
            document = parse(document_text, max_tokens=MAX_TOKENS)
            parse_ms = min(parse_ms, (time.thread_time() - started) * 1000)
            started = time.thread_time()
            errors = validate(document)
            validate_ms = min(validate_ms, (time.thread_time() - started) * 1000)
        figures[name] = {"bytes": len(document_text), "tokens": tokens(document_text), "parse_ms": parse_ms,
                         "validate_ms": validate_ms, "outcome": errors[0].message if errors else "valid"}
    return figures


async def attack(url: str, clients: int, seconds: float) -> dict[str, object]:
    deadline = time.monotonic() + seconds
    seeds = itertools.count()
    shapes = list(SHAPES.values())
    statuses: dict[int, int] = {}

    async def one(client: httpx.AsyncClient, offset: int) -> None:
        for make in itertools.islice(itertools.cycle(shapes), offset, None):
            if time.monotonic() > deadline:
                return
            response = await client.post(url, json={"query": make(f"seed-{next(seeds):04}")})
            if not statuses:
                print(json.dumps({"started": True}), flush=True)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=clients)) as client:
        await asyncio.gather(*(one(client, n) for n in range(clients)))
    return {"sent": sum(statuses.values()), "statuses": statuses}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["attack"])
    parser.add_argument("url")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(attack(args.url, args.clients, args.seconds))))


if __name__ == "__main__":
    main()
