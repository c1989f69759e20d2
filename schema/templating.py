"""Template rendering and notification previews for a customer (nothing is sent)."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from domain.templating.notifications import RenderedNotification
from resolvers import templating as resolve
from schema.context import Info
from schema.errors import UserError, query_result


def _errors(problems: list) -> list[UserError]:  # type: ignore[type-arg]
    return [UserError(code=p.code, message=p.message, path=p.path) for p in problems]


@strawberry.type(description="A rendered template, or the errors why it cannot render.")
class RenderResult:
    output: str | None
    errors: list[UserError]


@strawberry.type(description="One notification as it would be sent now; nothing is sent. "
                             "Template errors are listed and leave the part null.")
class NotificationPreview:
    step_id: str | None
    notification_id: str | None
    type: str | None
    title: str | None
    message: str | None = strawberry.field(description="HTML-escaped for email only.")
    recipients: list[str] = strawberry.field(
        description="Rendered, split on commas, de-duplicated; empty ones dropped.")
    condition_met: bool = strawberry.field(description="True without a condition.")
    schedule: JSON | None = strawberry.field(description="The notification's schedule, as "
                                                         "configured (e.g. {daysOverdue: 7}).")
    fires_at: datetime | None = strawberry.field(description=(
        "When a scheduled notification would fire for this customer (the start of that day "
        "in the tenant's time zone; it may be in the past). Null for an unscheduled one, "
        "which fires when its step is entered, and for a schedule without a renewal date."))
    errors: list[UserError]

    @classmethod
    def of(cls, rendered: RenderedNotification) -> NotificationPreview:
        return cls(step_id=rendered.step_id, notification_id=rendered.notification_id,
                   type=rendered.type, title=rendered.title, message=rendered.message,
                   recipients=rendered.recipients, condition_met=rendered.condition_met,
                   schedule=rendered.schedule, fires_at=rendered.fires_at,
                   errors=_errors(rendered.problems))


@strawberry.type
class Query:
    @strawberry.field(description="Render a Handlebars template against the customer's "
                                  "context. html: escape values for an HTML channel (email). "
                                  "asOf pins the clock (default: now).")
    async def render_template(self, info: Info, template: str, customer_id: strawberry.ID,
                              html: bool | None = False, as_of: datetime | None = None
                              ) -> RenderResult:
        rendered = await resolve.render_template(info, template, customer_id, html=bool(html),
                                                 as_of=as_of)
        return RenderResult(output=rendered.output, errors=_errors(rendered.problems))

    @strawberry.field(description="Every notification of the workflow (by key, the tenant's "
                                  "own shadowing the core one) rendered for the customer with "
                                  "its condition's result; nothing is sent. asOf pins the clock.")
    async def preview_notifications(self, info: Info, workflow_key: str,
                                    customer_id: strawberry.ID, as_of: datetime | None = None
                                    ) -> list[NotificationPreview]:
        rendered = await query_result(lambda: resolve.preview_notifications(
            info, workflow_key, customer_id, as_of=as_of))
        return [NotificationPreview.of(r) for r in rendered]
