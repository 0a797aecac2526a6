"""The intent evaluation on a small hand-written corpus and labels file."""

from __future__ import annotations

from pathlib import Path

import orjson

from evaluation import intent


def _claude(uuid: str, role: str, content: object) -> bytes:
    return orjson.dumps({"type": role, "uuid": uuid, "parentUuid": None, "sessionId": "s1",
                         "timestamp": "2025-08-01T10:00:00Z", "cwd": "/w", "version": "2.0.42",
                         "message": {"role": role, "content": content}})


def _corpus(tmp_path: Path) -> tuple[Path, Path]:
    corpus = tmp_path / "corpus"
    project = corpus / "proj"
    project.mkdir(parents=True)
    (project / "s1.jsonl").write_bytes(b"\n".join([
        _claude("u1", "user", "Add a test for the parser"),
        _claude("a1", "assistant", [{"type": "text", "text": "Done. Shall I also run it?"}]),
        _claude("u2", "user", "yes"),
        _claude("u3", "user", [{"type": "tool_result", "tool_use_id": "t", "content": "ok"}]),
        _claude("u4", "user", "How does the tailer notice a rotated file?"),
    ]) + b"\n")
    chats = corpus / "gem" / "chats"
    chats.mkdir(parents=True)
    (chats / "session-2026-01-30T06-08-abcd1234.json").write_bytes(orjson.dumps({
        "sessionId": "g1", "projectHash": "h", "startTime": "t", "messages": [
            {"id": "m1", "timestamp": "t", "type": "user", "content": "what is a monad?"},
            {"id": "m2", "timestamp": "t", "type": "gemini", "content": "A monoid..."},
            {"id": "m3", "timestamp": "t", "type": "user", "content": "/compress"}]}))
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "# a comment line\npath,line_number,uuid,label\n"
        "proj/s1.jsonl,1,u1,request\n"
        "proj/s1.jsonl,3,u2,approval\n"
        "proj/s1.jsonl,4,u3,feedback\n"  # a tool result: not a prompt
        "proj/s1.jsonl,5,u4,exploration\n"  # labelled otherwise than predicted
        "gem/chats/session-2026-01-30T06-08-abcd1234.json,1,m1,question\n"
        "gem/chats/session-2026-01-30T06-08-abcd1234.json,3,m3,command\n"
        "proj/missing.jsonl,1,,request\n"
        "proj/s1.jsonl,2,a1,sarcasm\n")
    return corpus, labels


def test_scores_labelled_prompts(tmp_path):
    corpus, labels = _corpus(tmp_path)
    result = intent.evaluate(corpus, labels)
    assert result["prompts"] == 5
    assert result["not_prompt"] == ["proj/s1.jsonl:4 (feedback)"]
    assert result["not_found"] == ["proj/missing.jsonl:1 (request)"]
    assert len(result["unreadable_rows"]) == 1 and "sarcasm" in result["unreadable_rows"][0]
    assert result["accuracy"] == 0.8
    assert result["per_class"]["exploration"] == {
        "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1, "predicted": 0}
    assert result["per_class"]["question"]["precision"] == 0.5
    assert result["confusion"]["exploration"]["question"] == 1
    assert result["analyse_prompt_us"]["prompts"] == 5


def test_skips_without_labels_or_corpus(tmp_path, capsys):
    corpus, _ = _corpus(tmp_path)
    assert intent.main(["--corpus", str(corpus), "--labels", str(tmp_path / "none.csv")]) == 0
    assert "skipped" in capsys.readouterr().out
    assert intent.main(["--corpus", str(tmp_path / "nowhere")]) == 0
    assert "skipped" in capsys.readouterr().out


def test_prints_the_table(tmp_path, capsys):
    corpus, labels = _corpus(tmp_path)
    assert intent.main(["--corpus", str(corpus), "--labels", str(labels)]) == 0
    out = capsys.readouterr().out
    assert "precision" in out and "macro-F1" in out and "confusion" in out
