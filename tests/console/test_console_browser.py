"""The web console in Debian's Chromium against a real modelhost with the demo models.

The tests run in file order and share one server: the requests made by the Try it tests are the
ones My usage and Operations then show.
"""

from __future__ import annotations

import re
import statistics
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import joblib
import numpy as np
from playwright.sync_api import Page, expect

from tests.console.audit import audit
from tests.console.conftest import LAPTOP, PHONE, REPORT, Console, ContextFactory
from tests.support.waiting import eventually

SETOSA = [5.1, 3.5, 1.4, 0.2]
SENTENCES = ["A cat sat on the mat.", "A kitten rested on the rug.", "Stock markets fell sharply."]


# The elements that stick out past the right edge of the window, to say what to fix.
WIDEST = """() => [...document.querySelectorAll('body *')]
    .filter((e) => e.getBoundingClientRect().right > innerWidth + 1 && !e.closest('.scroll *'))
    .slice(0, 8)
    .map((e) => e.tagName + '.' + e.className + ' ' + e.getBoundingClientRect().right)"""


def shot(page: Page, console: Console, name: str) -> Path:
    path = console.screenshots / f"{name}.png"
    page.screenshot(path=path, full_page=True)
    return path


def api(console: Console, method: str, path: str, key: str) -> httpx.Response:
    with httpx.Client(base_url=console.server.url, timeout=120) as http:
        return http.request(method, path, headers={"Authorization": f"Bearer {key}"})


def test_a_wrong_key_is_refused_with_a_clear_message(
    console_server: Console, new_context: ContextFactory
) -> None:
    page = new_context().new_page()
    page.goto(console_server.url)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("Enter your API key")
    page.get_by_label("API key").fill("mh_000000000000_not-a-real-key")
    page.get_by_role("button", name="Sign in").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("That key was not accepted")
    expect(alert).to_contain_text("revoked or expired")
    expect(page.get_by_label("API key")).to_have_attribute("aria-invalid", "true")
    assert page.evaluate("sessionStorage.length") == 0
    shot(page, console_server, "sign-in-wrong-key")


def test_sign_in_with_the_keyboard_and_see_the_models(
    console_server: Console, new_context: ContextFactory
) -> None:
    context = new_context()
    page = context.new_page()
    page.goto(console_server.url)
    # Keyboard only: the key field has the focus; Tab reaches the button, Enter presses it.
    expect(page.get_by_label("API key")).to_be_focused()
    page.keyboard.type(console_server.admin_key)
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Sign in")).to_be_focused()
    page.keyboard.press("Enter")
    table = page.get_by_test_id("models-table")
    expect(table).to_be_visible()
    for name in ("iris-onnx", "iris-sklearn", "minilm"):
        expect(table.locator(f"tr[data-model='{name}']")).to_contain_text("unloaded")
    expect(page.get_by_test_id("who")).to_have_text("admin (admin)")
    # The key is in this tab's session storage, and nowhere a cookie or URL would carry it.
    assert page.evaluate("sessionStorage.getItem('modelhost.apiKey')") == console_server.admin_key
    assert context.cookies() == []
    shot(page, console_server, "models")

    page.get_by_label("Search by name").fill("iris")
    expect(table.locator("tbody tr")).to_have_count(2)
    expect(table.locator("tr[data-model='minilm']")).to_have_count(0)
    shot(page, console_server, "models-search")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("API key")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0


def test_time_from_opening_the_console_to_the_models_list(
    console_server: Console, new_context: ContextFactory
) -> None:
    """Measured by the page itself (Performance API): navigation start to the list drawn."""
    cold: list[float] = []
    for _ in range(3):  # a new context each time: nothing cached
        page = new_context(key=console_server.admin_key).new_page()
        page.goto(console_server.url)
        expect(page.get_by_test_id("models-table")).to_be_visible()
        cold.append(page.evaluate("performance.getEntriesByName('models-shown')[0].startTime"))
    page.reload()
    expect(page.get_by_test_id("models-table")).to_be_visible()
    warm = page.evaluate("performance.getEntriesByName('models-shown')[0].startTime")
    REPORT.append(
        f"opening /console to the models list shown: {statistics.median(cold):.0f} ms "
        f"(median of {len(cold)}, empty cache), {warm:.0f} ms (reload, cached assets)"
    )
    assert 0 < statistics.median(cold) < 5000


