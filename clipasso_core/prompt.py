"""What a text prompt must be for CLIP to read it whole: visible words, at most the tokens its text tower takes.

CLIP's text towers read 77 tokens, two of which mark the start and the end, so a prompt may have 75 of
its own (counted with open_clip's default BPE tokenizer, the one the CLIP ResNets use). Longer prompts
would be cut without a word; they are refused instead.
"""

from __future__ import annotations

import functools
import unicodedata
from typing import Any

CONTEXT_TOKENS = 77
"""Tokens a CLIP text tower reads, the start and end markers included."""
MAX_PROMPT_TOKENS = CONTEXT_TOKENS - 2


def has_visible_text(text: str) -> bool:
    """Whether ``text`` has a letter, digit, punctuation mark or symbol (not only spaces, controls or invisible marks)."""
    return any(unicodedata.category(character)[0] in "LNPS" for character in text)


@functools.cache
def _tokenizer() -> Any:
    from open_clip.tokenizer import SimpleTokenizer  # loaded only when a prompt is checked

    return SimpleTokenizer()


def prompt_tokens(text: str) -> int:
    """How many CLIP tokens ``text`` takes, without the start and end markers."""
    return len(_tokenizer().encode(text))


def prompt_problem(text: str) -> str | None:
    """Why CLIP cannot read ``text`` whole, in words, or ``None`` when it can."""
    if not has_visible_text(text):
        return "give a prompt of at least one word (e.g. 'a cat'), or leave text out"
    tokens = prompt_tokens(text)
    if tokens > MAX_PROMPT_TOKENS:
        return (f"the prompt is {tokens} CLIP tokens long and CLIP reads at most {MAX_PROMPT_TOKENS}; shorten it "
                "(a few words work best)")
    return None
