"""Settings resolve argument > environment > default, from one table."""

import os
from pathlib import Path

from threadline import config


def test_argument_beats_environment_beats_default():
    env = {"THREADLINE_WS_PORT": "9001", "THREADLINE_BATCH_LINES": "7"}
    s = config.resolve({"ws_port": 9002}, environ=env)
    assert s.ws_port == 9002
    assert s.batch_lines == 7
    assert s.grpc_port == 50051


def test_types_are_converted():
    env = {"THREADLINE_ROOTS": os.pathsep.join(["/a", "/b"]), "THREADLINE_FOLLOW": "false",
           "THREADLINE_RESCAN_SECONDS": "2.5", "THREADLINE_DB": "/tmp/x.db"}
    s = config.resolve(environ=env)
    assert s.roots == (Path("/a"), Path("/b"))
    assert s.follow is False
    assert s.rescan_seconds == 2.5
    assert s.db == Path("/tmp/x.db")


def test_default_roots_include_claude_config_dir(tmp_path):
    roots = config.resolve(environ={"CLAUDE_CONFIG_DIR": f"{tmp_path}/a,{tmp_path}/b"}).roots
    assert roots == (Path.home() / ".claude" / "projects", tmp_path / "a" / "projects",
                     tmp_path / "b" / "projects")
    assert config.resolve(environ={}).roots == (Path.home() / ".claude" / "projects",)


def test_every_setting_is_described():
    described = {env for env, _, _ in config.describe()}
    assert described == {s.env for s in config.SETTINGS}
