"""Console page load times (issue 17): each page of the operations console loaded in Debian's
Chromium through Playwright, from navigation start to its first data drawn (the page's own
`data-load-ms`, streams/api/static/main.js). Used by `python -m scripts.bench state`, which
loads the pages once the worker holds the whole backlog (100k orders for issue 17's figure).
"""

from __future__ import annotations

from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps calling home on a closed network.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def console_pages(order: str, sku: str) -> tuple[tuple[str, str], ...]:
    """(page name the console marks as loaded, route) of every page."""
    return (
        ("overview", "#/"),
        ("cases", "#/cases?state=OPEN"),
        ("order", f"#/orders/{order}"),
        ("sku", f"#/skus/{sku}"),
    )


def console_times(port: str, order: str, sku: str, repeats: int = 5) -> list[str]:
    """Median and worst load time of each page, each load a fresh document; a line saying why
    when there is no browser here."""
    if not Path(CHROMIUM).exists():
        return [f"console pages: not measured ({CHROMIUM} is missing; scripts/test.sh installs it)"]
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return ["console pages: not measured (playwright is in the `test` extra)"]
    try:
        return _measure(sync_playwright, port, order, sku, repeats)
    except Exception as exc:  # noqa: BLE001 - a figure missing is reported, the bench goes on
        return [f"console pages: not measured ({exc!r})"]


def _measure(sync_playwright, port: str, order: str, sku: str, repeats: int) -> list[str]:
    lines = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for name, route in console_pages(order, sku):
                took = []
                for _ in range(repeats):
                    context = browser.new_context(viewport={"width": 1280, "height": 900})
                    tab = context.new_page()
                    tab.goto(f"http://127.0.0.1:{port}/{route}")
                    tab.wait_for_selector(f"#view[data-loaded='{name}']", timeout=60_000)
                    took.append(int(tab.get_attribute("#view", "data-load-ms") or 0))
                    context.close()
                took.sort()
                lines.append(f"console {name} ({route}): median {took[len(took) // 2]} ms, max {took[-1]} ms"
                             f" (navigation start -> data drawn, {repeats} loads)")
        finally:
            browser.close()
    return lines
