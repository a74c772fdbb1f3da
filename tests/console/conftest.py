"""The console's browser tests: one modelhost server with the demo models (MiniLM included) and
auth on, one Chromium for the module, and a folder of screenshots printed at the end."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Playwright,
    sync_playwright,
)

from modelhost.demo_models import build_demo_models
from tests.support.cli import create_user
from tests.support.databases import sqlite_url
from tests.support.server import ServerProcess

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}

# Lines for the end of the run: where the screenshots are, and the figures measured.
REPORT: list[str] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if REPORT:
        terminalreporter.section("web console")
        for line in REPORT:
            terminalreporter.write_line(line)


@dataclass
class Console:
    """The server under test, its admin key, and every request its pages made."""

    server: ServerProcess
    repository: Path
    database_url: str
    admin_key: str
    screenshots: Path
    requests: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # console errors, CSP refusals

    @property
    def url(self) -> str:
        return f"{self.server.url}/console"


@pytest.fixture(scope="module")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    root = tmp_path_factory.mktemp("console")
    build_demo_models(root / "models")
    database_url = sqlite_url(root)
    env = {"MODELHOST_AUTH": "enabled", "MODELHOST_DATABASE_URL": database_url}
    admin_key = create_user("admin", "admin", database_url)
    screenshots = Path(os.environ.get("MODELHOST_SCREENSHOTS") or root / "screenshots")
    shutil.rmtree(screenshots, ignore_errors=True)
    screenshots.mkdir(parents=True)
    REPORT.append(f"screenshots of every page: {screenshots}")
    with ServerProcess(root / "models", root / "server.log", env=env) as server:
        yield Console(server, root / "models", database_url, admin_key, screenshots)


# Module scope: Playwright's sync API runs an event loop on this thread while it is open, and
# tests elsewhere call asyncio.run(), which refuses to start inside one.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    # Debian's Chromium; `playwright install` (a download) is never needed.
    chromium = playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
    )
    yield chromium
    chromium.close()


ContextFactory = Callable[..., BrowserContext]


@pytest.fixture
def new_context(browser: Browser, console_server: Console) -> Iterator[ContextFactory]:
    """Opens browser contexts (separate sessions) that record every request their pages make
    and every error the browser reports (a CSP refusal among them)."""
    opened: list[BrowserContext] = []

    def open_context(key: str | None = None, viewport: dict[str, int] = LAPTOP) -> BrowserContext:
        context = browser.new_context(viewport=viewport)  # type: ignore[arg-type]
        context.on("request", lambda request: console_server.requests.append(request.url))
        context.on("page", lambda page: _watch(page, console_server))
        if key is not None:
            # Signed in already: the key where the sign-in form puts it (session storage).
            context.add_init_script(
                f"if (location.protocol === 'http:') "
                f"sessionStorage.setItem('modelhost.apiKey', {key!r})"
            )
        opened.append(context)
        return context

    yield open_context
    for context in opened:
        context.close()


def _watch(page: Page, console: Console) -> None:
    def on_console(message: ConsoleMessage) -> None:
        # A refused API call (401/403/4xx) is logged by the browser as a failed resource load;
        # the page shows those in words, which the tests check. Anything else is a problem.
        if message.type == "error" and "Failed to load resource" not in message.text:
            console.problems.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: console.problems.append(f"page error: {error}"))
