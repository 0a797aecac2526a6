"""Context figures of a prompt: intent on clear examples, and how the other figures move."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.analysis.context import (
    HEAD_CHARS,
    INTENTS,
    TAIL_CHARS,
    analyse_prompt,
    window,
)

OFFER = "I can also add a migration for the existing rows. Would you like me to do that?"
CHOICE = "Should the cache live in Redis or in the local SQLite file? Which do you prefer?"

CLEAR = [
    ("question", "How does the retry logic in the uploader work?", ""),
    ("question", "Why is the import so slow on large folders?", ""),
    ("question", "What does the --frozen flag do?", ""),
    ("question", "Can you explain what this regex matches?", ""),
    ("request", "Add a test for the parser that covers truncated lines.", ""),
    ("request", "Refactor the session store into its own module", ""),
    ("request", "Can you please write a migration that adds the email column?", ""),
    ("request", "ok now rename the function to load_settings and update the callers", ""),
    ("command", "/review", ""),
    ("command", "/compact keep the parser notes", ""),
    ("command", "<command-name>/init</command-name>\n<command-args></command-args>", ""),
    ("clarification", "I meant the other config file, not the one in tests", ""),
    ("clarification", "the second option", CHOICE),
    ("clarification", "use postgres, not sqlite", ""),
    ("clarification", "Use postgres rather than sqlite for this one", ""),
    ("feedback", "That still fails with TypeError: 'NoneType' object is not subscriptable", ""),
    ("feedback", "The button is now misaligned and the label is missing", ""),
    ("feedback", "Traceback (most recent call last):\n  File \"app.py\", line 3, in <module>\n"
                 "    main()\nValueError: bad value", ""),
    ("exploration", "Let's explore options for caching the parsed records", ""),
    ("exploration", "What would be the best way to structure the plugin system?", ""),
    ("exploration", "Think about how we could make the importer incremental", ""),
    ("interruption", "[Request interrupted by user]", ""),
    ("interruption", "[Request interrupted by user for tool use]", ""),
    ("approval", "yes", OFFER),
    ("approval", "ok go ahead", OFFER),
    ("approval", "looks good, continue", ""),
    ("approval", "perfect, thanks!", ""),
    ("rejection", "no", OFFER),
    ("rejection", "don't do that", ""),
    ("rejection", "stop", ""),
    ("rejection", "revert that", ""),
]


def test_every_class_has_an_example():
    assert {intent for intent, _, _ in CLEAR} == set(INTENTS)


@pytest.mark.parametrize(("intent", "text", "assistant"), CLEAR)
def test_intent_on_clear_examples(intent, text, assistant):
    result = analyse_prompt(text, previous_assistant=assistant)
    assert result.intent == intent, result.intent_evidence
    assert 0.0 < result.intent_confidence < 1.0
    assert result.intent_evidence.startswith(intent)


def test_a_slash_path_is_not_a_command():
    result = analyse_prompt("/home/u/app/run.sh: line 9: Permission denied\nfix the permissions")
    assert result.intent != "command"


def test_no_as_a_determiner_is_not_a_rejection():
    assert analyse_prompt("No rows are showing up in the table now").intent == "feedback"


def test_confidence_grows_with_agreeing_evidence():
    one = analyse_prompt("add a test for the parser")
    more = analyse_prompt("please add a test for the parser, then run it and commit")
    assert one.intent == more.intent == "request"
    assert more.intent_confidence > one.intent_confidence


def test_confidence_shrinks_when_another_class_has_evidence():
    plain = analyse_prompt("add a retry to the uploader")
    mixed = analyse_prompt("add a retry to the uploader? it still fails with a timeout error")
    assert plain.intent_confidence > mixed.intent_confidence


def test_confidence_is_low_without_cues():
    assert analyse_prompt("hmm").intent_confidence < 0.4


def test_an_answer_to_an_offer_reads_differently_from_the_same_words_alone():
    alone = analyse_prompt("the second one")
    answer = analyse_prompt("the second one", previous_assistant=CHOICE)
    assert answer.intent == "clarification"
    assert answer.intent_confidence > alone.intent_confidence


def test_sentiment_sign():
    assert analyse_prompt("Excellent work, thank you, this is great!").sentiment > 0.3
    assert analyse_prompt("This is terrible, it is broken and useless").sentiment < -0.3
    assert analyse_prompt("Rename the variable to count").sentiment == 0.0


def test_urgency_orders_contrasting_prompts():
    calm = analyse_prompt("When you have time, tidy up the README wording")
    urgent = analyse_prompt("URGENT!! production is down, fix the login ASAP")
    assert calm.urgency == 0.0
    assert urgent.urgency > 0.7
    assert 0.0 <= urgent.urgency <= 1.0


def test_clarity_orders_contrasting_prompts():
    vague = analyse_prompt("fix it")
    specific = analyse_prompt("In services/store/writer.py, make `flush()` retry twice when "
                              "sqlite3.OperationalError says the database is locked")
    assert specific.clarity > vague.clarity
    assert analyse_prompt("maybe do something with that stuff somehow").clarity < 0.5


def test_complexity_is_a_readability_grade_of_the_prose():
    simple = analyse_prompt("Add a test. Run it. Tell me if it fails.")
    dense = analyse_prompt("Investigate whether the asynchronous reconciliation of heterogeneous "
                           "configuration representations introduces nondeterministic "
                           "serialization inconsistencies.")
    assert 0.0 <= simple.complexity < dense.complexity <= 20.0
    code_only = analyse_prompt("```\nx = [i for i in range(10)]\n```")
    assert code_only.complexity == 0.0


def test_similarity_and_word_count():
    result = analyse_prompt("add retries to the uploader", "the uploader needs retries")
    assert 0.5 < result.similarity_previous <= 1.0
    assert analyse_prompt("add retries", "write the changelog").similarity_previous == 0.0
    assert result.word_count == 5


def test_marker_and_command_figures_come_from_typed_words():
    marker = analyse_prompt("[Request interrupted by user]")
    assert (marker.sentiment, marker.urgency, marker.complexity) == (0.0, 0.0, 0.0)
    command = analyse_prompt("/compact this is urgent, do it immediately!!")
    assert command.intent == "command" and command.urgency > 0.5


def test_a_huge_paste_is_read_from_its_head_and_tail_only():
    log = "".join(f"[INFO] 2025-01-01 step {i} finished\n" for i in range(4000))
    text = "why does this fail?\n" + log + "ERROR: disk full\n"
    assert len(text) > 100_000
    assert window(text) == text[:HEAD_CHARS] + "\n" + text[-TAIL_CHARS:]
    started = time.perf_counter()
    result = analyse_prompt(text)
    assert time.perf_counter() - started < 0.5
    assert result.word_count == len(text.split())
    assert result.intent in ("feedback", "question")


@given(st.text(max_size=3000), st.text(max_size=200), st.text(max_size=200))
def test_never_raises_and_stays_in_range(text, previous, assistant):
    result = analyse_prompt(text, previous, assistant)
    assert result.intent in INTENTS
    assert 0.0 < result.intent_confidence < 1.0
    assert -1.0 <= result.sentiment <= 1.0
    assert 0.0 <= result.urgency <= 1.0
    assert 0.0 <= result.clarity <= 1.0
    assert 0.0 <= result.complexity <= 20.0
    assert 0.0 <= result.similarity_previous <= 1.0
    assert result.word_count == len(text.split())


@given(st.text(min_size=1, max_size=300), st.integers(min_value=15, max_value=400))
def test_never_raises_on_long_text(piece, times):
    assert analyse_prompt(piece * times).intent in INTENTS


def test_never_raises_on_junk():
    for junk in ("", " ", "\x00\x01", "?" * 10_000, "!" * 5000, "\ud800 lone surrogate",
                 "🎉" * 3000, "<command-name></command-name>", "/", "a" * 200_000,
                 "\n" * 50_000, "```" * 1000):
        assert analyse_prompt(junk).intent in INTENTS
