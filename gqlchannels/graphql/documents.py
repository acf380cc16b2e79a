"""Parsed and validated documents: a bounded cache, and a worker thread for those not in it.

Parsing a document of 5,000 tokens takes about 20 ms here, and validating one 40 to 70 ms
(graphql-core's rules cost about 13 us a token): on the event loop, a few clients sending
such documents one after another would hold every other request for as long. So a document
that is not in the cache is validated in a worker thread (and parsed there too when longer
than INLINE_PARSE_CHARS), and the loop serves other clients meanwhile. The thread shares the
GIL with the loop, and hands it over at least every switch interval (5 ms by default, 1 ms
under `gqlchannels serve`): other requests wait that long at most for each step, instead of
for whole validations. One thread: validations take turns, so documents that cost nothing
to validate, the cached ones, never wait for it.

The cache is bounded in documents and in the total length of their text: a parsed document
takes about 100 bytes per character (a 17 KB document 1.8 MB), so a thousand large ones, as
a cache bounded in entries only holds them, would take gigabytes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import threading
from collections.abc import Callable, Hashable

from graphql import DocumentNode, GraphQLError, OperationDefinitionNode, parse

Validator = Callable[[DocumentNode], list[GraphQLError]]

INLINE_PARSE_CHARS = 2000  # parsed on the loop below this length: about 1 ms at most
MAX_DOCUMENTS = 1000
MAX_CHARS = 500_000  # of the cached documents' text together: about 75 MB parsed, at worst
MAX_VALIDATIONS = 4  # rule sets remembered per document (one, unless extensions change them)


@dataclasses.dataclass(eq=False)
class PreparedDocument:
    """A query's document (or its syntax error) and its validation errors per rule set."""

    key: tuple[str, int | None]  # the query and the most tokens it may have
    document: DocumentNode | None
    syntax_error: GraphQLError | None = None
    validations: dict[Hashable, list[GraphQLError]] = dataclasses.field(default_factory=dict)


def parse_document(query: str, max_tokens: int | None) -> PreparedDocument:
    try:
        document = parse(query, max_tokens=max_tokens)
    except GraphQLError as error:
        # Kept (cached) without the parser's frames, which hold the whole document.
        return PreparedDocument((query, max_tokens), None, error.with_traceback(None))
    _unlink_tokens(document)
    return PreparedDocument((query, max_tokens), document)


def _unlink_tokens(document: DocumentNode) -> None:
    """Make the document's tokens a singly linked list. Linked both ways (as the lexer leaves
    them, and nothing after parsing goes back) they form a reference cycle, so that every
    document dropped is garbage only the cycle collector frees: with documents of 5,000 tokens
    coming in, its full collections took 100 ms to a second, holding the GIL."""
    token = document.loc.start_token if document.loc else None
    while token is not None:
        token.prev = None
        token = token.next


class DocumentCache:
    """Least recently used documents, bounded in number and in total length; thread-safe."""

    def __init__(self, max_documents: int = MAX_DOCUMENTS, max_chars: int = MAX_CHARS) -> None:
        self.max_documents = max_documents
        self.max_chars = max_chars
        self._entries: dict[tuple[str, int | None], PreparedDocument] = {}
        self._chars = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0
        self._worker: concurrent.futures.ThreadPoolExecutor | None = None

    def get(self, query: str, max_tokens: int | None) -> PreparedDocument | None:
        key = (query, max_tokens)
        with self._lock:
            prepared = self._entries.pop(key, None)
            if prepared is None:
                self.misses += 1
                return None
            self._entries[key] = prepared  # now the most recently used
            self.hits += 1
            return prepared

    def is_prepared(self, query: str, max_tokens: int | None, key: Hashable) -> bool:
        """Whether `prepare` would find all it needs in the cache (not counted as a hit or miss)."""
        with self._lock:
            prepared = self._entries.get((query, max_tokens))
        return prepared is not None and (prepared.document is None or key in prepared.validations)

    def put(self, prepared: PreparedDocument) -> None:
        query = prepared.key[0]
        if len(query) > self.max_chars // 10:
            return  # prepared again each time, rather than evicting a tenth of the cache
        with self._lock:
            if prepared.key in self._entries:
                return
            self._entries[prepared.key] = prepared
            self._chars += len(query)
            while len(self._entries) > self.max_documents or self._chars > self.max_chars:
                self._remove(next(iter(self._entries)))

    def _remove(self, key: tuple[str, int | None]) -> None:
        del self._entries[key]
        self._chars -= len(key[0])

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._chars = 0

    def parse(self, query: str, max_tokens: int | None) -> PreparedDocument:
        """The cached document, or the query parsed now (and cached)."""
        prepared = self.get(query, max_tokens)
        if prepared is None:
            prepared = parse_document(query, max_tokens)
            self.put(prepared)
        return prepared

    def validate(self, prepared: PreparedDocument, key: Hashable, validator: Validator) -> list[GraphQLError]:
        """The errors `validator` finds in the prepared document, remembered under `key`."""
        errors = prepared.validations.get(key)
        if errors is None:
            assert prepared.document is not None
            errors = validator(prepared.document)
            with self._lock:
                if len(prepared.validations) >= MAX_VALIDATIONS:
                    del prepared.validations[next(iter(prepared.validations))]
                prepared.validations[key] = errors
                if errors and self._entries.get(prepared.key) is prepared:
                    # Never executed: not worth its room (hostile documents come in their thousands).
                    self._remove(prepared.key)
        return errors

    async def prepare(self, query: str, max_tokens: int | None, key: Hashable,
                      validator: Validator) -> PreparedDocument:
        """The query parsed and validated, with the work the cache does not save done in the
        worker thread (a short query is parsed here: the hop would cost more)."""
        prepared = self.get(query, max_tokens)
        if prepared is None and len(query) <= INLINE_PARSE_CHARS:
            prepared = parse_document(query, max_tokens)
            self.put(prepared)
        if prepared is not None and (prepared.document is None or key in prepared.validations):
            return prepared
        return await asyncio.get_running_loop().run_in_executor(
            self._worker_thread(), self._prepare, query, max_tokens, prepared, key, validator)

    def _prepare(self, query: str, max_tokens: int | None, prepared: PreparedDocument | None,
                 key: Hashable, validator: Validator) -> PreparedDocument:
        if prepared is None:
            prepared = parse_document(query, max_tokens)
            self.put(prepared)
        if prepared.document is not None:
            self.validate(prepared, key, validator)
        return prepared

    def _worker_thread(self) -> concurrent.futures.ThreadPoolExecutor:
        # Made on first use, in the process that serves (uvicorn's workers are spawned).
        with self._lock:
            if self._worker is None:
                self._worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="gqlchannels-documents")
            return self._worker


DOCUMENTS = DocumentCache()


def operation_type(document: DocumentNode, operation_name: str | None) -> str | None:
    """"query", "mutation" or "subscription": the operation a request runs, None if the
    document names no such operation (the request then fails where it is answered)."""
    operations = [definition for definition in document.definitions
                  if isinstance(definition, OperationDefinitionNode)]
    if operation_name is None:
        return operations[0].operation.value if len(operations) == 1 else None
    return next((operation.operation.value for operation in operations
                 if operation.name is not None and operation.name.value == operation_name), None)
