"""What a Codex tool output says about its call: the text, whether it failed, how long it ran.

Codex writes `function_call_output.output` / `custom_tool_call_output.output` as the string it
sent the model, and does not keep its own `success` flag in the rollout (only an output given
as an object has one). The outcome is in the text, in one of the shapes Codex formats
(codex-rs `tools/mod.rs`, `tools/events.rs`, `handlers/unified_exec.rs`):

- structured exec output (`shell`, `local_shell`, older `container.exec`): a JSON string
  `{"output": "...", "metadata": {"exit_code": N, "duration_seconds": X}}`. The text is
  `output`; an exit code other than 0 is an error; X is the run time (rounded to 0.1 s).
- freeform exec output (`shell` as a freeform tool, `apply_patch` run as a command):
  `Exit code: N\\nWall time: X seconds\\n[Total output lines: M\\n]Output:\\n...`.
- unified exec output (`exec_command`, `write_stdin`): `[Chunk ID: ...\\n]Wall time: X
  seconds\\n[Process exited with code N\\n][Process running with session ID S\\n]
  [Original token count: T\\n]Output:\\n...`; a process still running has no exit code and
  is no error.
- a failure Codex reports in words instead of an output (`FAILURE_PREFIXES`): "failed in
  sandbox ..." (Codex up to 0.4x, for any command that exited non-zero inside the sandbox,
  its stderr following), "execution error: ...", "exec command rejected by user", "patch
  rejected by user", "apply_patch verification failed: ...", arguments it could not parse,
  unsupported calls.

Anything else (`update_plan`'s "Plan updated", MCP results) is plain text and no error. The
two exec headers are kept in the text (they are what the model read); only the JSON shape
is unwrapped, since its text is the escaped output.
"""

from __future__ import annotations

import math
import re

import orjson

# Outputs that are Codex's own words for a call that did not run or did not succeed. Matched
# at the start of the output only: a command's own output can say anything.
FAILURE_PREFIXES = (
    "failed in sandbox", "sandbox denied", "execution error:", "exec command rejected by user",
    "patch rejected by user", "rejected by user", "apply_patch verification failed",
    "failed to parse function arguments", "unsupported call:", "unsupported custom tool call:",
    "exec_command failed:", "write_stdin failed:",
)
# The header lines of the freeform and unified exec shapes, up to the "Output:" line.
_HEADER = re.compile(r"(?:[^\n]{1,200}\n){1,8}?Output:(?:\n|$)")
_EXIT_LINE = re.compile(r"^(?:Exit code: |Process exited with code )(-?\d+)$", re.MULTILINE)
_WALL_LINE = re.compile(r"^Wall time: (\d+(?:\.\d+)?) seconds$", re.MULTILINE)


def read(output: str) -> tuple[str, bool, float | None]:
    """(text, is_error, run time in seconds or None) of a Codex tool output string."""
    if output.startswith('{"output"'):
        found = _structured(output)
        if found is not None:
            return found
    header = _HEADER.match(output)
    if header is not None:
        head = header.group(0)
        wall = _WALL_LINE.search(head)
        if wall is not None:
            code = _EXIT_LINE.search(head)
            return output, code is not None and int(code.group(1)) != 0, float(wall.group(1))
    return output, output[:200].lstrip().lower().startswith(FAILURE_PREFIXES), None


def _structured(output: str) -> tuple[str, bool, float | None] | None:
    try:
        data = orjson.loads(output)
    except orjson.JSONDecodeError:
        return None
    return structured(data) if isinstance(data, dict) else None


def structured(data: dict) -> tuple[str, bool, float | None] | None:
    """The structured exec shape given as an object; None when `data` is not that shape."""
    if not isinstance(data.get("output"), str):
        return None
    metadata = data.get("metadata")
    if not isinstance(metadata, dict):
        return None
    code = metadata.get("exit_code")
    is_error = isinstance(code, int) and not isinstance(code, bool) and code != 0
    return data["output"], is_error, seconds(metadata.get("duration_seconds"))


def seconds(value: object) -> float | None:
    """A run time in seconds: a finite number >= 0, else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) and value >= 0 else None
