"""What counts as an email address: users, account teams and company contacts alike."""

from __future__ import annotations

import re

# No whitespace (line breaks included) and no comma: recipients are comma-joined lists
# (accountTeam.allEmails), so an address with a comma would become two.
_EMAIL = re.compile(r"[^@\s,]+@[^@\s,]+\.[^@\s,]+")


def is_email(text: str) -> bool:
    """True for one plausible address (already trimmed: surrounding spaces fail)."""
    return _EMAIL.fullmatch(text) is not None
