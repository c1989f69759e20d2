"""Where a render runs: a small one on the event loop, a larger one in the render thread."""

from __future__ import annotations

import threading

import pytest

from domain.templating import limits
from domain.templating.engine import TemplateError, render
from domain.templating.offload import QUICK_STEPS, off_loop

pytestmark = pytest.mark.asyncio


def _work(steps: int) -> str:
    """A render's metering without a template: `steps` steps, then where it ran."""
    with limits.metered():
        for _ in range(steps):
            limits.current().step()
    return threading.current_thread().name


async def test_a_small_render_runs_on_the_loop_and_a_larger_one_in_the_render_thread() -> None:
    here = threading.current_thread().name
    assert await off_loop(_work, 10) == here
    assert (await off_loop(_work, QUICK_STEPS * 4)).startswith("render")


async def test_the_allowance_is_for_all_renders_of_a_call_whatever_their_own_budgets() -> None:
    def several() -> str:
        for _ in range(8):  # each alone would fit; together they do not
            with limits.metered(limits.Budget()):
                for _ in range(QUICK_STEPS // 4):
                    limits.current().step()
        return threading.current_thread().name

    assert (await off_loop(several)).startswith("render")


async def test_a_bomb_tried_on_the_loop_is_still_refused_under_its_full_budget() -> None:
    bomb = "{{#each @root}}" * 6 + "x" + "{{/each}}" * 6
    context = {f"k{i}": i for i in range(12)}
    with pytest.raises(TemplateError) as refused:
        await off_loop(render, bomb, context)
    assert refused.value.code in ("RENDER_LIMIT", "RENDER_TOO_LARGE")
