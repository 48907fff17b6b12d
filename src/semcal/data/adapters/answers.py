"""Final answers pulled out of a worked solution: GSM8K's ``#### n`` and a LaTeX ``\\boxed{}``."""

from __future__ import annotations

import re

_NUMBER_COMMAS = re.compile(r"(?<=\d),(?=\d{3}(?:\D|$))")


def strip_number_commas(text: str) -> str:
    """'1,234,567' -> '1234567' (only commas that group digits in threes)."""
    return _NUMBER_COMMAS.sub("", text)


def gsm8k_final_answer(solution: str) -> str | None:
    """The answer after the last '####' of a GSM8K solution, commas removed; None if absent."""
    idx = solution.rfind("####")
    if idx < 0:
        return None
    ans = solution[idx + 4 :].strip()
    ans = strip_number_commas(ans).strip()
    if ans.endswith(".") and re.fullmatch(r"-?\d+(\.\d+)?\.", ans):
        ans = ans[:-1]
    return ans or None


_BOXED = re.compile(r"\\(?:boxed|fbox)\s*")


def extract_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``) in ``text``, braces balanced.

    ``\\boxed{\\frac{1}{2}}`` -> ``\\frac{1}{2}``; ``\\boxed 5`` -> ``5``. Returns None when
    there is no box or its braces never close.
    """
    matches = list(_BOXED.finditer(text))
    for m in reversed(matches):
        i = m.end()
        if i < len(text) and text[i] == "{":
            depth = 0
            j = i
            while j < len(text):
                c = text[j]
                if c == "\\" and j + 1 < len(text) and text[j + 1] in "{}":
                    j += 2  # an escaped brace (\{ or \}) does not open or close a group
                    continue
                if c == "{":
                    depth += 1
                elif c == "}":
                    depth -= 1
                    if depth == 0:
                        inner = text[i + 1 : j].strip()
                        return inner or None
                j += 1
            continue  # unbalanced: try an earlier box
        # "\boxed 5": the argument runs to the next space or '$'
        rest = re.match(r"[^\s$]+", text[i:])
        if rest:
            return rest.group(0)
    return None
