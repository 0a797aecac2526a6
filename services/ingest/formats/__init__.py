"""One module per transcript format; `services.ingest.parser` picks among them.

- `claude`: Claude Code session files (and their subagent files and workflow journals);
- `codex`: Codex CLI rollouts (`{timestamp, type, payload}` lines);
- `gemini`: Gemini CLI chats (the legacy JSON document and the newer JSONL);
- `generic`: plain chat lines (`role`/`content`, OpenAI-style tool calls);
- `fields`: the typed field readers they share: a field of the wrong type becomes empty or
  zero, never an exception.

Each format module keeps its lists of known record types, subtypes and block types in one
place at its top. A record outside those lists is still a record, with its raw line, and
`Record.drift` saying what was not understood.
"""
