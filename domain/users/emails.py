"""What counts as an email address: users, account teams and company contacts alike."""

from __future__ import annotations

import re

from domain.shared.limits import MAX_EMAIL

# No whitespace (line breaks included) and no comma: recipients are comma-joined lists
# (accountTeam.allEmails), so an address with a comma would become two.
_EMAIL = re.compile(r"[^@\s,]+@[^@\s,]+\.[^@\s,]+")


def is_email(text: str) -> bool:
    """True for one plausible address of at most 254 characters (already trimmed: surrounding
    spaces fail); longer ones would not fit an index row or any mail server."""
    return len(text) <= MAX_EMAIL and _EMAIL.fullmatch(text) is not None
