"""A small OpenAI-compatible chat-completions server on 127.0.0.1 for the tests: a real `transformers`
model generates every answer, and the server can be told to fail after N requests (to test resume)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class TeacherServer:
    def __init__(self, model_dir: str, fail_after: int | None = None):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        self.fail_after = fail_after
        self.requests = 0
        self.authorization: list[str | None] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def complete(self, body: dict) -> dict:
        import torch

        prompt = body["messages"][-1]["content"]
        encoded = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        with self.lock, torch.no_grad():
            torch.manual_seed(body.get("seed", 0))
            output = self.model.generate(**encoded, max_new_tokens=body["max_tokens"], do_sample=True,
                                         temperature=body["temperature"], top_p=body["top_p"],
                                         pad_token_id=self.tokenizer.eos_token_id)
        ids = output[0, encoded["input_ids"].shape[1]:].tolist()
        return {"object": "chat.completion", "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant",
                                                     "content": self.tokenizer.decode(ids, skip_special_tokens=True)},
                             "finish_reason": "length"}],
                "usage": {"prompt_tokens": encoded["input_ids"].shape[1], "completion_tokens": len(ids),
                          "total_tokens": encoded["input_ids"].shape[1] + len(ids)}}

    def _handler(self):
        teacher = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with teacher.lock:
                    teacher.requests += 1
                    teacher.authorization.append(self.headers.get("Authorization"))
                    failing = teacher.fail_after is not None and teacher.requests > teacher.fail_after
                if self.path != "/v1/chat/completions" or failing:
                    self.send_error(500 if failing else 404)
                    return
                answer = json.dumps(teacher.complete(body)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        return Handler

    def __enter__(self) -> TeacherServer:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
