"""A stand-in for Kafka Connect's REST API (the one fake allowed: Connect cannot run here).

Modelled on the documented responses: JSON bodies, ``{"error_code", "message"}`` errors,
404 for unknown connectors, 409 while a rebalance is in progress, and the
``/connector-plugins/{class}/config/validate`` answer with ``error_count`` and
``configs[].value.errors``. It validates the Debezium MySQL required fields the way
the real plugin reports them.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MYSQL = "io.debezium.connector.mysql.MySqlConnector"
REQUIRED = ("database.hostname", "database.user", "topic.prefix", "database.server.id",
            "schema.history.internal.kafka.bootstrap.servers", "schema.history.internal.kafka.topic")


class FakeConnect:
    def __init__(self) -> None:
        self.connectors: dict[str, dict] = {}
        self.states: dict[str, str] = {}
        self.rebalance_409s = 0  # answer this many mutating requests with 409 first
        self.requests: list[tuple[str, str]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, code: int, body=None):
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self):
                n = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(n)) if n else None

            def _route(self, method: str):
                fake.requests.append((method, self.path))
                path = self.path.split("?")[0].strip("/").split("/")
                body = self._body()
                if method != "GET" and fake.rebalance_409s > 0:
                    fake.rebalance_409s -= 1
                    return self._send(409, {"error_code": 409, "message": "Cannot complete request momentarily "
                                            "due to stale configuration (typically caused by a concurrent config change)"})
                if path[:1] == ["connector-plugins"] and path[-2:] == ["config", "validate"]:
                    return self._send(200, fake.validate(body))
                if path == ["connectors"] and method == "GET":
                    return self._send(200, sorted(fake.connectors))
                if len(path) >= 2 and path[0] == "connectors":
                    name = path[1]
                    rest = path[2:]
                    if rest == ["config"] and method == "PUT":
                        created = name not in fake.connectors
                        fake.connectors[name] = body
                        fake.states.setdefault(name, "RUNNING")
                        return self._send(201 if created else 200,
                                          {"name": name, "config": body, "tasks": [{"connector": name, "task": 0}],
                                           "type": "source"})
                    if name not in fake.connectors:
                        return self._send(404, {"error_code": 404, "message": f"Connector {name} not found"})
                    if rest == ["status"] and method == "GET":
                        st = fake.states[name]
                        return self._send(200, {"name": name, "connector": {"state": st, "worker_id": "10.0.0.1:8083"},
                                                "tasks": [{"id": 0, "state": st, "worker_id": "10.0.0.1:8083"}],
                                                "type": "source"})
                    if rest == ["pause"] and method == "PUT":
                        fake.states[name] = "PAUSED"
                        return self._send(202)
                    if rest == ["resume"] and method == "PUT":
                        fake.states[name] = "RUNNING"
                        return self._send(202)
                    if rest == ["restart"] and method == "POST":
                        fake.states[name] = "RUNNING"
                        return self._send(202, {"name": name, "connector": {"state": "RESTARTING"}, "tasks": []})
                    if rest == [] and method == "DELETE":
                        del fake.connectors[name]
                        return self._send(204)
                return self._send(404, {"error_code": 404, "message": "HTTP 404 Not Found"})

            def do_GET(self):
                self._route("GET")

            def do_PUT(self):
                self._route("PUT")

            def do_POST(self):
                self._route("POST")

            def do_DELETE(self):
                self._route("DELETE")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @staticmethod
    def validate(config: dict) -> dict:
        configs = []
        errors = 0
        for key in sorted(set(REQUIRED) | set(config)):
            errs = []
            if key in REQUIRED and not str(config.get(key, "")).strip():
                errs.append(f'The \'{key}\' value is invalid: A value is required')
            if key == "database.port" and not str(config.get(key, "")).isdigit():
                errs.append(f"Invalid value {config.get(key)} for configuration database.port: Not a number of type INT")
            errors += len(errs)
            configs.append({"definition": {"name": key, "type": "STRING", "required": key in REQUIRED},
                            "value": {"name": key, "value": config.get(key), "recommended_values": [],
                                      "errors": errs, "visible": True}})
        return {"name": MYSQL, "error_count": errors, "groups": ["Common", "Connector"], "configs": configs}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
