"""OpenAPI links from a route that creates an object to the routes that use its id.

Clients and API fuzzers (schemathesis' stateful phase) follow them: create a key, then
rotate or revoke it; create a rule, then read, change or delete it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["links_to"]


def links_to(path: str, methods: tuple[str, ...], parameter: str, pointer: str
             ) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entry adding links to the 200 answer of a creating route.

    Args:
        path: the path of the routes using the id, e.g. ``/api/v1/keys/{key_id}``.
        methods: their methods, lower case (``get``, ``delete``...).
        parameter: the path parameter that takes the id, e.g. ``key_id``.
        pointer: JSON pointer to the id in the creating route's answer, e.g. ``/key/id``.

    Returns:
        ``{200: {"description": ..., "links": {...}}}`` to merge into ``responses=``.
    """
    ref = "#/paths/" + path.replace("~", "~0").replace("/", "~1")
    links = {f"{method.capitalize()}{parameter.title().replace('_', '')}": {
        "operationRef": f"{ref}/{method}",
        "parameters": {parameter: f"$response.body#{pointer}"}} for method in methods}
    return {200: {"description": "Successful Response", "links": links}}
