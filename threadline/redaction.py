"""Secrets removed from transcript text before it is stored as text, indexed, streamed or shown.

`Redactor.text(s)` replaces each well-known secret in `s` by `[REDACTED:<kind>]`, so a reader
sees that something was there and what it was. Raw transcript lines are not touched here:
they stay stored byte for byte (only callers allowed to read raw lines get them).

Caught (the kinds, with the replacement's name):

- `anthropic-key`: `sk-ant-...` (API and admin keys);
- `openai-key`: `sk-...`, `sk-proj-...`, `sk-svcacct-...`, `sk-admin-...` with at least 20
  further characters, one of them a digit;
- `aws-access-key`: access key ids `AKIA...`/`ASIA...`/`ABIA...`/`ACCA...` (16 more
  characters from A-Z2-7); an AWS secret key is caught by its assignment
  (`aws_secret_access_key = ...`, kind `aws-secret-key`);
- `github-token`: `ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_` and `github_pat_` tokens;
- `slack-token`: `xoxa-`, `xoxb-`, `xoxp-`, `xoxo-`, `xoxr-`, `xoxs-` tokens; `slack-webhook`:
  `hooks.slack.com/services|workflows|triggers/...` URLs;
- `private-key`: PEM/PGP private-key blocks from their BEGIN line through their END line, or
  to the end of the text when the END line is missing (a key pasted in part);
- `jwt`: JSON Web Tokens (`eyJ...`.`eyJ...`.signature);
- `bearer-token`: `Bearer <20+ token characters>` (HTTP Authorization headers);
- `url-password`: the password of `scheme://user:password@host`;
- `secret`/`password`/`aws-secret-key`: the value of an assignment whose name says it holds one
  (`password`, `passwd`, `passphrase`, `secret`, `client_secret`, `api_key`, `apikey`,
  `access_key`, `token`, `auth_token`, `private_key`, `credentials`, with any prefix such as
  `DB_` or `GITHUB_`), written `name=value`, `name = "value"`, `name: 'value'` or
  `"name": "value"`; the name and the separator are kept, only the value is replaced. In JSON
  (tool inputs) the value of such a key is replaced whatever it looks like.
- `custom`: whatever matches one of the user's extra patterns (setting `redact_patterns`).

Not caught: secrets without a recognisable shape or name (a bare password on its own line, a
random hex string, a key of a provider not listed), unquoted values that are plain words after
`name:` or `name = `, or values without both a letter and a digit there (`password: str` is a
type annotation far more often than a password; `token: 4096` a count), and
secrets split across two fields or lines.

The patterns follow the rules of gitleaks (config/gitleaks.toml) and detect-secrets' plugins
(detect_secrets/plugins/*.py), loosened in length where providers have changed formats.
detect-secrets itself was not used: it reports findings line by line with every plugin's
regex run separately (and entropy checks) at every position of the text, and it does not
replace anything. This runs over every stored text, so a rule's regular expression runs only
on text that holds one of the literals the rule needs, found with `in` over the lower-cased
text (`_ANY_MARKER`, then each rule's own); assignments are tried only where their names
occur. Most text holds no marker and costs those few scans alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import orjson

from threadline.domain.records import Record

# Names of assignments that hold a secret. `token` only as a whole word or a suffix
# (`GITHUB_TOKEN`, `auth_token`), never `tokens`/`token_count` (usage talk is everywhere).
_NAMES = (r"(?:password|passwd|passphrase|secret(?:[_-]?access)?[_-]?key|client[_-]?secret"
         r"|secret|api[_-]?key|apikey|access[_-]?key|private[_-]?key|auth[_-]?token"
         r"|access[_-]?token|refresh[_-]?token|token|credentials?)")
_KEY_NAME = re.compile(r"(?:.*[_.-])?(?:" + _NAMES + r")\Z", re.IGNORECASE | re.DOTALL)

# Each rule: its kind (the replacement's name), the literals (lower case) of which the text
# must hold at least one for the rule to run at all, and its pattern. Checking the literals with
# `in` over the lower-cased text costs a few milliseconds per megabyte; a combined regular
# expression tried at every position costs ten times that, so rules run only where their
# literals are. Rules run in order: a private-key block goes first, whatever keys it holds, and
# Anthropic keys before OpenAI's (both start with `sk-`).
_WORD_START = r"(?<![A-Za-z0-9_])"
_RULES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("private-key", ("-----begin",),
     r"-----BEGIN[A-Z0-9 ]{0,30} PRIVATE KEY(?: BLOCK)?-----"
     r"(?:.*?-----END[A-Z0-9 ]{0,30} PRIVATE KEY(?: BLOCK)?-----|.*\Z)"),
    ("anthropic-key", ("sk-ant-",), _WORD_START + r"sk-ant-[A-Za-z0-9_-]{20,}"),
    ("openai-key", ("sk-",),
     _WORD_START + r"sk-(?:proj-|svcacct-|admin-)?(?=[A-Za-z_-]*[0-9])[A-Za-z0-9_-]{20,}"),
    ("aws-access-key", ("akia", "asia", "abia", "acca"),
     _WORD_START + r"(?:AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}(?![A-Za-z0-9])"),
    ("github-token", ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
     _WORD_START + r"(?:gh[pousr]_[A-Za-z0-9]{30,255}|github_pat_[A-Za-z0-9_]{22,255})"
     r"(?![A-Za-z0-9_])"),
    ("slack-token", ("xox",), _WORD_START + r"xox[abposr]-[A-Za-z0-9-]{10,}"),
    ("slack-webhook", ("hooks.slack.com",),
     r"(?:https?://)?hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/_-]{20,}"),
    ("jwt", ("eyj",),
     _WORD_START + r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"),
    ("bearer-token", ("bearer",),
     r"(?P<keep>(?i:bearer)\s+)(?=[A-Za-z0-9._~+/-]*[0-9])[A-Za-z0-9._~+/-]{20,}=*"),
    ("url-password", ("://",), r"(?<=://)(?P<keep>[^/\s:@]{1,64}:)[^/\s@]{1,128}(?=@)"),
)
# An assignment: a name that says it holds a secret (any prefix such as `DB_` or `client_`
# stays in front of it), a separator (a JSON key's closing quote, `=` or `:`), then the value:
# a quoted string; after a tight `=` (shell, env files, URL queries) any word that is no call
# or variable; else a word holding both a letter and a digit. Values that are templates
# (`{name}`, `${NAME}`, `<your key>`) or true/false/null/none are left alone. It is tried only
# where one of `_ASSIGNMENT_MARKERS` occurs (found with `str.find`): names like `token` are
# common, and trying the pattern at every position of such text costs ten times more.
_ASSIGNMENT_MARKERS = ("pass", "secret", "api", "access", "private", "auth", "refresh", "token",
                       "credential")
_ASSIGNMENT = re.compile(
    r"(?P<keep>(?<![A-Za-z0-9])(?i:" + _NAMES + r")(?![A-Za-z0-9])"
    r"[\"']?(?:=(?![=\s])|\s*[:=]\s*))"
    r"(?P<value>(?![\"']?(?i:true|false|null|none)\b)(?![\"']?[{$<%])"
    r"(?:\"[^\"\n]{1,512}\"|'[^'\n]{1,512}'"
    r"|(?<==)(?![$<{(=])[^\s\"'&;,<>(){}\[\]]++(?![(\[\w])"
    r"|(?![$<{(=])(?=[^\s\"',;]*[0-9])(?=[^\s\"',;]*[A-Za-z])"
    r"(?>[^\s\"'&;,<>(){}\[\]]{4,})(?![(\[\w])))")
# An unquoted value that is code rather than a secret: `password=password` (a keyword
# argument passed on) or `token=self.token` (an attribute).
_CODE_VALUE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
_COMPILED = tuple((kind, markers, re.compile(rule, re.DOTALL)) for kind, markers, rule in _RULES)


def _replacer(kind: str):
    def replace(match: re.Match[str]) -> str:
        keep = match.group("keep") if "keep" in match.re.groupindex else None
        if keep is None:
            return f"[REDACTED:{kind}]"
        return f"{keep}[REDACTED:{kind}]"
    return replace


# In an excerpt only: a long run of mixed-case base64 (a line of a PEM block whose other lines
# are elsewhere, as when a key was pasted into a file line by line). An excerpt is there to
# show why a line did not parse; such a run never helps with that.
_KEY_MATERIAL = re.compile(r"(?=[A-Za-z0-9+/]*[a-z])(?=[A-Za-z0-9+/]*[A-Z])"
                           r"(?=[A-Za-z0-9+/]*[0-9])(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{40,}={0,2}")


def _assignment(match: re.Match[str]) -> str:
    keep = match["keep"]
    value = match["value"]
    quote = value[0] if value[0] in "\"'" else ""
    name = keep.lower()
    if not quote and (name.rstrip("=: \t\"'") == value.lower()
                      or _CODE_VALUE.fullmatch(value)):
        return match.group()
    before = match.string[max(0, match.start() - 24):match.start()].lower()
    kind = ("aws-secret-key" if "aws" in before and "secret" in name
            else "password" if "pass" in name else "secret")
    return f"{keep}{quote}[REDACTED:{kind}]{quote}"


def _assignments(value: str, lowered: str) -> str:
    """`value` with the value of each assignment found at a marker replaced."""
    starts = set()
    for marker in _ASSIGNMENT_MARKERS:
        at = lowered.find(marker)
        while at != -1:
            starts.add(at)
            at = lowered.find(marker, at + 1)
    if not starts:
        return value
    out = []
    done = 0
    match_at = _ASSIGNMENT.match
    for at in sorted(starts):
        if at < done:
            continue
        found = match_at(value, at)
        if found is not None:
            out.append(value[done:at])
            out.append(_assignment(found))
            done = found.end()
    if not out:
        return value
    out.append(value[done:])
    return "".join(out)


_APPLY = tuple((markers, pattern, _replacer(kind)) for kind, markers, pattern in _COMPILED)
# Every rule's literals at once: most text holds none, and one pass over them is all it costs.
_ANY_MARKER = tuple(dict.fromkeys(m for _kind, markers, _rule in _RULES for m in markers))


class Redactor:
    """The built-in rules plus `extra` patterns (regular expressions, replaced as `custom`)."""

    def __init__(self, extra: Iterable[str] = ()):
        self.extra = tuple(re.compile(p) for p in extra if p)

    def text(self, value: str) -> str:
        """`value` with every secret found replaced (the same object when none is)."""
        if value:
            lowered = value.lower()
            if any(m in lowered for m in _ANY_MARKER):
                for markers, pattern, replace in _APPLY:
                    if any(m in lowered for m in markers):
                        redacted = pattern.sub(replace, value)
                        if redacted != value:
                            value, lowered = redacted, redacted.lower()
            value = _assignments(value, lowered)
        for pattern in self.extra:
            value = pattern.sub("[REDACTED:custom]", value)
        return value

    def record(self, rec: Record) -> Record:
        """`rec` with its text, its blocks' text and tool inputs and its drift note redacted,
        in place; `rec.raw` is left as it is."""
        text = self.text
        if rec.text:
            rec.text = text(rec.text)
        if rec.drift:
            rec.drift = text(rec.drift)
        for block in rec.content:
            if block.text:
                block.text = text(block.text)
            if block.tool_input_json:
                block.tool_input_json = self.json(block.tool_input_json)
        return rec

    def json(self, data: bytes) -> bytes:
        """JSON text (a tool's input) with secrets replaced inside its strings, and the value
        of every key named like a secret (`"password": ...`) replaced whatever it is. Stays
        valid JSON; bytes that are not JSON are redacted as text."""
        if not data:
            return data
        decoded = data.decode("utf-8", "surrogateescape")
        if not self.extra and self.text(decoded) == decoded:
            return data
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError:
            return self.text(decoded).encode("utf-8", "surrogateescape")
        cleaned = self._walk(value)
        if cleaned == value:
            return data
        return orjson.dumps(cleaned)

    def _walk(self, value: object) -> object:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self._walk(v) for v in value]
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                if isinstance(item, str) and item and _KEY_NAME.match(key):
                    lowered = key.lower()
                    out[key] = ("[REDACTED:password]" if "pass" in lowered
                                else "[REDACTED:secret]")
                else:
                    out[key] = self._walk(item)
            return out
        return value

    def excerpt(self, raw: bytes, limit: int, context: int = 4096) -> bytes:
        """At most `limit` bytes from the start of `raw`, redacted. The redaction reads
        `context` bytes more, so a secret cut by the limit is still recognised whole."""
        window = raw[:limit + context].decode("utf-8", "surrogateescape")
        window = _KEY_MATERIAL.sub("[REDACTED:key-material]", self.text(window))
        return window.encode("utf-8", "surrogateescape")[:limit]


class PatternError(ValueError):
    """An extra pattern that is not a regular expression."""


def from_file_text(text: str | None, origin: str = "patterns") -> Redactor:
    """The built-in rules plus the patterns of a `redact_patterns` file's text (None: none)."""
    return Redactor(parse_patterns(text, origin) if text is not None else ())


def parse_patterns(text: str, origin: str = "patterns") -> list[str]:
    """Extra patterns from a file's text: one regular expression a line; blank lines and lines
    starting with `#` are skipped. A pattern that does not compile raises `PatternError`
    naming its line."""
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        try:
            re.compile(pattern)
        except re.error as exc:
            raise PatternError(f"{origin}:{number}: not a regular expression ({exc})") from None
        out.append(pattern)
    return out


__all__ = ["PatternError", "Redactor", "from_file_text", "parse_patterns"]
