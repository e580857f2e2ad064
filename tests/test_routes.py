"""The app's route table: a 405 names, in `Allow`, every method the path serves (RFC 9110 15.5.6)."""

from __future__ import annotations

import pytest

from .helpers import CALLS, assert_graph_error

ID = "00000000-0000-0000-0000-000000000001"


@pytest.mark.parametrize(
    "method, path, allowed",
    [
        ("PUT", CALLS, "POST"),
        ("PATCH", f"{CALLS}/{ID}", "DELETE, GET"),
        ("GET", f"{CALLS}/{ID}/participants/{ID}/mute", "POST"),
        # muteAll also fits participants/{participant_id} (GET, DELETE), but it is a resource of its own
        ("PUT", f"/beta/communications/calls/{ID}/participants/muteAll", "POST"),
        ("PATCH", f"/whip/{ID}/{ID}", "DELETE"),
        ("POST", "/ext/keys", "GET"),
    ],
)
async def test_a_405_names_every_method_the_path_serves(api_http, method, path, allowed):
    response = await api_http.request(method, path)
    assert_graph_error(response, 405)
    assert response.headers["Allow"] == allowed
