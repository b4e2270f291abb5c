"""The console over plain HTTP (no browser): log in through the form, read CSRF tokens."""

from __future__ import annotations

import re

import httpx

from support.api import Api

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def console_client(api: Api) -> httpx.AsyncClient:
    """A client of the test server that keeps the session cookie."""
    return httpx.AsyncClient(base_url=api.server.url, timeout=60)


def csrf_of(html: str) -> str:
    """The CSRF token of the first form on a page."""
    found = _CSRF.search(html)
    assert found is not None
    return found.group(1)


async def log_in_http(http: httpx.AsyncClient, api: Api, who: str) -> None:
    """Log in with ``api.tokens[who]`` through the form (the client keeps the cookies)."""
    form = await http.get("/console/login")
    done = await http.post(
        "/console/login", data={"api_key": api.tokens[who], "csrf": csrf_of(form.text)}
    )
    assert done.status_code == 303, done.text
