"""Opens a page in headless Chromium and reports what went wrong while loading.

Chromium is driven over its DevTools protocol on a loopback port with the
`websocket-client` package: the protocol's events name each uncaught
exception, console error and failed request, which parsing Chromium's log
output would only give as free text whose format changes between versions.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request

import websocket

CHROMIUM_NAMES = ("chromium", "chromium-browser")
START_TIMEOUT_S = 60
LOAD_TIMEOUT_S = 60
# Time after the load event for timers and late requests to show up.
SETTLE_S = 2.0


class ChromiumMissingError(RuntimeError):
    """No Chromium binary on PATH."""


@dataclasses.dataclass
class PageLoad:
    """What happened while one page loaded."""

    errors: list[str]
    requests: list[str]
    failed_requests: list[str]
    screenshot: bytes


def find_chromium() -> str:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    raise ChromiumMissingError(
        "Chromium is not installed: run `make setup` as root, which installs "
        "Debian's `chromium` package, or `apt-get install -y chromium`."
    )


class _DevTools:
    """One page target's DevTools connection: commands and the events seen."""

    def __init__(self, url: str):
        self._socket = websocket.create_connection(url, timeout=LOAD_TIMEOUT_S)
        self._next_id = 0
        self.events: list[dict] = []

    def command(self, method: str, **params) -> dict:
        self._next_id += 1
        self._socket.send(
            json.dumps({"id": self._next_id, "method": method, "params": params})
        )
        while True:
            message = json.loads(self._socket.recv())
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, method: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        if any(event.get("method") == method for event in self.events):
            return
        while time.monotonic() < deadline:
            self._socket.settimeout(max(0.1, deadline - time.monotonic()))
            message = json.loads(self._socket.recv())
            self.events.append(message)
            if message.get("method") == method:
                return
        raise TimeoutError(f"no {method} within {timeout_s} s")

    def drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._socket.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                self.events.append(json.loads(self._socket.recv()))
            except websocket.WebSocketTimeoutException:
                return

    def close(self) -> None:
        self._socket.close()


def _wait_for_port(profile: str, process: subprocess.Popen) -> int:
    port_file = os.path.join(profile, "DevToolsActivePort")
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Chromium exited with code {process.returncode}")
        if os.path.exists(port_file):
            with open(port_file) as stream:
                first_line = stream.readline().strip()
            if first_line.isdigit():
                return int(first_line)
        time.sleep(0.1)
    raise TimeoutError(
        f"Chromium did not open its DevTools port in {START_TIMEOUT_S} s"
    )


def load_page(path: str, width: int = 1280, height: int = 2000) -> PageLoad:
    """Loads a local HTML file and returns its errors, requests and a screenshot."""
    chromium = find_chromium()
    # Chromium's helper processes can still be writing to the throwaway
    # profile for a moment after the browser exits; its removal may not fail
    # the page check.
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        process = subprocess.Popen(
            [
                chromium,
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            port = _wait_for_port(profile, process)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list") as answer:
                targets = json.load(answer)
            page = next(target for target in targets if target["type"] == "page")
            devtools = _DevTools(page["webSocketDebuggerUrl"])
            try:
                for domain in ("Page", "Runtime", "Log", "Network"):
                    devtools.command(f"{domain}.enable")
                devtools.command("Page.navigate", url="file://" + os.path.abspath(path))
                devtools.wait_for("Page.loadEventFired", LOAD_TIMEOUT_S)
                devtools.drain(SETTLE_S)
                shot = devtools.command(
                    "Page.captureScreenshot", format="png", captureBeyondViewport=True
                )
            finally:
                devtools.close()
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    return _summarize(devtools.events, base64.b64decode(shot["data"]))


def _summarize(events: list[dict], screenshot: bytes) -> PageLoad:
    errors, requests, failed = [], [], []
    urls = {}
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            errors.append(
                "exception: "
                + details.get("exception", {}).get(
                    "description", details.get("text", "")
                )
            )
        elif method == "Runtime.consoleAPICalled" and params.get("type") in (
            "error",
            "assert",
        ):
            errors.append(
                "console: "
                + " ".join(
                    str(arg.get("value", arg.get("description")))
                    for arg in params["args"]
                )
            )
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            errors.append(
                f"log: {params['entry']['text']} {params['entry'].get('url', '')}"
            )
        elif method == "Network.requestWillBeSent":
            urls[params["requestId"]] = params["request"]["url"]
            requests.append(params["request"]["url"])
        elif method == "Network.loadingFailed":
            url = urls.get(params["requestId"], params["requestId"])
            failed.append(f"{url}: {params.get('errorText')}")
    return PageLoad(errors, requests, failed, screenshot)
