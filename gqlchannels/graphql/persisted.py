"""Persisted operations: automatic persisted queries (APQ) and trusted documents.

A client may name a document instead of sending it: by Apollo's APQ extension
(`extensions.persistedQuery {version: 1, sha256Hash}`), by `documentId` (the GraphQL over
HTTP persisted documents appendix: `sha256:<hash>` or an id of the manifest's own) or by
Relay's `doc_id`. `PersistedOperations.resolve(params)` is the one place that turns a
request's parameters into the document text to execute, for every transport (HTTP POST and
GET, server-sent events, both WebSocket protocols), or raises PersistedQueryError, a GraphQL
error with its HTTP status. The text it returns goes on to the bounded document cache
(gqlchannels.graphql.documents) like any other, so a persisted document is parsed and
validated once, then served from the cache.

Where documents come from:

- The APQ store (on unless --no-apq): a client sends the hash alone; unknown, it gets
  `PersistedQueryNotFound` and sends the hash with the document, which is stored once its
  hash matches. Least recently used documents go first; the store is bounded in documents
  and in bytes, so clients cannot grow it without bound, only replace each other's entries
  (each worker process has its own).
- The manifest (--persisted-operations PATH), written at build time by the client's tooling:
  Apollo's persisted query manifest, or the `{"<id>": "<document>"}` map that GraphQL Code
  Generator's client preset and Relay write. A bad manifest is refused at start, naming the
  file and the entry.
- With --only-persisted, only the manifest's documents run (by id, or sent in full with
  exactly a manifest entry's text); anything else is refused and APQ registers nothing.

Statuses, as Apollo Server 5 answers them (its protocol; Apollo Client's link retries on the
error's code or message, whatever the status): an unknown hash is a 200 with
`PersistedQueryNotFound`, code PERSISTED_QUERY_NOT_FOUND, and `cache-control: private,
no-cache, must-revalidate` so that no cache keeps the miss; APQ off is a 200 with
`PersistedQueryNotSupported`; a hash that does not match the document is a 400 (graphql-yoga
5 answers an unknown hash with 404, which the link handles too).
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from graphql import GraphQLError, parse

from ..errors import ConfigError
from ..json_encoding import JSONTooDeep, dumps_bytes, loads
from ..metrics import PERSISTED_OPERATIONS

APQ_MAX_DOCUMENTS = 1000
APQ_MAX_BYTES = 2 * 1024 * 1024  # of the stored documents' UTF-8 text together
APQ_MAX_DOCUMENT_BYTES = APQ_MAX_BYTES // 10  # a larger one is run, not stored (it would evict a tenth of the store)
MAX_ID_LENGTH = 256

APOLLO_FORMAT = "apollo-persisted-query-manifest"
NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
NOT_SUPPORTED = "PERSISTED_QUERY_NOT_SUPPORTED"
MISMATCH = "PERSISTED_QUERY_MISMATCH"
ONLY_PERSISTED = "PERSISTED_QUERY_ONLY"
BAD_REQUEST = "BAD_REQUEST"
# Errors that ask the client to send the document (or to stop hashing): answered 200
# whatever the client accepts, as Apollo Server does; asgi/negotiation.py leaves them so.
RETRY_CODES = frozenset({NOT_FOUND, NOT_SUPPORTED})
NO_CACHE = (("cache-control", "private, no-cache, must-revalidate"),)

# The persisted documents appendix: unreserved characters (RFC 3986), with colons after a prefix.
_ID = re.compile(r"[A-Za-z0-9._~-]+(?::[A-Za-z0-9._~:-]+)?\Z")
_SHA256 = re.compile(r"[0-9a-f]{64}\Z")
_SHA256_ANY_CASE = re.compile(r"[0-9a-fA-F]{64}\Z")
# Request parameters (and their JSON keys) that name a persisted document: a request whose
# body or query string has none of them is not looked at unless --only-persisted.
MARKERS = (b"persistedQuery", b"documentId", b"doc_id")


class PersistedQueryError(Exception):
    """A request that names a document the server will not run: a GraphQL error, with the
    HTTP status and headers it is answered with."""

    def __init__(self, message: str, code: str, status: int = 400,
                 headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.headers = headers

    @property
    def formatted(self) -> dict[str, Any]:
        return {"message": self.message, "extensions": {"code": self.code}}

    def body(self) -> bytes:
        """The HTTP response body: `{"errors": [...]}`, no `data` (nothing ran)."""
        return dumps_bytes({"errors": [self.formatted]})

    def as_graphql_error(self) -> GraphQLError:
        return GraphQLError(self.message, extensions={"code": self.code})


class ManifestError(ConfigError):
    """A persisted operations manifest that cannot be served (stops the server at start)."""


def sha256_hex(text: str) -> str | None:
    """The SHA-256 of `text` as UTF-8, in lower-case hex; None for text UTF-8 cannot encode
    (a lone surrogate from a JSON escape: no client could have hashed it)."""
    try:
        return hashlib.sha256(text.encode()).hexdigest()
    except UnicodeEncodeError:
        return None


class APQStore:
    """Documents registered by automatic persisted queries, by hash: least recently used
    first out, bounded in number and in total bytes. Used from the event loop only."""

    def __init__(self, max_documents: int = APQ_MAX_DOCUMENTS, max_bytes: int = APQ_MAX_BYTES) -> None:
        self.max_documents = max_documents
        self.max_bytes = max_bytes
        self._entries: collections.OrderedDict[str, tuple[str, int]] = collections.OrderedDict()
        self.bytes = 0

    def get(self, key: str) -> str | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, key: str, text: str, size: int) -> bool:
        """Store `text` (`size` bytes) under `key`; False when it is too large to keep."""
        if size > self.max_bytes // 10:
            return False
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= old[1]
        self._entries[key] = (text, size)
        self.bytes += size
        while len(self._entries) > self.max_documents or self.bytes > self.max_bytes:
            _, (_, evicted) = self._entries.popitem(last=False)
            self.bytes -= evicted
        return True

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries


@dataclasses.dataclass(frozen=True)
class Manifest:
    """The trusted documents: id -> text, and text -> id (a document sent in full)."""

    source: str  # the file, for messages
    documents: Mapping[str, str]
    ids_by_text: Mapping[str, str]

    def __len__(self) -> int:
        return len(self.documents)

    def get(self, key: str) -> str | None:
        return self.documents.get(key)


def _entry_name(index: int, document_id: str, name: Any = None) -> str:
    shown = f"operation {index + 1} (id {document_id[:80]!r}"
    return f"{shown}, name {name!r})" if isinstance(name, str) and name else f"{shown})"


def _check_entry(source: str, where: str, document_id: Any, body: Any) -> str:
    """The key the entry is looked up by; ManifestError naming the entry if it is unusable."""
    if not isinstance(document_id, str) or not document_id:
        raise ManifestError(f"{source}: {where}: the id must be a non-empty string")
    if len(document_id) > MAX_ID_LENGTH or not _ID.match(document_id):
        raise ManifestError(f"{source}: {where}: the id may hold only letters, digits, '-', '.', '_', '~' "
                            f"and colons after a prefix (at most {MAX_ID_LENGTH} characters)")
    if not isinstance(body, str) or not body.strip():
        raise ManifestError(f"{source}: {where}: the document must be a non-empty string")
    try:
        parse(body)
    except GraphQLError as error:
        raise ManifestError(f"{source}: {where}: the document does not parse: {error.message} "
                            f"(line {error.locations[0].line if error.locations else '?'})") from None
    prefix, colon, payload = document_id.partition(":")
    key = payload if colon and prefix == "sha256" else document_id
    if colon and prefix == "sha256" and not _SHA256.match(payload):
        raise ManifestError(f"{source}: {where}: a 'sha256:' id needs 64 lower-case hexadecimal digits")
    if _SHA256_ANY_CASE.match(key):
        key = key.lower()
        computed = sha256_hex(body)
        if computed != key:
            raise ManifestError(f"{source}: {where}: the id is not the SHA-256 hash of the document "
                                f"(that is {computed}); regenerate the manifest")
    return key


def manifest_from_data(data: Any, source: str = "the persisted operations manifest") -> Manifest:
    """A manifest from its JSON value: Apollo's persisted query manifest, or a map of id to
    document; ManifestError naming `source` and the entry when it cannot be served."""
    entries: list[tuple[str, Any, Any, Any]] = []  # (where, id, body, name)
    if isinstance(data, dict) and "format" in data:
        if data["format"] != APOLLO_FORMAT:
            raise ManifestError(f"{source}: unknown format {str(data['format'])[:80]!r}; expected "
                                f"{APOLLO_FORMAT!r}, or a JSON object mapping ids to documents")
        if data.get("version") != 1:
            raise ManifestError(f"{source}: {APOLLO_FORMAT} version {data.get('version')!r} is not supported "
                                "(version 1 is)")
        operations = data.get("operations")
        if not isinstance(operations, list):
            raise ManifestError(f"{source}: 'operations' must be a list")
        for index, operation in enumerate(operations):
            if not isinstance(operation, dict):
                raise ManifestError(f"{source}: operation {index + 1} must be an object with id, name, type and body")
            document_id = operation.get("id")
            where = _entry_name(index, document_id if isinstance(document_id, str) else repr(document_id),
                                operation.get("name"))
            kind = operation.get("type")
            if kind is not None and kind not in ("query", "mutation", "subscription"):
                raise ManifestError(f"{source}: {where}: type {str(kind)[:40]!r} must be query, mutation or subscription")
            entries.append((where, document_id, operation.get("body"), operation.get("name")))
    elif isinstance(data, dict):
        for index, (document_id, body) in enumerate(data.items()):
            entries.append((_entry_name(index, document_id), document_id, body, None))
    else:
        raise ManifestError(f"{source}: expected a JSON object: Apollo's {APOLLO_FORMAT}, or ids mapped to "
                            "documents ({\"<id>\": \"<document>\"})")
    if not entries:
        raise ManifestError(f"{source}: holds no operations")
    documents: dict[str, str] = {}
    ids_by_text: dict[str, str] = {}
    first_seen: dict[str, str] = {}
    for where, document_id, body, _ in entries:
        key = _check_entry(source, where, document_id, body)
        if key in documents and documents[key] != body:
            raise ManifestError(f"{source}: {where}: the id is also that of {first_seen[key]}, with another document")
        documents[key] = body
        first_seen.setdefault(key, where)
        ids_by_text.setdefault(body, key)
    return Manifest(source, documents, ids_by_text)


def load_manifest(path: str | os.PathLike[str]) -> Manifest:
    """The manifest in the file `path`; ManifestError naming the file (and the entry)."""
    source = f"--persisted-operations {os.fspath(path)}"
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise ManifestError(f"{source}: no such file") from None
    except IsADirectoryError:
        raise ManifestError(f"{source}: is a directory, not a manifest file") from None
    except OSError as exc:
        raise ManifestError(f"{source}: cannot be read ({exc.strerror or exc})") from None
    try:
        data = loads(raw)
    except JSONTooDeep:
        raise ManifestError(f"{source}: the JSON is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise ManifestError(f"{source}: is not valid JSON ({str(exc)[:200]})") from None
    return manifest_from_data(data, source)


def names_a_persisted_document(params: Mapping[str, Any]) -> bool:
    """Whether a request's parameters name a persisted document (it may then have no query)."""
    extensions = params.get("extensions")
    return params.get("documentId") is not None or params.get("doc_id") is not None or \
        (isinstance(extensions, dict) and extensions.get("persistedQuery") is not None)


