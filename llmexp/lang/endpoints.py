"""Which model params name where calls go, and whether a host is loopback.

`llmexp check` warns about a non-loopback endpoint in a study (a shared study file could
otherwise send the user's API keys to any host); `llmexp run` refuses one unless the user
names it with `--allow-endpoint HOST` (llmexp.runner.endpoints applies the same rules).
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

# params that name where calls go (litellm's and the OpenAI client's names)
ENDPOINT_PARAMS = frozenset({"api_base", "base_url", "api_host", "azure_endpoint", "endpoint", "endpoint_url", "url"})
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost", "ip6-loopback"})


def is_endpoint(name: str, value: object) -> bool:
    """A param that says where calls go: a known endpoint name, or any string value that is a URL."""
    return isinstance(value, str) and bool(value.strip()) and (name in ENDPOINT_PARAMS or bool(_URL.match(value.strip())))


def host_of(url: str) -> str:
    """The host of an endpoint value, lower case ('' if none); a bare `host:port` is read as http://host:port."""
    text = url.strip()
    if not _URL.match(text):
        text = "http://" + text
    try:
        return (urlsplit(text).hostname or "").lower()
    except ValueError:
        return ""


def is_loopback(host: str) -> bool:
    """localhost (and *.localhost), 127.0.0.0/8, ::1."""
    if host in LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
