"""Validation whose cost is bounded by the document's size, whatever its shape.

Strawberry's QueryDepthLimiter and MaxAliasesLimiter walk a fragment again wherever it is
spread: a 906-byte document whose fragments each spread the next one twice, 22 levels deep,
held the server for 25 s, and a cycle through 300 fragments overflowed the stack. The limits
here look at each definition once, reuse a fragment's figures wherever it is spread and never
recurse; a cycle is reported as graphql-core reports it.

The server validates in two passes (`validate_document`): these limits first, then the
specified rules only for documents within them. graphql-core runs the rules of one pass side
by side, so a limit next to the overlap rule could not spare the document the overlap rule's
work: 830 fields with one name cost it 2 s (it compares every pair).

What remains super-linear in the specified rules is bounded too. The overlap rule gets a work
budget of its own (gqlchannels.overrides.graphql_validation: graphql-core meters its
comparisons; its default lets one document run for seconds), and the first pass here counts
the fragments each operation reaches: graphql-core hashes every operation's fragments for its
variable rules, so 560 operations each reaching 200 fragments took 70 ms.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    Node,
    OperationDefinitionNode,
    SelectionSetNode,
    validate,
    visit,
)
from graphql.language import BREAK, VisitorAction
from graphql.validation import ASTValidationContext, ASTValidationRule

from ..config.limits import Limits
from ..overrides.graphql_validation import bounded, let_go
from ..overrides.strawberry_schema import STRAWBERRY_VALIDATION_RULES

# Fragment spreads followed from each operation, summed over a document's operations.
FRAGMENT_SPREAD_BUDGET = 10_000
# A cycle through hundreds of fragments is named by its first few.
CYCLE_NAMES_SHOWN = 5



@dataclasses.dataclass
class _Definition:
    """What the limits need from one operation or fragment, read from it once."""

    node: OperationDefinitionNode | FragmentDefinitionNode
    # Nesting of the deepest selection below the definition's top level, counted as
    # QueryDepthLimiter counts it: introspection fields (`__schema`) are not entered.
    deepest: int = 0
    aliases: int = 0
    # Every spread (name, the spread, its nesting or None inside an introspection field).
    spreads: list[tuple[str, FragmentSpreadNode, int | None]] = dataclasses.field(default_factory=list)
    # Selection sets with more selections than allowed: (count, the node that owns the set).
    crowded: list[tuple[int, Node]] = dataclasses.field(default_factory=list)


def _read_definition(node: OperationDefinitionNode | FragmentDefinitionNode, max_selection_fields: int) -> _Definition:
    definition = _Definition(node)
    # (selection set, its nesting or None once inside an introspection field, its owner)
    levels: list[tuple[SelectionSetNode, int | None, Node]] = [(node.selection_set, 0, node)]
    while levels:
        selection_set, level, owner = levels.pop()
        count = 0
        same_level = [selection_set]  # inline fragments' selections merge into their parent's
        while same_level:
            for selection in same_level.pop().selections:
                if level is not None and level > definition.deepest:
                    definition.deepest = level
                if isinstance(selection, FieldNode):
                    count += 1
                    if selection.alias:
                        definition.aliases += 1
                    if selection.selection_set:
                        inner = None if level is None or selection.name.value.startswith("__") else level + 1
                        levels.append((selection.selection_set, inner, selection))
                elif isinstance(selection, FragmentSpreadNode):
                    count += 1
                    definition.spreads.append((selection.name.value, selection, level))
                else:
                    same_level.append(selection.selection_set)
        if count > max_selection_fields:
            definition.crowded.append((count, owner))
    return definition


def _cycle_error(path: Sequence[FragmentSpreadNode]) -> GraphQLError:
    """graphql-core's NoFragmentCyclesRule message, naming at most a few fragments."""
    name = path[-1].name.value
    via = [f"'{spread.name.value}'" for spread in path[:-1]]
    if len(via) > CYCLE_NAMES_SHOWN:
        via = [*via[:CYCLE_NAMES_SHOWN], f"... ({len(via) - CYCLE_NAMES_SHOWN} more)"]
    return GraphQLError(
        f"Cannot spread fragment '{name}' within itself" + (f" via {', '.join(via)}." if via else "."),
        list(path[:CYCLE_NAMES_SHOWN]) + [path[-1]] if len(path) > CYCLE_NAMES_SHOWN else list(path),
    )


