"""The web client's files as the server serves them (no browser needed): the page, its assets, its headers."""

from __future__ import annotations

import re

from mediamute.api.web import ASSETS


async def test_the_page_and_its_assets_are_served_from_the_package(server):
    import httpx

    async with httpx.AsyncClient(base_url=server.base_url, timeout=10.0) as client:
        page = await client.get("/", params={"token": "x", "call": "y"})
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["referrer-policy"] == "no-referrer"  # the URL carries a token
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and f"ws://{server.base_url.split('//')[1]}" in csp
        # everything the page loads comes from this server (or is inline data): no CDN
        for ref in re.findall(r'(?:src|href)="([^"]+)"', page.text):
            assert ref.startswith(("/web/", "data:")), ref
            if ref.startswith("/web/"):
                asset = await client.get(ref)
                assert asset.status_code == 200, ref
                assert asset.headers["x-content-type-options"] == "nosniff"
        assert (await client.get("/web/app.js")).headers["content-type"].startswith("text/javascript")
        assert (await client.get("/web/style.css")).headers["content-type"].startswith("text/css")


async def test_only_the_shipped_files_are_reachable(server):
    import httpx

    assert {"index.html", "app.js", "style.css"} <= set(ASSETS)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10.0) as client:
        for path in ("/web/nope.js", "/web/..%2Fapi%2Fweb.py", "/web/%2E%2E/__init__.py", "/web/web.py"):
            response = await client.get(path)
            assert response.status_code == 404, path
            assert response.json()["error"]["code"] == "itemNotFound"
