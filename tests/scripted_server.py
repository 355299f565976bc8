"""A tiny OpenAI-style HTTP server on 127.0.0.1 that answers from a script, for testing the
client's retries, errors and streaming against real sockets."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    # a dict (sent as JSON), a str, None for a chat completion of `text`, or a function of the
    # request's headers returning one of those (a server that echoes them)
    body: Any = None
    text: str = "ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering
    sse: list[str] | None = None  # stream these content pieces as server-sent events
    lines: list[str] | None = None  # or send these lines verbatim as an event stream
    content_type: str = "application/json"  # of a `body` reply


def completion(text: str) -> dict[str, Any]:
    return {
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}],
    }


@dataclass
class ScriptedServer:
    url: str
    replies: list[Reply]
    requests: list[dict[str, Any]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)


@contextmanager
def scripted_server(replies: list[Reply]) -> Iterator[ScriptedServer]:
    """Serve ``replies`` in order (the last one repeats); record each request body and time."""
    state = ScriptedServer(url="", replies=list(replies))
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            with lock:
                state.requests.append(
                    {"path": self.path, "body": body, "headers": dict(self.headers)}
                )
                state.times.append(time.monotonic())
                reply = state.replies.pop(0) if len(state.replies) > 1 else state.replies[0]
            if reply.delay:
                time.sleep(reply.delay)
            if callable(reply.body):
                reply = replace(reply, body=reply.body(dict(self.headers)))
            if reply.lines is not None:
                self.send_response(reply.status)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write("".join(f"{line}\n" for line in reply.lines).encode())
                self.close_connection = True
                return
            if reply.sse is not None:
                self.send_response(reply.status)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                for piece in reply.sse:
                    event = {"choices": [{"index": 0, "delta": {"content": piece}}]}
                    self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                    self.wfile.flush()
                self.wfile.write(b"data: [DONE]\n\n")
                self.close_connection = True
                return
            payload = reply.body if reply.body is not None else completion(reply.text)
            data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(data)))
            for key, value in reply.headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

    class Server(ThreadingHTTPServer):
        def handle_error(self, request: Any, client_address: Any) -> None:
            # a client that gave up (timeout test) breaks the pipe: expected, and printing it
            # would land in a later test's captured stderr
            pass

    server = Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
