"""The search query language, parsed into plain terms and filters (no SQL here).

    words              every word must occur (anywhere in the message)
    "a phrase"         these words, one after the other
    prefix*            a word starting so ("pars*" finds parser, parsing); "a phr"* too
    -word, -"phrase"   messages holding it are left out
    project:NAME       a project's path, short name or alias
    session:ID         a session id or a unique prefix of it (4+ characters)
    role:ROLE          user, assistant, system or tool (several: role:user,assistant)
    tool:NAME          messages that call the tool NAME or hold its result
    model:TEXT         messages of a model whose name contains TEXT
    since:DATE         messages on or after DATE (YYYY-MM-DD, UTC)
    until:DATE         messages on or before DATE (inclusive)
    in:WHERE           look for the words only in prompt, response, thinking, tool_input or
                       tool_result (several: in:prompt,response)

A filter's value may be quoted (`project:"my app"`). Anything else is text to find: a word
such as `NEAR(`, `foo:bar`, `AND` or `*x` is searched for as the words it holds, never read
as full-text syntax; `foo:bar` finds "foo" followed by "bar". A word with nothing to find in
it (`-`, `*`, `:`) is ignored. What cannot be understood is a `QueryError` naming it: an
unbalanced quote, an empty filter, a filter given twice, a bad date or role, and a query with
no word to look for (filters only narrow a search).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime

from threadline.storage.errors import InvalidArgument

# Where a message's text is indexed, in the order of the index's columns.
COLUMNS = ("prompt", "response", "thinking", "tool_input", "tool_result")
_COLUMN_NAMES = {**{c: c for c in COLUMNS}, "prompts": "prompt", "responses": "response",
                 "input": "tool_input", "inputs": "tool_input", "result": "tool_result",
                 "results": "tool_result", "output": "tool_result"}
ROLES = ("user", "assistant", "system", "tool")
FILTERS = ("project", "session", "role", "tool", "model", "since", "until", "in")
# Filters that take a comma-separated list of values.
_LISTS = ("role", "in")
MAX_QUERY_CHARS = 2000
MAX_TERMS = 64


class QueryError(InvalidArgument):
    """A search query that cannot be understood; the message says where."""


@dataclass(frozen=True, slots=True)
class Term:
    """Text to find: one word, or a phrase of several; `prefix` makes its last word a
    prefix."""

    text: str
    phrase: bool = False
    prefix: bool = False


@dataclass(slots=True)
class Query:
    terms: list[Term] = field(default_factory=list)
    excluded: list[Term] = field(default_factory=list)
    project: str = ""
    session: str = ""
    roles: tuple[str, ...] = ()
    tool: str = ""
    model: str = ""
    since: date | None = None
    until: date | None = None
    columns: tuple[str, ...] = ()


def is_token_char(ch: str) -> bool:
    """Whether the index's tokenizer (unicode61, categories L* N* Co) keeps `ch` in a word;
    every other character separates words."""
    category = unicodedata.category(ch)
    return category[0] in "LN" or category == "Co"


def has_words(text: str) -> bool:
    return any(is_token_char(ch) for ch in text)


def parse(text: str) -> Query:
    """`text` as a Query; QueryError when it cannot be understood."""
    if len(text) > MAX_QUERY_CHARS:
        raise QueryError(f"the query is too long ({len(text)} characters; at most "
                         f"{MAX_QUERY_CHARS})")
    query = Query()
    seen: set[str] = set()
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        excluded = text[i] == "-" and i + 1 < n and not text[i + 1].isspace()
        if excluded:
            i += 1
        if text[i] == '"':
            body, i = _quoted(text, i)
            prefix = i < n and text[i] == "*"
            while i < n and text[i] == "*":
                i += 1
            if i < n and not text[i].isspace():
                raise QueryError(f"put a space after the closing quote of \"{body}\"")
            _add(query, Term(body, phrase=True, prefix=prefix), excluded)
            continue
        start = i
        while i < n and not text[i].isspace() and text[i] != '"':
            i += 1
        word = text[start:i]
        name, colon, value = word.partition(":")
        if colon and not excluded and name.lower() in FILTERS:
            if not value and i < n and text[i] == '"':
                value, i = _quoted(text, i)
            _filter(query, name.lower(), value, seen)
            continue
        if i < n and text[i] == '"':
            raise QueryError(f"put a space before the quote after {word!r}")
        prefix = word.endswith("*")
        word = word.rstrip("*")
        _add(query, Term(word, phrase=False, prefix=prefix), excluded)
    if len(query.terms) + len(query.excluded) > MAX_TERMS:
        raise QueryError(f"too many words ({len(query.terms) + len(query.excluded)}; at most "
                         f"{MAX_TERMS})")
    if not query.terms:
        raise QueryError("nothing to search for: give at least one word to find "
                         "(-words and filters only narrow a search)")
    if query.since and query.until and query.since > query.until:
        raise QueryError(f"since:{query.since} is after until:{query.until}")
    return query


def _quoted(text: str, at: int) -> tuple[str, int]:
    """The text between the quote at `at` and the next one, and the index after it."""
    end = text.find('"', at + 1)
    if end < 0:
        raise QueryError(f"unbalanced quote: {text[at:at + 40]!r} has no closing \"")
    return text[at + 1:end], end + 1


def _add(query: Query, term: Term, excluded: bool) -> None:
    if not has_words(term.text):
        return  # punctuation alone: the index holds nothing it could match
    (query.excluded if excluded else query.terms).append(term)


def _filter(query: Query, name: str, value: str, seen: set[str]) -> None:
    value = value.strip()
    if not value:
        raise QueryError(f"{name}: needs a value (write {name}:VALUE, quoted if it holds "
                         "spaces)")
    if name in seen:
        raise QueryError(f"{name}: given twice" + (f" (list several values as {name}:a,b)"
                                                   if name in _LISTS else ""))
    seen.add(name)
    if name == "role":
        roles = tuple(dict.fromkeys(r.strip().lower() for r in value.split(",") if r.strip()))
        unknown = [r for r in roles if r not in ROLES]
        if unknown or not roles:
            raise QueryError(f"role:{value}: expected {', '.join(ROLES)}")
        query.roles = roles
    elif name == "in":
        asked = [c.strip().lower() for c in value.split(",") if c.strip()]
        unknown = [c for c in asked if c not in _COLUMN_NAMES]
        if unknown or not asked:
            raise QueryError(f"in:{value}: expected {', '.join(COLUMNS)}")
        query.columns = tuple(dict.fromkeys(_COLUMN_NAMES[c] for c in asked))
    elif name in ("since", "until"):
        setattr(query, name, _date(name, value))
    else:
        setattr(query, name, value)


def _date(name: str, value: str) -> date:
    for fmt in ("%Y-%m-%d", "%Y%m%d"):
        try:
            return datetime.strptime(value, fmt).date()
        except ValueError:
            pass
    raise QueryError(f"{name}:{value}: expected a date YYYY-MM-DD")
