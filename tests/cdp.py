"""A headless chromium driven over the Chrome DevTools Protocol (a websocket), for the drawing
page's browser test and its screenshot. Needs Debian's `chromium` and `websocket-client`."""
from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser() -> str | None:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    """One headless chromium with one page; `with Browser() as b: b.goto(url) ...`."""

    def __init__(self, *, width: int = 1280, height: int = 860, timeout: float = 60.0):
        import websocket
        binary = find_browser()
        if binary is None:
            raise RuntimeError(f"no browser found (tried {', '.join(BROWSERS)})")
        self.profile = tempfile.mkdtemp(prefix="sbirjax-chromium-")
        args = [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--no-default-browser-check", "--disable-extensions", "--no-proxy-server",
                "--disable-dev-shm-usage", "--remote-debugging-port=0",
                f"--user-data-dir={self.profile}", f"--window-size={width},{height}",
                "--hide-scrollbars", "about:blank"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            port = self._devtools_port(timeout)
            ws_url = self._page_target(port, timeout)
            self.ws = websocket.create_connection(ws_url, timeout=timeout, suppress_origin=True)
        except BaseException:
            self.close()
            raise
        self._ids = itertools.count(1)
        self.timeout = timeout
        self.send("Page.enable")
        self.send("Runtime.enable")
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=False)

    def _devtools_port(self, timeout: float) -> int:
        path = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the browser exited with status {self.process.returncode}")
            try:
                with open(path) as f:
                    first = f.readline().strip()
                if first:
                    return int(first)
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        raise TimeoutError("the browser did not open its DevTools port")

    @staticmethod
    def _page_target(port: int, timeout: float) -> str:
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
                    targets = json.load(r)
                pages = [t for t in targets if t.get("type") == "page"]
                if pages:
                    return pages[0]["webSocketDebuggerUrl"]
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError("the browser shows no page target")

    # ------------------------------------------------------------------ protocol
    def send(self, method: str, **params):
        """Call a DevTools method; its result (events that arrive meanwhile are dropped)."""
        mid = next(self._ids)
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        deadline = time.time() + self.timeout
        while time.time() < deadline:
            message = json.loads(self.ws.recv())
            if message.get("id") == mid:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
        raise TimeoutError(f"{method}: no answer")

    def evaluate(self, expression: str, *, await_promise: bool = False):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=await_promise)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise RuntimeError(f"page script failed: {text}")
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float = 30.0, interval: float = 0.1):
        """Poll a page expression until it is truthy; its value."""
        deadline = time.time() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.time() > deadline:
                raise TimeoutError(f"timed out waiting for: {expression}")
            time.sleep(interval)

    def goto(self, url: str, ready: str = "document.readyState === 'complete'") -> None:
        self.send("Page.navigate", url=url)
        time.sleep(0.2)
        self.wait_for(ready)

    # ------------------------------------------------------------------ input
    def mouse(self, kind: str, x: float, y: float, buttons: int = 1) -> None:
        self.send("Input.dispatchMouseEvent", type=kind, x=float(x), y=float(y), button="left",
                  buttons=buttons, clickCount=1 if kind != "mouseMoved" else 0)

    def drag(self, points) -> None:
        """One stroke with the mouse through `points` (viewport CSS pixels)."""
        (x0, y0), rest = points[0], points[1:]
        self.mouse("mouseMoved", x0, y0, buttons=0)
        self.mouse("mousePressed", x0, y0)
        for x, y in rest:
            self.mouse("mouseMoved", x, y)
        x1, y1 = points[-1]
        self.mouse("mouseReleased", x1, y1, buttons=0)

    def touch(self, points) -> None:
        """One stroke with a finger through `points` (viewport CSS pixels); the page sees
        pointer events of pointerType 'touch'."""
        self.send("Emulation.setTouchEmulationEnabled", enabled=True, maxTouchPoints=1)
        (x0, y0), rest = points[0], points[1:]
        self.send("Input.dispatchTouchEvent", type="touchStart",
                  touchPoints=[{"x": float(x0), "y": float(y0)}])
        for x, y in rest:
            self.send("Input.dispatchTouchEvent", type="touchMove",
                      touchPoints=[{"x": float(x), "y": float(y)}])
        self.send("Input.dispatchTouchEvent", type="touchEnd", touchPoints=[])

    def screenshot(self, path: str) -> None:
        data = self.send("Page.captureScreenshot", format="png")["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        ws = getattr(self, "ws", None)
        if ws is not None:
            try:
                ws.close()
            except Exception:  # noqa: BLE001 - closing anyway
                pass
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
