"""A Messages API stub on 127.0.0.1 and reply builders for the tests of both LLM stages.

The stub returns responses from a script (status, JSON body, headers,
delay) and records every request, so a test can check what the real SDK
sent, how often it retried, and what a stage sent back after an invalid
reply. No test reaches a real API. Test modules import the fixtures
``stub`` and ``clean_environment`` from here; the second is autouse there.
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from iotsynth.llm.settings import LLMSettings

MODEL = "claude-test-model"


class MessagesStub(BaseHTTPRequestHandler):
    """Reply to POST /v1/messages from ``server.script`` and record each request in ``server.requests``."""

    def do_POST(self):
        length = int(self.headers.get("content-length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        with self.server.lock:
            self.server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
            step = self.server.script.pop(0) if self.server.script else self.server.default
        status, payload, headers, delay = step
        if delay:
            self.server.stopped.wait(delay)
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client timed out and closed the connection

    def log_message(self, *args):
        pass


@pytest.fixture
def stub():
    server = ThreadingHTTPServer(("127.0.0.1", 0), MessagesStub)
    server.daemon_threads = True
    server.lock = threading.Lock()
    server.stopped = threading.Event()
    server.requests, server.script = [], []
    server.default = (500, {"type": "error", "error": {"type": "api_error", "message": "script exhausted"}}, {}, 0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield server
    server.stopped.set()
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL", "ANTHROPIC_CUSTOM_HEADERS",
                 "ANTHROPIC_PROFILE", "ANTHROPIC_CONFIG_DIR"):
        monkeypatch.delenv(name, raising=False)


def stub_settings(stub, tmp_path, **changes) -> LLMSettings:
    """Return ``llm`` settings that send to ``stub`` with a forced tool choice and cache under ``tmp_path``."""
    values = {
        "backend": "anthropic",
        "model": MODEL,
        "max_tokens": 4000,
        "timeout": 5.0,
        "max_retries": 2,
        "max_repair_attempts": 1,
        "tool_choice": "forced",
        "base_url": stub.url,
        "cache_dir": str(tmp_path / "cache"),
    }
    values.update(changes)
    return LLMSettings(**values)


def tool_use(name: str, tool_input: object, block_id: str = "toolu_01") -> dict:
    """Return a ``tool_use`` content block."""
    return {"type": "tool_use", "id": block_id, "name": name, "input": tool_input}


def message(blocks: list[dict], stop_reason: str = "tool_use") -> dict:
    """Return a Messages API reply body with these content blocks."""
    return {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": blocks,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 100, "output_tokens": 50},
    }


def repair_feedback(request: dict) -> dict:
    """Return the first block a repair request sends back, after checking the conversation around it.

    The request must repeat the first message, echo the invalid ``tool_use``
    reply and follow it with an error tool result.
    """
    messages = request["body"]["messages"]
    assert [item["role"] for item in messages] == ["user", "assistant", "user"]
    assert messages[1]["content"][0]["type"] == "tool_use"
    feedback = messages[2]["content"][0]
    assert feedback["type"] == "tool_result"
    assert feedback["is_error"] is True
    assert feedback["tool_use_id"] == "toolu_01"
    return feedback
