"""Swagger UI and ReDoc render in a real browser with every request outside the server blocked:
their JavaScript and CSS come from the project's static files (drf-spectacular-sidecar), so a
firewalled VM shows the API documentation instead of a blank page."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WAIT_MS = 30_000


def _offline_page(browser, server_url: str):
    """A page whose requests to any other origin are aborted (and remembered)."""
    own = urlsplit(server_url).netloc
    page = browser.new_page()
    blocked: list[str] = []
    errors: list[str] = []

    def route(route_, request):
        if urlsplit(request.url).netloc == own or request.url.startswith("data:"):
            route_.continue_()
        else:
            blocked.append(request.url)
            route_.abort()

    page.route("**/*", route)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return page, blocked, errors


def test_swagger_ui_renders_with_the_network_blocked(asgi_server, browser):
    page, blocked, errors = _offline_page(browser, asgi_server.url)
    page.goto(f"{asgi_server.url}/api/docs/")
    # Swagger UI draws one block per operation once its bundle has loaded and parsed the schema.
    page.wait_for_selector(".opblock-summary-path[data-path='/api/v1/signals']", timeout=WAIT_MS)
    assert page.locator(".opblock").count() > 20
    assert "AutoTrader API" in page.text_content(".info .title")
    scripts = page.eval_on_selector_all("script[src]", "nodes => nodes.map(n => n.src)")
    assert scripts and all(urlsplit(s).netloc == urlsplit(asgi_server.url).netloc for s in scripts)
    assert blocked == []
    assert errors == []


def test_redoc_renders_with_the_network_blocked(asgi_server, browser):
    page, blocked, errors = _offline_page(browser, asgi_server.url)
    page.goto(f"{asgi_server.url}/api/redoc/")
    page.wait_for_selector("h1:has-text('AutoTrader API')", timeout=WAIT_MS)
    # ReDoc lists every operation with its path once the standalone bundle parsed the schema.
    page.wait_for_function("document.body.innerText.includes('/api/v1/signals')", timeout=WAIT_MS)
    assert page.locator("[data-section-id^='tag/']").count() > 3
    assert blocked == [], blocked  # no Google fonts, no CDN logo (templates/api_docs/redoc.html)
    assert errors == []
