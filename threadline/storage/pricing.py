"""Prices of model tokens: a bundled, dated table (pricing_data/<date>.json), optionally merged
with a user's own JSON file, and the cost of one API response under it.

Rates are USD per million tokens, per kind of token: input, output, cache read, cache write
for the 5-minute and the 1-hour cache. A model may have a long-context tier: when a request's
prompt (input + cache writes + cache reads) exceeds the tier's threshold, every token of that
request is billed at the tier's rates, as Anthropic (Sonnet 4/4.5 above 200K), OpenAI (GPT-5.4
and 5.5 above 272K) and Google (Gemini 2.5 Pro above 200K) bill it.

A model without a price, or a kind of token the model has no rate for, leaves the response
*unpriced*: it is counted and named as such, never priced at zero.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

from threadline.storage.errors import InvalidArgument

PER = 1_000_000
RATE_KEYS = ("input", "output", "cache_read", "cache_write_5m", "cache_write_1h")
_MODEL_KEYS = frozenset({*RATE_KEYS, "provider", "source", "long_context", "note"})
_TIER_KEYS = frozenset({*RATE_KEYS, "threshold_tokens"})
_DATA = "pricing_data"
_DATE_SUFFIXES = (re.compile(r"-\d{8}$"), re.compile(r"-\d{4}-\d{2}-\d{2}$"))


class PricingError(InvalidArgument):
    """A pricing file that cannot be used (unreadable, not JSON, or not the expected shape)."""


@dataclass(frozen=True, slots=True)
class Rates:
    """USD per million tokens of each kind; None where the rate is not known."""

    input: float | None = None
    output: float | None = None
    cache_read: float | None = None
    cache_write_5m: float | None = None
    cache_write_1h: float | None = None


@dataclass(frozen=True, slots=True)
class ModelPrice:
    name: str
    rates: Rates
    provider: str = ""
    source: str = ""
    long_context_threshold: int | None = None
    long_context: Rates | None = None


@dataclass(frozen=True, slots=True)
class Cost:
    """The price of one response. `usd` is 0.0 and `priced` False when it cannot be priced;
    `missing` then says why."""

    usd: float
    priced: bool
    price_model: str = ""  # the table entry used
    long_context: bool = False
    missing: str = ""


@dataclass(frozen=True)
class PricingTable:
    date: str
    models: dict[str, ModelPrice]
    sources: dict[str, str] = field(default_factory=dict)
    overrides: str = ""  # the override file merged over the bundled table, if any

    def lookup(self, model: str) -> ModelPrice | None:
        """The table entry for a model name as transcripts write it (dated ids, provider
        prefixes, Bedrock/Vertex spellings), or None. No fuzzy matching: a model that is
        not listed stays unpriced rather than borrowing a neighbour's price."""
        for name in model_candidates(model):
            if name in self.models:
                return self.models[name]
        return None

    def cost(self, model: str, *, input_tokens: int = 0, output_tokens: int = 0,
             cache_creation_tokens: int = 0, cache_creation_5m_tokens: int = 0,
             cache_creation_1h_tokens: int = 0, cache_read_tokens: int = 0) -> Cost:
        price = self.lookup(model)
        if price is None:
            return Cost(0.0, False, missing=f"no price for model {model or '(none)'!r}")
        # The 5m/1h split when the record gives it; tokens it does not account for (or the
        # whole total when there is no split) are billed as 5-minute writes, the default TTL.
        split = cache_creation_5m_tokens + cache_creation_1h_tokens
        write_1h = cache_creation_1h_tokens if split else 0
        write_5m = (cache_creation_5m_tokens + max(cache_creation_tokens - split, 0)
                    if split else cache_creation_tokens)
        prompt = input_tokens + max(cache_creation_tokens, split) + cache_read_tokens
        rates, long_context = price.rates, False
        if (price.long_context is not None and price.long_context_threshold is not None
                and prompt > price.long_context_threshold):
            rates, long_context = price.long_context, True
        usd = 0.0
        for kind, tokens in (("input", input_tokens), ("output", output_tokens),
                             ("cache_write_5m", write_5m), ("cache_write_1h", write_1h),
                             ("cache_read", cache_read_tokens)):
            if not tokens:
                continue
            rate = getattr(rates, kind)
            if rate is None:
                tier = " (long-context tier)" if long_context else ""
                return Cost(0.0, False, price.name, long_context,
                            f"no {kind} rate for model {price.name!r}{tier}")
            usd += tokens * rate / PER
        return Cost(usd, True, price.name, long_context)


