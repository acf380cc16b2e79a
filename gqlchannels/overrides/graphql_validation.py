"""graphql-core's overlap rule with a smaller work budget, and validation rules let go at once
(a fix).

The overlap rule (OverlappingFieldsCanBeMergedRule) compares fields with the same response
name pairwise: 830 fields with one name cost it 2 s. graphql-core 3.3.2 meters its work, but
its default budget lets one document run for seconds; `bounded(rules)` gives it a budget of
FIELD_MERGE_BUDGET (setting the rule context's private meter) and a refusal that says why.

`let_go(rules)` clears the validation rules' state once a validation is done: a visitor
keeps its own bound methods (its enter_leave_map), a reference cycle that leaves what the
rule holds (the document; the overlap rule's comparisons, tens of thousands of objects for a
large document) to the cycle collector, whose full collections then took 100 ms to a
second under such documents, holding the GIL.

With another graphql-core, the overlap rule runs with its own budget, and rules are freed by
the cycle collector.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from graphql.validation import ASTValidationRule, OverlappingFieldsCanBeMergedRule, ValidationContext
from graphql.validation.validate import ValidationAbortedError

from . import Kind, override

GATE = override(
    "graphql-core-bounded-overlap-check", Kind.FIX, {"graphql-core": ">=3.3.2,<3.4"},
    stock="graphql-core's overlap check with its own work budget (seconds for some documents)",
)

# Units of graphql-core's own meter in the overlap rule (a comparison of two fields costs 2).
# The most expensive units, fields that conflict, take about 1 us each here: the budget keeps
# the rule to about 20 ms. GraphiQL's introspection query spends none; 30 fragments spread
# side by side on one object, each selecting `id`, `name`, `__typename` and `owner { id name }`,
# about 11,000 (graphql-core's default, 500,000, let one document take seconds).
FIELD_MERGE_BUDGET = 20_000
TOO_COMPLEX_TO_MERGE = (
    "The document is too complex to validate: checking that its fields can be merged takes "
    "more comparisons than this server makes. Use fewer fields with the same name in one "
    "selection set, or fewer fragments spread side by side."
)


class BoundedOverlappingFieldsRule(OverlappingFieldsCanBeMergedRule):
    """graphql-core's overlap rule with a smaller work budget, and a refusal that says why."""

    def __init__(self, context: ValidationContext) -> None:
        super().__init__(context)
        self.rule_context.remaining_complexity_budget = FIELD_MERGE_BUDGET

    def enter_selection_set(self, *args: Any) -> None:
        try:
            super().enter_selection_set(*args)
        except ValidationAbortedError:
            if self.rule_context.remaining_complexity_budget >= 0:
                raise  # the error limit, not the budget
            raise ValidationAbortedError(TOO_COMPLEX_TO_MERGE) from None


def bounded(rules: Iterable[type[ASTValidationRule]]) -> tuple[type[ASTValidationRule], ...]:
    """`rules` with the overlap rule replaced by its bounded version (when the gate is active)."""
    if not GATE.active:
        return tuple(rules)
    return tuple(BoundedOverlappingFieldsRule if rule is OverlappingFieldsCanBeMergedRule else rule
                 for rule in rules)


def let_go(rules: Iterable[ASTValidationRule]) -> None:
    """Free what each validation rule holds, now rather than at the next full collection."""
    if GATE.active:
        for rule in rules:
            rule.__dict__.clear()