def test_try_the_onnx_iris_model(console_server: Console, new_context: ContextFactory) -> None:
    page = new_context(key=console_server.admin_key).new_page()
    page.goto(f"{console_server.url}#/try/iris-onnx")
    field = page.get_by_label(re.compile(r"^input"))
    infer_calls: list[str] = []
    page.on("request", lambda r: infer_calls.append(r.url) if r.url.endswith("/infer") else None)

    # The shape is checked before anything is sent.
    field.fill("5.1, 3.5, 1.4")
    page.get_by_role("button", name="Run").click()
    check = page.get_by_test_id("check-input")
    expect(check).to_contain_text("dimension 2 must be 4")
    expect(field).to_be_focused()
    field.fill("5.1, 3.5, 1.4, 0.2\n6.7, 3.0")
    expect(check).to_contain_text("row 2 has 2 values but row 1 has 4")
    field.fill("5.1, 3.5, 1.4, abc")
    expect(check).to_contain_text('"abc" is not a number')
    assert infer_calls == []
    shot(page, console_server, "try-iris-shape-check")

    field.fill(", ".join(str(v) for v in SETOSA))
    expect(check).to_have_text("shape [1, 4]: fits")
    page.get_by_role("button", name="Run").click()
    answer = page.get_by_test_id("answer")
    expect(answer).to_be_visible(timeout=60_000)
    assert len(infer_calls) == 1
    # The right probabilities: the scikit-learn classifier the ONNX graph was written from.
    classifier = joblib.load(console_server.repository / "iris-sklearn/1/model.joblib")
    expected = classifier.predict_proba(np.array([SETOSA]))[0]
    cells = answer.locator("table[data-output='probabilities'] td")
    expect(cells).to_have_count(3)
    shown = [float(text) for text in cells.all_inner_texts()]
    assert np.allclose(shown, expected, atol=1e-4), (shown, expected)
    assert int(np.argmax(shown)) == 0  # setosa
    expect(page.get_by_test_id("latency")).to_contain_text(re.compile(r"\d+(\.\d+)? m?s"))
    expect(page.get_by_test_id("batch-size")).to_have_text(re.compile(r"ran in a batch of \d+"))
    page.get_by_role("button", name="Show raw JSON").click()
    expect(page.get_by_test_id("raw-json")).to_contain_text('"name": "probabilities"')
    shot(page, console_server, "try-iris")


def test_try_minilm_and_see_the_similarity_heat_map(
    console_server: Console, new_context: ContextFactory
) -> None:
    page = new_context(key=console_server.admin_key).new_page()
    page.goto(f"{console_server.url}#/try/minilm")
    page.get_by_label("Sentences, one per line").fill("\n".join(SENTENCES))
    page.get_by_role("button", name="Run").click()
    heat_map = page.get_by_test_id("heatmap")
    expect(heat_map).to_be_visible(timeout=120_000)  # MiniLM loads on this first request
    cells = heat_map.locator("td[data-value]")
    expect(cells).to_have_count(9)
    values = np.array([float(v) for v in cells.evaluate_all("cs => cs.map(c => c.dataset.value)")])
    matrix = values.reshape(3, 3)
    assert np.allclose(np.diag(matrix), 1.0, atol=1e-5), matrix
    for i in range(3):
        expect(heat_map.locator(f"td[data-row='{i}'][data-col='{i}']")).to_have_text("1")
    assert np.allclose(matrix, matrix.T, atol=1e-6)
    assert (matrix[~np.eye(3, dtype=bool)] < 0.99).all()
    assert matrix[0, 1] > matrix[0, 2]  # the cat is closer to the kitten than to the stocks
    shot(page, console_server, "try-minilm")


def test_my_usage_shows_the_requests(console_server: Console, new_context: ContextFactory) -> None:
    # More requests than one page holds (25), so there is an older page.
    body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": SETOSA}]}
    with httpx.Client(base_url=console_server.server.url, timeout=60) as http:
        headers = {"Authorization": f"Bearer {console_server.admin_key}"}
        for _ in range(26):
            answer = http.post("/v2/models/iris-onnx/infer", json=body, headers=headers)
            assert answer.status_code == 200, answer.text
    page = new_context(key=console_server.admin_key).new_page()
    page.goto(f"{console_server.url}#/usage")
    table = page.get_by_test_id("usage-table")

    def recorded() -> bool:
        # Records are written in batches every half second: refresh until all are there.
        page.get_by_role("button", name="Refresh").click()
        page.wait_for_load_state("networkidle")
        return (
            table.locator("tbody tr").count() == 25
            and page.get_by_role("button", name="Older").is_enabled()
        )

    eventually(recorded, timeout=15, interval=0.5)
    expect(page.get_by_role("img", name=re.compile("Requests per"))).to_be_visible()
    expect(page.get_by_role("img", name=re.compile("Median latency per"))).to_be_visible()
    shot(page, console_server, "usage")
    pager = page.get_by_role("navigation", name="Pages of requests")
    first_page = table.locator("tbody tr").all_inner_texts()
    assert len(first_page) == 25
    pager.get_by_role("button", name="Older").click()
    expect(pager).to_contain_text("Page 2")
    # The older requests: the ones the Try it tests sent from the console.
    expect(table.locator("tr[data-model='minilm']")).to_have_count(1)
    expect(table.locator("tr[data-model='iris-onnx']")).not_to_have_count(0)
    assert table.locator("tbody tr").all_inner_texts() != first_page
    pager.get_by_role("button", name="Newer").click()
    expect(pager).to_contain_text("Page 1")

    page.get_by_label("Model", exact=True).select_option("iris-onnx")
    page.get_by_role("button", name="Apply filters").click()
    expect(table.locator("tr[data-model='minilm']")).to_have_count(0)
    expect(table.locator("tr[data-model='iris-onnx']").first).to_contain_text("200")
    # A time range with nothing in it.
    page.get_by_label("From", exact=True).fill("2001-01-01T00:00:00")
    page.get_by_label("To", exact=True).fill("2001-01-02T00:00:00")
    page.get_by_role("button", name="Apply filters").click()
    expect(page.get_by_text("No requests match")).to_be_visible()
    shot(page, console_server, "usage-filtered")