def model_candidates(model: str) -> list[str]:
    """Names to look a model up by, most specific first."""
    name = model.strip().lower()
    out = [name]
    bare = name.removesuffix("[1m]")  # Claude Code's 1M-context spelling
    if "/" in bare:  # anthropic/..., openai/..., models/gemini-...
        bare = bare.rsplit("/", 1)[1]
    bare = re.sub(r"^(?:[a-z]{2,6}\.)?anthropic\.", "", bare)  # Bedrock: us.anthropic.claude-...
    bare = re.sub(r"-v\d+(?::\d+)?$", "", bare).replace("@", "-")  # Bedrock -v1:0, Vertex @date
    out.append(bare)
    for suffix in _DATE_SUFFIXES:
        out.append(suffix.sub("", bare))
    return list(dict.fromkeys(out))


# --- loading -------------------------------------------------------------------------------

def bundled_file() -> Path:
    """The newest dated table shipped with threadline."""
    folder = resources.files("threadline.storage").joinpath(_DATA)
    names = sorted(p.name for p in folder.iterdir() if re.fullmatch(r"\d{4}-\d{2}-\d{2}\.json",
                                                                     p.name))
    if not names:
        raise PricingError(f"no pricing table in {folder}")
    return Path(str(folder.joinpath(names[-1])))


def load(override: Path | str | None = None) -> PricingTable:
    """The bundled table, with `override` (a JSON file of the same shape) merged over it:
    per model, the fields it gives replace the bundled ones, and new models are added."""
    base_file = bundled_file()
    base = _read(base_file)
    table = _table(base, str(base_file))
    if override is None:
        return table
    extra = _read(Path(override))
    models = dict(table.models)
    for name, spec in _models_of(extra, str(override)).items():
        models[name.lower()] = _merge(models.get(name.lower()), name, spec, str(override))
    date = str(extra.get("date") or "")
    return replace(table, models=models, overrides=str(override),
                   date=f"{table.date} + {override}" + (f" ({date})" if date else ""))


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PricingError(f"cannot read pricing file {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise PricingError(f"pricing file {path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise PricingError(f"pricing file {path}: expected a JSON object")
    return data


def _models_of(data: dict, where: str) -> dict[str, dict]:
    models = data.get("models")
    if not isinstance(models, dict):
        raise PricingError(f"{where}: expected an object \"models\": {{name: {{rates}}}}")
    return models


def _table(data: dict, where: str) -> PricingTable:
    models = {name.lower(): _merge(None, name, spec, where)
              for name, spec in _models_of(data, where).items()}
    sources = data.get("sources") if isinstance(data.get("sources"), dict) else {}
    return PricingTable(date=str(data.get("date") or ""), models=models, sources=sources)


def _rate(value: object, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or value < 0:
        raise PricingError(f"{what}: expected a rate >= 0 (USD per million tokens), "
                           f"not {value!r}")
    return float(value)


def _merge(current: ModelPrice | None, name: str, spec: object, where: str) -> ModelPrice:
    what = f"{where}: model {name!r}"
    if not isinstance(spec, dict):
        raise PricingError(f"{what}: expected an object of rates")
    unknown = set(spec) - _MODEL_KEYS
    if unknown:
        raise PricingError(f"{what}: unknown field(s) {', '.join(sorted(unknown))} "
                           f"(known: {', '.join(sorted(_MODEL_KEYS))})")
    base = current or ModelPrice(name=name.lower(), rates=Rates())
    rates = replace(base.rates, **{k: _rate(spec[k], f"{what} {k}")
                                   for k in RATE_KEYS if k in spec})
    threshold, tier = base.long_context_threshold, base.long_context
    if "long_context" in spec:
        block = spec["long_context"]
        if block is None:
            threshold, tier = None, None
        else:
            if not isinstance(block, dict) or set(block) - _TIER_KEYS:
                raise PricingError(f"{what} long_context: expected an object with "
                                   f"threshold_tokens and rates ({', '.join(RATE_KEYS)})")
            value = block.get("threshold_tokens", threshold)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise PricingError(f"{what} long_context.threshold_tokens: expected a "
                                   f"positive integer, not {value!r}")
            threshold = value
            tier = replace(tier or Rates(), **{k: _rate(block[k], f"{what} long_context {k}")
                                               for k in RATE_KEYS if k in block})
    return ModelPrice(name=base.name, rates=rates,
                      provider=str(spec.get("provider", base.provider)),
                      source=str(spec.get("source", base.source)),
                      long_context_threshold=threshold, long_context=tier)
