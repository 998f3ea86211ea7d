"""Who may talk to the web app: the bind policy, the token and the Host-header check.

- **Bind**: a loopback address serves this machine only. Any other ``--host`` (``0.0.0.0``, a LAN
  address) exposes uploads and the model to the network, so it is refused unless a token is set, and
  even then it prints a warning.
- **Token**: when set, every ``/api/`` call and every video file must carry it, as
  ``Authorization: Bearer TOKEN`` (or ``?token=TOKEN``, which a ``<video src>`` can carry); the page
  reads it from its own address (``/?token=TOKEN``). Compared in constant time.
- **Host header**: a page on another site can make a browser send requests to ``127.0.0.1`` under a
  name that the attacker's DNS points there (DNS rebinding); the browser then sends that name as
  ``Host``. Only the names in ``allowed_hosts`` (any port) are served; ``None`` accepts any name, which
  is allowed only with a token.
"""

from __future__ import annotations

import ipaddress
import secrets
import sys

from grounding.errors import GroundingError

LOCAL_NAMES = ("127.0.0.1", "localhost", "::1")
WILDCARDS = ("0.0.0.0", "::", "")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def allowed_hosts_for(bind: str, token: str | None, extra: list[str] | None = None) -> tuple[str, ...] | None:
    """The Host names to accept for a server bound to ``bind`` (see the module docstring); also enforces
    the bind policy with one clear error and prints its warning."""
    extra = [name.lower() for name in extra or []]
    if is_loopback(bind):
        return (*LOCAL_NAMES, bind, *extra)
    if not token:
        raise GroundingError(f"--host {bind} would let every machine that reaches this one upload videos and use the "
                             "model; set --token SECRET (clients send it as 'Authorization: Bearer SECRET'), or "
                             "leave --host at 127.0.0.1")
    print(f"warning: serving on {bind}, reachable from other machines; every API call needs the token",
          file=sys.stderr, flush=True)
    if bind in WILDCARDS and not extra:
        return None  # any name reaches a wildcard bind; the token is the guard
    return (*LOCAL_NAMES, bind, *extra)


def host_name(header: str) -> str:
    """``Host`` without its port: ``[::1]:80`` -> ``::1``, ``Example.org:7860`` -> ``example.org``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def host_allowed(header: str | None, allowed: tuple[str, ...] | None) -> bool:
    return allowed is None or (header is not None and host_name(header) in allowed)


def token_matches(expected: str | None, authorization: str | None, query_token: str | None) -> bool:
    if not expected:
        return True
    given = query_token or ""
    if authorization and authorization.lower().startswith("bearer "):
        given = authorization[len("bearer "):].strip()
    return secrets.compare_digest(given.encode(), expected.encode())
