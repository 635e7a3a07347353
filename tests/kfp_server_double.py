"""A stand-in for the Kubeflow Pipelines API server on loopback.

It answers the v2beta1 REST calls kfp.Client makes to upload pipelines and
versions, create experiments, runs and recurring runs, and list and delete
recurring runs, and records every request (method, path, query, JSON body or
uploaded file) for the tests to inspect.
"""

import dataclasses
import email.parser
import email.policy
import http.server
import itertools
import json
import threading
import urllib.parse

API = "/apis/v2beta1"


@dataclasses.dataclass
class Request:
    method: str
    path: str
    query: dict
    body: object


class KfpServerDouble:
    """Serves on 127.0.0.1 at a free port until stopped."""

    def __init__(self):
        self.requests: list[Request] = []
        self.uploaded_files: list[bytes] = []
        self.pipelines: dict[str, str] = {}  # display name -> id
        self.experiments: dict[str, str] = {}
        self.recurring_runs: dict[str, dict] = {}
        self._ids = itertools.count(1)
        double = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, payload, status=200):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method):
                url = urllib.parse.urlparse(self.path)
                query = dict(urllib.parse.parse_qsl(url.query))
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = None
                content_type = self.headers.get("Content-Type", "")
                if content_type.startswith("multipart/form-data"):
                    message = email.parser.BytesParser(
                        policy=email.policy.default
                    ).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + raw)
                    for part in message.iter_parts():
                        double.uploaded_files.append(part.get_payload(decode=True))
                    body = {"uploaded": True}
                elif raw:
                    body = json.loads(raw)
                double.requests.append(Request(method, url.path, query, body))
                status, payload = double.respond(method, url.path, query, body)
                self._answer(payload, status)

            def do_GET(self):  # noqa: N802
                self._handle("GET")

            def do_POST(self):  # noqa: N802
                self._handle("POST")

            def do_DELETE(self):  # noqa: N802
                self._handle("DELETE")

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids)}"

    def _named(self, query: dict, table: dict, key: str):
        """Items of a list call filtered by display_name, as KFP filters them."""
        wanted = None
        if "filter" in query:
            for predicate in json.loads(query["filter"]).get("predicates", []):
                if predicate.get("key") == "display_name":
                    wanted = predicate.get("stringValue") or predicate.get(
                        "string_value"
                    )
        found = [
            {"display_name": name, key: item_id}
            for name, item_id in table.items()
            if wanted is None or name == wanted
        ]
        return found

    def respond(self, method, path, query, body):
        if path == f"{API}/healthz":
            return 200, {"multi_user": False}
        if path == f"{API}/pipelines" and method == "GET":
            found = self._named(query, self.pipelines, "pipeline_id")
            return 200, {"pipelines": found} if found else {}
        if path == f"{API}/pipelines/upload":
            pipeline_id = self._new_id("pipeline")
            self.pipelines[query["name"]] = pipeline_id
            self.latest_version = self._new_id("version")
            return 200, {"pipeline_id": pipeline_id, "display_name": query["name"]}
        if path == f"{API}/pipelines/upload_version":
            self.latest_version = self._new_id("version")
            return 200, {
                "pipeline_id": query["pipelineid"],
                "pipeline_version_id": self.latest_version,
                "display_name": query["name"],
            }
        if path.startswith(f"{API}/pipelines/") and path.endswith("/versions"):
            pipeline_id = path.split("/")[-2]
            return 200, {
                "pipeline_versions": [
                    {
                        "pipeline_id": pipeline_id,
                        "pipeline_version_id": self.latest_version,
                    }
                ]
            }
        if path == f"{API}/experiments" and method == "GET":
            found = self._named(query, self.experiments, "experiment_id")
            return 200, {"experiments": found} if found else {}
        if path == f"{API}/experiments" and method == "POST":
            experiment_id = self._new_id("experiment")
            self.experiments[body["display_name"]] = experiment_id
            return 200, {**body, "experiment_id": experiment_id}
        if path == f"{API}/runs" and method == "POST":
            return 200, {**body, "run_id": self._new_id("run")}
        if path == f"{API}/recurringruns" and method == "POST":
            recurring_run = {**body, "recurring_run_id": self._new_id("recurring")}
            self.recurring_runs[recurring_run["recurring_run_id"]] = recurring_run
            return 200, recurring_run
        if path == f"{API}/recurringruns" and method == "GET":
            # The API names this list in camel case (the proto's json_name).
            return 200, {"recurringRuns": list(self.recurring_runs.values())}
        if path.startswith(f"{API}/recurringruns/") and method == "DELETE":
            if self.recurring_runs.pop(path.rsplit("/", 1)[-1], None) is None:
                return 404, {"error": "not found", "code": 5}
            return 200, {}
        return 404, {"error": f"no such call {method} {path}", "code": 5}

    def calls(self, method: str, path_suffix: str) -> list[Request]:
        return [
            request
            for request in self.requests
            if request.method == method and request.path.endswith(path_suffix)
        ]

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()
