"""Finding and redacting MAC, IPv4 and IPv6 addresses in text sent to an LLM."""

from __future__ import annotations

import ipaddress
import re

MAC_PATTERN = re.compile(
    r"(?<![0-9A-Fa-f])(?:[0-9A-Fa-f]{2}([:-])(?:[0-9A-Fa-f]{2}\1){4}[0-9A-Fa-f]{2}"
    r"|[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4})(?![0-9A-Fa-f])"
)
IPV4_CANDIDATE = re.compile(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?![\d.])")
IPV6_CANDIDATE = re.compile(r"(?<![0-9A-Fa-f:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![0-9A-Fa-f:])")


def find_identifiers(text: str) -> list[str]:
    """Return every substring shaped like a MAC, IPv4 or IPv6 address."""
    found = [match.group(0) for match in MAC_PATTERN.finditer(text)]
    for pattern in (IPV4_CANDIDATE, IPV6_CANDIDATE):
        for match in pattern.finditer(text):
            candidate = match.group(0)
            if pattern is IPV6_CANDIDATE and candidate.count(":") < 2:
                continue
            try:
                ipaddress.ip_address(candidate)
            except ValueError:
                continue
            found.append(candidate)
    return found


def redact_identifiers(text: str) -> str:
    """Replace every address-shaped substring with ``<address>``."""
    for identifier in sorted(set(find_identifiers(text)), key=len, reverse=True):
        text = text.replace(identifier, "<address>")
    return text