def check_document(document: DocumentNode, limits: Limits) -> list[GraphQLError]:
    """The limits' errors for `document`, in time linear in its size."""
    operations: list[_Definition] = []
    fragments: dict[str, _Definition] = {}
    for node in document.definitions:
        if isinstance(node, OperationDefinitionNode):
            operations.append(_read_definition(node, limits.max_selection_fields))
        elif isinstance(node, FragmentDefinitionNode):
            fragments[node.name.value] = _read_definition(node, limits.max_selection_fields)
    errors: list[GraphQLError] = []

    # Each fragment's depth and aliases from the fragments it spreads, after them (a walk of
    # the spread graph with a stack, not recursion). A spread closing a cycle adds nothing.
    depth: dict[str, int] = {}
    aliases: dict[str, int] = {}
    for root in fragments:
        if root in depth:
            continue
        path = {root: 0}  # fragments being walked, in order, with their place on the path
        spreads_left = [iter(fragments[root].spreads)]
        path_spreads: list[FragmentSpreadNode] = []  # the spread that led to each but the root
        while spreads_left:
            for name, spread, _level in spreads_left[-1]:
                if name in path:
                    errors.append(_cycle_error([*path_spreads[path[name]:], spread]))
                elif name in fragments and name not in depth:
                    path[name] = len(path)
                    spreads_left.append(iter(fragments[name].spreads))
                    path_spreads.append(spread)
                    break
            else:
                name, _place = path.popitem()
                spreads_left.pop()
                if path_spreads:
                    path_spreads.pop()
                depth[name], aliases[name] = _depth(fragments[name], depth), _aliases(fragments[name], aliases)

    total_aliases = 0
    for operation in operations:
        if _depth(operation, depth) > limits.max_depth:
            name = operation.node.name.value if operation.node.name else "anonymous"
            errors.append(GraphQLError(
                f"'{name}' exceeds maximum operation depth of {limits.max_depth}", operation.node))
        total_aliases += _aliases(operation, aliases)
    if total_aliases > limits.max_aliases:
        errors.append(GraphQLError(f"{total_aliases} aliases found. Allowed: {limits.max_aliases}"))
    for definition in (*operations, *fragments.values()):
        for count, owner in definition.crowded:
            errors.append(GraphQLError(
                f"{count} fields found in one selection set. Allowed: {limits.max_selection_fields}", owner))
    if not errors:
        errors.extend(_fragment_spreads_error(operations, fragments))
    return errors


def _depth(definition: _Definition, fragment_depth: dict[str, int]) -> int:
    deepest = definition.deepest
    for name, _spread, level in definition.spreads:
        if level is not None:
            deepest = max(deepest, level + fragment_depth.get(name, 0))
    return deepest


def _aliases(definition: _Definition, fragment_aliases: dict[str, int]) -> int:
    # As executed: a fragment's aliases count each time it is spread (as MaxAliasesLimiter
    # counts them), computed once per fragment.
    return definition.aliases + sum(fragment_aliases.get(name, 0) for name, _spread, _level in definition.spreads)


def _fragment_spreads_error(operations: Iterable[_Definition],
                            fragments: dict[str, _Definition]) -> list[GraphQLError]:
    """graphql-core's variable rules go through every fragment each operation reaches: bound
    the sum over operations of the spreads followed from each (operations that spread the
    same fragments share one walk, as in graphql-core, but each counts)."""
    followed_from: dict[frozenset[str], int] = {}
    total = 0
    for operation in operations:
        direct = frozenset(name for name, _spread, _level in operation.spreads)
        followed = followed_from.get(direct)
        if followed is None:
            followed = 0
            reached = set(direct)
            pending = [name for name in direct if name in fragments]
            while pending and total + followed <= FRAGMENT_SPREAD_BUDGET:
                for name, _spread, _level in fragments[pending.pop()].spreads:
                    followed += 1
                    if name not in reached and name in fragments:
                        reached.add(name)
                        pending.append(name)
            followed_from[direct] = followed
        total += len(direct) + followed
        if total > FRAGMENT_SPREAD_BUDGET:
            return [GraphQLError(
                "The document is too complex to validate: its operations reach their fragments "
                f"through more than {FRAGMENT_SPREAD_BUDGET} fragment spreads in all. Send only "
                "the operation to run, with the fragments it uses."
            )]
    return []


class DocumentLimitsRule(ASTValidationRule):
    """Depth, aliases and fields per selection set, fragment cycles: checked from the
    document as a whole when the visit starts, so the visit itself stops there.

    Make one for given limits with `for_limits`; the server runs it before every other rule.
    """

    limits: Limits

    @classmethod
    def for_limits(cls, limits: Limits) -> type[DocumentLimitsRule]:
        return type(cls.__name__, (cls,), {"limits": limits, "__module__": __name__})

    def enter_document(self, node: DocumentNode, *_args: Any) -> VisitorAction:
        for error in check_document(node, self.limits):
            self.report_error(error)
        return BREAK


def validate_document(schema: GraphQLSchema, document: DocumentNode,
                      rules: Sequence[type[ASTValidationRule]], limits_rule: type[DocumentLimitsRule],
                      *, hide_suggestions: bool = False) -> list[GraphQLError]:
    """The limits, then (only for a document within them) `rules` with Strawberry's own, as
    Strawberry validates."""
    errors: list[GraphQLError] = []
    limits = limits_rule(ASTValidationContext(document, errors.append))
    try:
        visit(document, limits)
    finally:
        let_go([limits])
    if errors:
        return errors
    made: list[ASTValidationRule] = []

    def recorded(rule: type[ASTValidationRule]) -> Callable[[ASTValidationContext], ASTValidationRule]:
        def make(context: ASTValidationContext) -> ASTValidationRule:
            made.append(rule(context))
            return made[-1]
        return make

    try:
        return validate(schema, document, [recorded(rule) for rule in (*bounded(rules), *STRAWBERRY_VALIDATION_RULES)],
                        hide_suggestions=hide_suggestions)  # type: ignore[misc]  # factories, not classes
    finally:
        let_go(made)
