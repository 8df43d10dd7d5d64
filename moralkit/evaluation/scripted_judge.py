"""A scripted OpenAI-compatible judge on 127.0.0.1, for tests and for offline demonstrations.

(book: Methods › Evaluation, methods/evaluation.md.) It answers ``POST /v1/chat/completions``
with whatever a Python ``script(prompt, attempt)`` returns: a text, or a :class:`ScriptedReply`
that can also delay the answer or fail with an HTTP status (429, 500...). ``attempt`` counts the
calls seen for the same prompt (1, 2, ...), so "fail once, then answer" is deterministic however
requests interleave. **Its verdicts are scripted, not judgments**: numbers obtained against it
demonstrate that the pipeline runs and mean nothing about any model.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from moralkit.local_http import local_server

#: the longest a scripted delay may last, so a test server can never hang a run
MAX_DELAY_S = 10.0


@dataclass(frozen=True)
class ScriptedReply:
    """One scripted answer: ``content`` with HTTP ``status`` after ``delay_s`` seconds."""

    content: str = ""
    status: int = 200
    delay_s: float = 0.0
    retry_after_s: float | None = None


Script = Callable[[str, int], "ScriptedReply | str"]


@dataclass
class ScriptedEndpoint:
    """A running scripted server: its ``base_url`` and the prompts it was asked, in order."""

    base_url: str
    calls: list[str] = field(default_factory=list)
    attempts: Counter = field(default_factory=Counter)


def _handler(script: Script, endpoint: ScriptedEndpoint, lock: threading.Lock):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep test and notebook output clean
            pass

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            prompt = "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
            with lock:
                endpoint.calls.append(prompt)
                endpoint.attempts[prompt] += 1
                attempt = endpoint.attempts[prompt]
            reply = script(prompt, attempt)
            reply = ScriptedReply(reply) if isinstance(reply, str) else reply
            time.sleep(min(reply.delay_s, MAX_DELAY_S))
            if reply.status != 200:
                payload = {
                    "error": {"message": f"scripted HTTP {reply.status}", "type": "scripted"}
                }
                self._send(reply.status, payload, reply.retry_after_s)
                return
            self._send(200, _completion(body.get("model", "scripted"), reply.content))

        def _send(self, status: int, payload: dict, retry_after: float | None = None) -> None:
            data = json.dumps(payload, ensure_ascii=False).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if retry_after is not None:
                    self.send_header("Retry-After", f"{retry_after:g}")
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (attempt time-out): nothing to answer

    return Handler


def _completion(model: str, content: str) -> dict:
    return {
        "id": "scripted-" + hashlib.sha1(content.encode()).hexdigest()[:12],
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


@contextmanager
def serve_scripted_judge(script: Script) -> Iterator[ScriptedEndpoint]:
    """Serve ``script`` on 127.0.0.1 (a free port) inside the block; shut down on exit."""
    endpoint = ScriptedEndpoint(base_url="")
    with local_server(_handler(script, endpoint, threading.Lock()), "scripted-judge") as server:
        endpoint.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        yield endpoint


def demo_script(prompt: str, attempt: int) -> str:
    """A deterministic pseudo-judge for demonstrations: a verdict or score drawn from a hash of
    the prompt. It reads nothing in the answers; its numbers mean nothing."""
    bucket = int(hashlib.sha256(prompt.encode()).hexdigest()[:8], 16)
    if "win" in prompt and "lose" in prompt:  # a pairwise prompt
        return ("win", "lose", "tie")[bucket % 3]
    if "（1或3）" in prompt:  # the binary Flames rubric
        return ("1", "3")[bucket % 2]
    return ("1", "2", "3")[bucket % 3]
