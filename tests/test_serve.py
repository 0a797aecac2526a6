"""Each service runs on its own as `threadline serve NAME`: healthy, then stopped by SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from threadline.supervisor import free_ports


def health(address: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", "health", address],
                          capture_output=True, timeout=30)


@pytest.mark.parametrize("service", ["store", "analysis", "ingest", "stream"])
def test_service_reports_health_and_stops_gracefully_on_sigterm(service, tmp_path):
    port, ws_port, peer = free_ports(3, "127.0.0.1")
    ready = tmp_path / "ready.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", "serve", service, "--port", str(port),
         "--db", str(tmp_path / "t.db"), "--root", str(tmp_path),
         "--ws-port", str(ws_port), "--store-addr", f"127.0.0.1:{peer}",
         "--analysis-addr", f"127.0.0.1:{peer}", "--ready-file", str(ready)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert process.poll() is None, process.stderr.read().decode()
            assert time.monotonic() < deadline, "service never became ready"
            time.sleep(0.05)
        answer = health(f"127.0.0.1:{port}")
        assert answer.returncode == 0 and b"SERVING" in answer.stdout
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        assert health(f"127.0.0.1:{port}").returncode == 1  # gone
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stderr.close()


def test_a_port_in_use_is_an_error_not_a_shared_port(tmp_path):
    import asyncio

    from threadline import bootstrap

    async def scenario():
        first = await bootstrap.create_server([], ["x"], port=0)
        try:
            with pytest.raises(OSError):
                await bootstrap.create_server([], ["x"], port=first.port)
        finally:
            await first.stop(0)

    asyncio.run(scenario())