def test_an_admin_unloads_a_model_and_the_budget_bar_shrinks(
    console_server: Console, new_context: ContextFactory
) -> None:
    key = console_server.admin_key
    for name in ("iris-onnx", "minilm"):  # resident, whichever tests ran before
        assert api(console_server, "POST", f"/v2/repository/models/{name}/load", key).is_success
    page = new_context(key=key).new_page()
    page.goto(f"{console_server.url}#/operations")
    bar = page.get_by_test_id("budget-bar")
    row = page.locator("[data-testid=ops-models] tr[data-model='minilm']")
    expect(row).to_have_attribute("data-state", "READY")
    expect(page.locator(".legend li", has_text="minilm v1")).to_be_visible()
    used_before = int(bar.get_attribute("data-used-bytes") or 0)
    minilm_segment = bar.locator(".segment-model[title^='minilm v1']")
    minilm_bytes = int(minilm_segment.get_attribute("data-bytes") or 0)
    assert used_before > 0 and minilm_bytes > 0
    shot(page, console_server, "operations")

    page.get_by_role("button", name="Unload minilm version 1").click()
    expect(row).to_have_attribute("data-state", "UNAVAILABLE", timeout=30_000)
    expect(row.get_by_text("unloaded")).to_be_visible()
    expect(row.get_by_role("button", name="Load minilm version 1")).to_be_visible()
    expect(page.locator(".legend li", has_text="minilm v1")).to_have_count(0)
    used_after = int(bar.get_attribute("data-used-bytes") or 0)
    assert used_after == used_before - minilm_bytes, (used_before, minilm_bytes, used_after)
    expect(bar.locator(".segment-model")).to_have_count(1)  # iris-onnx's share only
    shot(page, console_server, "operations-after-unload")

    # The traffic the earlier tests made is on the page, refreshed from /api/v1/stats.
    iris = page.locator("[data-testid=ops-models] tr[data-model='iris-onnx']")
    expect(iris).to_contain_text("ms")


def test_an_admin_moves_an_alias_and_sees_refusals_in_words(
    console_server: Console, new_context: ContextFactory
) -> None:
    page = new_context(key=console_server.admin_key).new_page()
    page.goto(f"{console_server.url}#/operations")
    form = page.get_by_role("form", name="Move an alias")
    form.get_by_label("Model").select_option("iris-sklearn")
    form.get_by_label("Alias").fill("production")
    form.get_by_label("Version").select_option("1")
    form.get_by_role("button", name="Move alias").click()
    expect(form.get_by_role("status")).to_contain_text("now points at version 1", timeout=60_000)
    expect(page.get_by_test_id("aliases-table")).to_contain_text("production")
    # An error from the API appears next to the form that caused it.
    create = page.get_by_role("form", name="Create a user")
    create.get_by_label("New user's name").fill("not a valid name!")
    create.get_by_role("button", name="Create user").click()
    expect(create.get_by_role("alert")).to_contain_text("The user was not created")
    expect(create.get_by_role("alert")).to_contain_text("The request was refused")
    shot(page, console_server, "operations-alias-and-error")


