"""Seeding rules shared by every backend."""

from __future__ import annotations

from semcal.backends.base import prompt_seed, sample_seed, truncate_at_stop
from semcal.types import Message, Prompt


def test_prompt_seed_is_stable_and_depends_on_content():
    a, b = Prompt(text="Q: capital of France?\nA:"), Prompt(text="Q: capital of Peru?\nA:")
    assert prompt_seed(0, a) == prompt_seed(0, Prompt(text=a.text))
    assert prompt_seed(0, a) != prompt_seed(0, b)
    assert prompt_seed(0, a) != prompt_seed(1, a)
    chat = Prompt(messages=(Message("user", "hi"),))
    assert prompt_seed(0, chat) != prompt_seed(0, Prompt(messages=(Message("system", "hi"),)))
    assert prompt_seed(0, chat) != prompt_seed(
        0, Prompt(messages=chat.messages, assistant_prefix="The")
    )
    assert 0 <= prompt_seed(123, a) < 2**31


def test_sample_seeds_of_different_prompts_do_not_collide():
    prompts = [Prompt(text=f"Q: question {k}?\nA:") for k in range(50)]
    seeds = {sample_seed(prompt_seed(7, p), i) for p in prompts for i in range(20)}
    assert len(seeds) == 50 * 20


def test_truncate_at_stop_takes_the_earliest_stop():
    assert truncate_at_stop("Paris\nQ: next", ["\nQ:", "\n"]) == ("Paris", True)
    assert truncate_at_stop("Paris", ["\n"]) == ("Paris", False)
