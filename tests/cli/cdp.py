"""A tiny Chrome DevTools Protocol client over `--remote-debugging-pipe`, for driving a page in tests.

Headless `--dump-dom` cannot press keys or reload. Chromium's debugging pipe can: it reads JSON commands,
each ended by a NUL byte, on file descriptor 3 and writes answers and events the same way on 4. No network,
no websocket library, nothing injected into the page: the test sends real key events (`Input.dispatchKeyEvent`)
and reloads the page (`Page.reload`) as a reviewer would, in one browser profile whose localStorage persists.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.cli.conftest import CHROMIUM_FLAGS, chromium

#: Key name → (DOM `key`, `code`, Windows virtual key code), for Input.dispatchKeyEvent.
KEYS = {
    "ArrowRight": ("ArrowRight", "ArrowRight", 39), "ArrowLeft": ("ArrowLeft", "ArrowLeft", 37),
    "Escape": ("Escape", "Escape", 27), "Enter": ("Enter", "Enter", 13), "Backspace": ("Backspace", "Backspace", 8),
}  # fmt: skip


class Browser:
    """One headless Chromium with one page, driven over the debugging pipe (use as a context manager)."""

    def __init__(self, profile_dir: Path, timeout: float = 60.0) -> None:
        self.timeout = timeout
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # The child must see the pipe ends as fds 3 and 4: dup2 them there in the child only (dup2's copies are
        # inheritable; every other descriptor of this process is not, PEP 446).

        def place_fds() -> None:
            high_r, high_w = (fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_browser_r, from_browser_w))
            os.dup2(high_r, 3)  # (copies above 10 first: one pipe end may itself be fd 3 or 4)
            os.dup2(high_w, 4)

        self.proc = subprocess.Popen(
            [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}", "--remote-debugging-pipe",
             "about:blank"],
            close_fds=False, preexec_fn=place_fds,  # noqa: PLW1509 (only dup2 in the child; other fds are not inheritable)
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []
        deadline = time.monotonic() + timeout
        while not (pages := [t for t in self.call("Target.getTargets")["targetInfos"] if t["type"] == "page"]):
            if time.monotonic() > deadline:  # the first tab opens shortly after the pipe answers
                raise TimeoutError("Chromium opened no page")
            time.sleep(0.05)
        page_id = pages[0]["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=page_id, flatten=True)["sessionId"]
        self.send("Page.enable")
        self.send("Runtime.enable")

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError, RuntimeError, TimeoutError):
            self.call("Browser.close")
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline:
                raise TimeoutError("no answer from Chromium")
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise RuntimeError("Chromium closed the debugging pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, session: str | None = None, **params: Any) -> dict:
        """Send one command and wait for its answer (events that arrive meanwhile are kept in `events`)."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            answer = self._read_message(deadline)
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})
            self.events.append(answer)

    def send(self, method: str, **params: Any) -> dict:
        """A command to the page's session."""
        return self.call(method, self.session, **params)

    def wait_event(self, name: str) -> dict:
        """The next event called `name` (already received ones first)."""
        deadline = time.monotonic() + self.timeout
        while True:
            for n, event in enumerate(self.events):
                if event.get("method") == name:
                    return self.events.pop(n)
            self.events.append(self._read_message(deadline))

    def open(self, url: str) -> None:
        """Navigate and wait for the load event."""
        self.events.clear()
        self.send("Page.navigate", url=url)
        self.wait_event("Page.loadEventFired")

    def reload(self) -> None:
        self.events.clear()
        self.send("Page.reload")
        self.wait_event("Page.loadEventFired")

    def js(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (JSON-able values only)."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails'].get('exception', {}).get('description')}")
        return result["result"].get("value")

    def wait_for(self, expression: str, expected: Any) -> Any:
        """The expression's value once it equals `expected`, or its last value when the timeout runs out.

        For what a page shows after a write made in another page: Chromium passes localStorage between pages
        through its storage service, so under load a page opened right after the write may first show the old
        copy, then the new one when the change reaches it (a `storage` event, which the pages redraw on).
        """
        deadline = time.monotonic() + self.timeout
        while (value := self.js(expression)) != expected and time.monotonic() < deadline:
            time.sleep(0.1)
        return value

    def press(self, key: str) -> None:
        """A real key press (keydown, char for printable keys, keyup) to the focused element."""
        printable = len(key) == 1
        if printable:
            dom_key, code, vk = key, f"Key{key.upper()}" if key.isalpha() else f"Digit{key}", ord(key.upper())
        else:
            dom_key, code, vk = KEYS[key]
        self.send("Input.dispatchKeyEvent", type="keyDown" if printable else "rawKeyDown", key=dom_key, code=code,
                  windowsVirtualKeyCode=vk, **({"text": key} if printable else {}))  # fmt: skip
        self.send("Input.dispatchKeyEvent", type="keyUp", key=dom_key, code=code, windowsVirtualKeyCode=vk)

    def type(self, text: str) -> None:
        """Type text into the focused element."""
        self.send("Input.insertText", text=text)