def _bad_request(message: str) -> PersistedQueryError:
    return PersistedQueryError(message, BAD_REQUEST, 400)


class PersistedOperations:
    """What a server does with persisted operations: built once per app from its settings."""

    def __init__(self, *, apq: bool = True, manifest: Manifest | None = None, only_persisted: bool = False,
                 store: APQStore | None = None) -> None:
        if only_persisted and manifest is None:
            raise ConfigError("--only-persisted needs the manifest of the operations to serve: "
                              "--persisted-operations PATH")
        self.apq = apq and not only_persisted  # with --only-persisted, APQ registers nothing
        self.manifest = manifest
        self.only_persisted = only_persisted
        self.store = store if store is not None else APQStore()

    def wants(self, raw: bytes) -> bool:
        """Whether a request whose body (or query string) is `raw` must go through
        resolve(): always with --only-persisted, otherwise when it names a persisted document
        (a request without any of the markers is served as it is, unread)."""
        # Three searches, not a loop over MARKERS: this runs for every request.
        return self.only_persisted or b"persistedQuery" in raw or b"documentId" in raw or b"doc_id" in raw

    def resolve(self, params: Mapping[str, Any]) -> Any:
        """The document text to execute for a request's parameters (`query`, `extensions`,
        `documentId`, `doc_id`), or PersistedQueryError. A request that names no persisted
        document gets its own `query` back, whatever it is (the transport's own checks then
        refuse a missing or non-string one); with --only-persisted a string `query` must be
        a manifest document's exact text."""
        return self._resolve(params, commit=True)

    def peek(self, params: Mapping[str, Any]) -> Any:
        """What resolve() would return, or None where it would raise; counting and storing
        nothing (for a transport that must know the operation before choosing its answer)."""
        try:
            return self._resolve(params, commit=False)
        except PersistedQueryError:
            return None

    def _resolve(self, params: Mapping[str, Any], commit: bool) -> Any:
        query = params.get("query")
        extensions = params.get("extensions")
        persisted = extensions.get("persistedQuery") if isinstance(extensions, dict) else None
        document_id, doc_id = params.get("documentId"), params.get("doc_id")
        if document_id is None and doc_id is None and persisted is None:
            if not self.only_persisted or not isinstance(query, str):
                return query
            assert self.manifest is not None
            if query in self.manifest.ids_by_text:
                self._count("hit", commit)
                return query
            self._count("refused", commit)
            raise PersistedQueryError(
                "only persisted operations are served here, and this document is not one of them: send the id of "
                "an operation in the server's manifest (documentId, or the persistedQuery extension)",
                ONLY_PERSISTED, 403)
        try:
            if document_id is not None or doc_id is not None:
                return self._by_document_id(document_id, doc_id, query, commit)
            return self._by_apq(persisted, query, commit)
        except PersistedQueryError as error:
            if error.code == BAD_REQUEST or error.code == MISMATCH:
                self._count("invalid", commit)
            raise

    def _by_document_id(self, document_id: Any, doc_id: Any, query: Any, commit: bool) -> str:
        given = [(name, value) for name, value in (("documentId", document_id), ("doc_id", doc_id))
                 if value is not None]
        for name, value in given:
            if not isinstance(value, str) or not value or len(value) > MAX_ID_LENGTH or not _ID.match(value):
                raise _bad_request(f"'{name}' must be a document id: 'sha256:' and the document's SHA-256 hash in "
                                   "64 lower-case hexadecimal digits, or an id from the server's manifest")
        if len({value for _, value in given}) > 1:
            raise _bad_request("'documentId' and 'doc_id' name different documents; send one of them")
        if query not in (None, ""):
            raise _bad_request(f"send a document's id ('{given[0][0]}') or its text ('query'), not both")
        identifier = given[0][1]
        prefix, colon, payload = identifier.partition(":")
        key = identifier
        if colon and prefix == "sha256":
            if not _SHA256.match(payload):
                raise _bad_request("a 'sha256:' document id needs 64 lower-case hexadecimal digits")
            key = payload
        elif colon and not prefix.startswith("x-"):
            raise _bad_request(f"document ids prefixed {prefix[:40]!r} are not served: use 'sha256:<hash>' or "
                               "an id from the server's manifest")
        return self._look_up(key, apq_store=bool(colon), commit=commit)

    def _by_apq(self, persisted: Any, query: Any, commit: bool) -> Any:
        if not isinstance(persisted, dict):
            raise _bad_request("'extensions.persistedQuery' must be an object: {\"version\": 1, \"sha256Hash\": ...}")
        if not self.apq and self.manifest is None:
            self._count("refused", commit)
            raise PersistedQueryError("PersistedQueryNotSupported", NOT_SUPPORTED, 200, NO_CACHE)
        if persisted.get("version") != 1:
            raise _bad_request("Unsupported persisted query version")
        claimed = persisted.get("sha256Hash")
        if not isinstance(claimed, str) or not claimed or len(claimed) > MAX_ID_LENGTH or not _ID.match(claimed):
            raise _bad_request("'extensions.persistedQuery.sha256Hash' must be the document's SHA-256 hash in "
                               "hexadecimal (or an id from the server's manifest)")
        key = claimed.lower() if _SHA256_ANY_CASE.match(claimed) else claimed
        if query is None or query == "":
            return self._look_up(key, apq_store=True, commit=commit)
        if not isinstance(query, str):
            return query  # refused by the transport's own checks
        if sha256_hex(query) != key:
            raise PersistedQueryError("provided sha does not match query", MISMATCH, 400)
        if self.manifest is not None and self.manifest.get(key) == query:
            self._count("hit", commit)
            return query
        if self.only_persisted:
            self._count("refused", commit)
            raise PersistedQueryError(
                "only persisted operations are served here, and this document is not one of them; it cannot be "
                "registered", ONLY_PERSISTED, 403)
        if self.apq and commit:
            stored = self.store.put(key, query, len(query.encode()))
            self._count("registered" if stored else "too_large", commit)
        return query

    def _look_up(self, key: str, *, apq_store: bool, commit: bool) -> str:
        text = self.manifest.get(key) if self.manifest is not None else None
        if text is None and apq_store and self.apq:
            text = self.store.get(key)
        if text is None:
            self._count("miss", commit)
            raise PersistedQueryError("PersistedQueryNotFound", NOT_FOUND, 200, NO_CACHE)
        self._count("hit", commit)
        return text

    @staticmethod
    def _count(outcome: str, commit: bool) -> None:
        if commit:
            PERSISTED_OPERATIONS.labels(outcome).inc()


def persisted_operations_for(*, apq: bool = True, manifest: str | os.PathLike[str] | Mapping[str, Any] | Manifest | None = None,
                             only_persisted: bool = False) -> PersistedOperations:
    """What build_application serves: `manifest` a path to a manifest file, its JSON value
    (a dict) or a Manifest."""
    if manifest is None or isinstance(manifest, Manifest):
        loaded = manifest
    elif isinstance(manifest, Mapping):
        loaded = manifest_from_data(manifest)
    else:
        loaded = load_manifest(manifest)
    return PersistedOperations(apq=apq, manifest=loaded, only_persisted=only_persisted)
