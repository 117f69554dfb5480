"""A webhook receiver for tests/webhooks.rs that verifies every delivery with the
`standardwebhooks` package (an implementation independent of erpsync's), records what it
verified, and refuses what it cannot verify.

Run: python webhook_receiver.py [PORT [CONFIG]]; it prints "listening PORT" once it listens,
with CONFIG (as for /__config) already in force.
Control, as JSON:
  POST /__config   {"secrets": ["whsec_…", …], "status": 200, "clock_offset_secs": 0}
                   (any subset): the secrets to verify with, the status to answer a verified
                   delivery with, and how far the verifier's clock is moved (a replay later).
  GET  /__received the record of every delivery: its headers and body, the indexes of the
                   secrets that verified it, the verifier's error, the status answered.
Every other POST is a delivery: 401 if no secret verifies it, else the configured status.
"""

import json
import sys
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import standardwebhooks.webhooks as swh

LOCK = threading.Lock()
STATE = {"secrets": [], "status": 200, "clock_offset_secs": 0, "received": []}

_real_datetime = swh.datetime


class ShiftedDatetime(_real_datetime):
    """The library's clock, moved by clock_offset_secs: how a replay is made "later"."""

    @classmethod
    def now(cls, tz=None):
        with LOCK:
            offset = STATE["clock_offset_secs"]
        return _real_datetime.now(tz) + timedelta(seconds=offset)


swh.datetime = ShiftedDatetime


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def read_body(self):
        return self.rfile.read(int(self.headers.get("content-length", "0")))

    def do_GET(self):
        if self.path == "/__received":
            with LOCK:
                self.answer(200, STATE["received"])
        else:
            self.answer(404, {"error": "unknown path"})

    def do_POST(self):
        body = self.read_body()
        if self.path == "/__config":
            with LOCK:
                STATE.update(json.loads(body))
            self.answer(200, {"ok": True})
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        with LOCK:
            secrets = list(STATE["secrets"])
            status = STATE["status"]
        accepted_by, errors = [], []
        for i, secret in enumerate(secrets):
            try:
                swh.Webhook(secret).verify(body, headers)
                accepted_by.append(i)
            except Exception as e:  # the library's verification errors, by message
                errors.append(str(e))
        answered = status if accepted_by else 401
        record = {
            "path": self.path,
            "id": headers.get("webhook-id"),
            "timestamp": headers.get("webhook-timestamp"),
            "signature": headers.get("webhook-signature"),
            "body": body.decode("utf-8", "replace"),
            "accepted_by": accepted_by,
            "errors": errors,
            "answered": answered,
        }
        with LOCK:
            STATE["received"].append(record)
        self.answer(answered, {"accepted_by": accepted_by, "errors": errors})


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    if len(sys.argv) > 2:
        STATE.update(json.loads(sys.argv[2]))
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print(f"listening {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
