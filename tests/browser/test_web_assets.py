"""The web client's files as the server serves them (no browser needed): the page, its modules, their headers."""

from __future__ import annotations

import re

from mediamute.api.web import ASSETS, WEB_DIR

# `import ... from './x.js'` / `export ... from './x.js'` (static) and `import('./x.js')` (dynamic) in a module
STATIC_IMPORT = re.compile(r"^(?:import|export)\b[^'\"]*?from\s+'\./([\w-]+\.js)';", re.MULTILINE)
DYNAMIC_IMPORT = re.compile(r"\bimport\('\./([\w-]+\.js)'\)")


def module_graph() -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Each shipped module's static and dynamic imports (names under web/js/)."""
    static, dynamic = {}, {}
    for path in sorted((WEB_DIR / "js").glob("*.js")):
        text = path.read_text()
        static[path.name], dynamic[path.name] = STATIC_IMPORT.findall(text), DYNAMIC_IMPORT.findall(text)
    return static, dynamic


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
        # one module script; the browser then loads the modules it imports, same-origin, which `script-src 'self'`
        # allows, and only with a JavaScript MIME type (module scripts are strict about it, and nosniff is set)
        assert re.findall(r"<script\b[^>]*>", page.text) == ['<script type="module" src="/web/js/main.js">']
        for name in ASSETS:
            if name.endswith(".js"):
                response = await client.get(f"/web/{name}")
                assert response.status_code == 200, name
                assert response.headers["content-type"].startswith("text/javascript"), name
                assert response.headers["x-content-type-options"] == "nosniff"
        assert (await client.get("/web/style.css")).headers["content-type"].startswith("text/css")


def test_every_module_is_reached_from_main_and_the_test_hooks_only_behind_their_flag():
    static, dynamic = module_graph()
    assert set(static) == {name.removeprefix("js/") for name in ASSETS if name.startswith("js/")}
    reached, todo = set(), ["main.js"]
    while todo:  # what a user's page loads: main.js and its static imports, transitively
        name = todo.pop()
        if name not in reached:
            reached.add(name)
            todo.extend(static[name])
    assert "testhooks.js" not in reached
    assert dynamic == {**{name: [] for name in static}, "main.js": ["testhooks.js"]}
    # main.js imports it only under the flag the address sets
    main = (WEB_DIR / "js" / "main.js").read_text()
    assert re.search(r"if \(address\.testHooks\) \{\s*const \{ installTestHooks \} = await import\('\./testhooks\.js'\);", main)
    assert reached | {"testhooks.js"} == set(static)  # no module is dead


async def test_only_the_shipped_files_are_reachable(server):
    import httpx

    assert {"index.html", "js/main.js", "style.css"} <= set(ASSETS)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10.0) as client:
        for path in (
            "/web/nope.js",
            "/web/app.js",
            "/web/main.js",
            "/web/js",
            "/web/js/",
            "/web/js/nope.js",
            "/web/..%2Fapi%2Fweb.py",
            "/web/%2E%2E/__init__.py",
            "/web/js/%2E%2E/index.html",
            "/web/js%2Fmain.js%00",
            "/web/web.py",
        ):
            response = await client.get(path)
            assert response.status_code == 404, path
            assert response.json()["error"]["code"] == "itemNotFound"