def test_a_new_user_cannot_see_operations_nor_call_its_api(
    console_server: Console, new_context: ContextFactory
) -> None:
    admin_context = new_context(key=console_server.admin_key)
    admin_context.grant_permissions(["clipboard-read", "clipboard-write"])
    admin = admin_context.new_page()
    admin.goto(f"{console_server.url}#/operations")
    create = admin.get_by_role("form", name="Create a user")
    create.get_by_label("New user's name").fill("carol")
    create.get_by_label("Role").select_option("user")
    create.get_by_role("button", name="Create user").click()
    keys = admin.get_by_role("group", name="API keys of carol")
    keys.get_by_label("Key name (optional)").fill("laptop")
    keys.get_by_role("button", name="Create key").click()
    new_key = keys.get_by_test_id("new-key-value")
    expect(new_key).to_have_text(re.compile(r"^mh_"))
    carol_key = new_key.inner_text()
    keys.get_by_role("button", name="Copy key").click()
    expect(keys.get_by_text("Copied")).to_be_visible()
    assert admin.evaluate("navigator.clipboard.readText()") == carol_key
    shot(admin, console_server, "operations-new-key")

    # Carol signs in in a browser session of her own.
    carol = new_context().new_page()
    carol.goto(console_server.url)
    carol.get_by_label("API key").fill(carol_key)
    carol.get_by_role("button", name="Sign in").click()
    expect(carol.get_by_test_id("who")).to_have_text("carol (user)")
    nav = carol.get_by_role("navigation", name="Pages")
    expect(nav.get_by_role("link", name="Models")).to_be_visible()
    expect(nav.get_by_role("link", name="Operations")).to_have_count(0)
    carol.goto(f"{console_server.url}#/operations")  # typed by hand: the models page instead
    expect(carol.get_by_role("heading", name="Models", level=1)).to_be_visible()
    expect(carol.get_by_role("heading", name="Operations")).to_have_count(0)
    shot(carol, console_server, "user-view")
    # Operations' API refuses her key, from her browser and from anywhere else.
    statuses = carol.evaluate(
        """async () => {
            const headers = {Authorization: 'Bearer ' + sessionStorage.getItem('modelhost.apiKey')};
            const paths = ['/api/v1/cache', '/api/v1/stats', '/api/v1/users'];
            return Promise.all(paths.map((p) => fetch(p, {headers}).then((r) => r.status)));
        }"""
    )
    assert statuses == [403, 403, 403]
    for method, path in (
        ("GET", "/api/v1/cache"),
        ("GET", "/api/v1/stats"),
        ("POST", "/v2/repository/models/iris-onnx/unload"),
    ):
        response = api(console_server, method, path, carol_key)
        assert response.status_code == 403, (path, response.text)
        assert response.json()["code"] == "forbidden"

    # The admin revokes the key; carol's next call signs her out, saying why.
    keys.get_by_role("button", name="I have saved it").click()
    keys.get_by_role("button", name=re.compile("^Revoke key")).click()
    keys.get_by_role("button", name=re.compile("Yes, revoke")).click()
    expect(keys.locator("tbody tr").first).to_contain_text("revoked")
    carol.get_by_role("link", name="My usage").click()
    expect(carol.get_by_role("alert")).to_contain_text("You were signed out", timeout=10_000)
    expect(carol.get_by_label("API key")).to_be_visible()
    shot(carol, console_server, "user-signed-out-after-revoke")


def test_every_page_is_labelled_readable_and_fits_a_phone(
    console_server: Console, new_context: ContextFactory
) -> None:
    # Each page, and what shows once its data is in.
    pages = {
        "models": "[data-testid=models-table]",
        "try/iris-onnx": "textarea",
        "usage": "[data-testid=usage-table]",
        "operations": "[data-testid=users-table]",
    }
    for viewport_name, viewport in (("laptop", LAPTOP), ("phone", PHONE)):
        page = new_context(key=console_server.admin_key, viewport=viewport).new_page()
        for route, loaded in pages.items():
            page.goto(f"{console_server.url}#/{route}")
            expect(page.locator(loaded)).to_be_visible()
            found = audit(page)
            assert found["problems"] == [], (route, viewport_name, found["problems"])
            assert found["checked"] > 10
            assert found["overflow"] <= 1, (
                f"{route} scrolls sideways on a {viewport_name}",
                page.evaluate(WIDEST),
            )
            if viewport is PHONE:
                shot(page, console_server, f"phone-{route.replace('/', '-')}")


def test_the_console_talked_to_its_server_only(console_server: Console) -> None:
    origin = urlsplit(console_server.server.url)
    hosts = {urlsplit(url).netloc for url in console_server.requests}
    assert console_server.requests, "no request was recorded"
    assert hosts == {origin.netloc}, hosts
    assert not [url for url in console_server.requests if console_server.admin_key in url]
    assert console_server.problems == []
    names = sorted(path.name for path in console_server.screenshots.glob("*.png"))
    REPORT.append(f"{len(console_server.requests)} requests, all to {origin.netloc}")
    REPORT.append("pages: " + ", ".join(names))
