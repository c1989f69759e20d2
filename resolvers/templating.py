"""Resolvers for template rendering and notification previews."""

from __future__ import annotations

from datetime import datetime

from domain.templating import preview
from domain.templating.notifications import RenderedNotification
from schema.context import Info


async def render_template(info: Info, template: str, customer_id: str, *, html: bool,
                          as_of: datetime | None) -> preview.Rendered:
    return await preview.render_for_customer(info.context.session, template, customer_id,
                                             html=html, now=as_of,
                                             lane=info.context.me.tenant_id)


async def preview_notifications(info: Info, workflow_key: str, customer_id: str, *,
                                as_of: datetime | None) -> list[RenderedNotification]:
    return await preview.notifications_for_key(info.context.session, workflow_key, customer_id,
                                               now=as_of, lane=info.context.me.tenant_id)
