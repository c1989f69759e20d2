"""Resolvers for template rendering and notification previews."""

from __future__ import annotations

from datetime import datetime

from domain.templating import preview
from schema.context import Info


async def render_template(info: Info, template: str, customer_id: str, *, html: bool,
                          as_of: datetime | None) -> preview.Rendered:
    return await preview.render_for_customer(info.context.session, template, customer_id,
                                             html=html, now=as_of)
