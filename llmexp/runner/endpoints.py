"""Where a study sends its calls: endpoint params, and the check that keeps API keys home.

A study file is meant to be shared, so it is untrusted input: an `api_base` (or
`base_url`, or any param whose value is a URL) in a `model` line would make every call
carry the user's API key for that provider (`Authorization: Bearer $OPENAI_API_KEY`,
Anthropic's `x-api-key`, ...) to that host. `check_endpoints` refuses such a run before
anything is written unless the host is loopback (a local server: ollama, vLLM, the test
server) or the user named it on the command line (`--allow-endpoint HOST`,
`--trust-endpoints`; in Python `allow_endpoints=[...]` / `True`). A litellm Router file is
the user's own configuration, given on their command line, and is not checked. Which
params are endpoints and which hosts are loopback is `llmexp.lang.endpoints`'s rule, the one
`llmexp check` warns by.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import urlsplit

from llmexp.errors import RunError
from llmexp.lang.endpoints import ENDPOINT_PARAMS, is_endpoint, is_loopback  # the rules `llmexp check` warns by

__all__ = ["ENDPOINT_PARAMS", "check_endpoints", "endpoint_params", "host_of", "is_loopback", "without_endpoints"]

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def endpoint_params(params: dict | None) -> dict[str, str]:
    """{param: value} of the params that say where calls go: a known endpoint name, or any
    string value that is a URL."""
    return {str(k): v for k, v in (params or {}).items() if is_endpoint(str(k), v)}


def without_endpoints(params: dict | None) -> dict:
    """`params` minus its endpoint params (what a run's compatibility does not depend on)."""
    drop = endpoint_params(params)
    return {k: v for k, v in (params or {}).items() if k not in drop}


def host_of(url: str) -> tuple[str, int | None]:
    """(host, port) of an endpoint value (a bare `host:port` is read as http://host:port)."""
    text = url.strip()
    if not _URL.match(text):
        text = "http://" + text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return "", None
    return (parts.hostname or "").lower(), port


def _allowed(host: str, port: int | None, allow: Iterable[str]) -> bool:
    for entry in allow:
        a_host, a_port = host_of(entry)
        if a_host == host and (a_port is None or a_port == port):
            return True
    return False


def check_endpoints(params_by_model: Mapping[str, Sequence[dict]], allow: Sequence[str] | bool | None) -> None:
    """Raise RunError for the first non-loopback endpoint not allowed by `allow` (a list
    of hosts or host:port, or True to trust every endpoint)."""
    if allow is True:
        return
    allowed = [] if allow in (None, False) else list(allow)  # type: ignore[arg-type]
    for model, all_params in params_by_model.items():
        for params in all_params:
            for name, url in endpoint_params(params).items():
                host, port = host_of(url)
                if is_loopback(host) or _allowed(host, port, allowed):
                    continue
                shown = host or url
                raise RunError(
                    f"model {model!r} would send its calls to {url} ({name} in the study): refused, because "
                    f"your API key for that provider would be sent there. If you trust {shown}, run again with "
                    f"--allow-endpoint {shown} (Python: allow_endpoints=[{shown!r}]) or --trust-endpoints; "
                    "loopback hosts (localhost, 127.0.0.1) are always allowed"
                )
