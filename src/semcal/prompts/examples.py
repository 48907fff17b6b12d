"""Few-shot examples, written for semcal, one fixed list per task family.

Every example has the three response styles worked out: ``answer`` (concise), ``sentence``
(one sentence) and ``reasoning`` (the chain of thought; the cot answer is ``reasoning``
followed by ``"The answer is <answer>."``). Examples stay on one line each, so the stop
strings of :mod:`semcal.prompts.styles` end a sampled answer exactly where an example ends.
None of these questions is in the bundled question sets (a test checks it), and the
reasoning avoids stating facts those sets ask about.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Example:
    """One worked few-shot example."""

    question: str
    answer: str
    sentence: str
    reasoning: str

    @property
    def cot(self) -> str:
        return f"{self.reasoning} The answer is {self.answer}."


QA_EXAMPLES: tuple[Example, ...] = (
    Example(
        "What is the capital of Scotland?",
        "Edinburgh",
        "The capital of Scotland is Edinburgh.",
        "Scotland's parliament and government sit in Edinburgh, on the Firth of Forth; "
        "Glasgow is larger but is not the capital.",
    ),
    Example(
        'Who wrote the play "Pygmalion"?',
        "George Bernard Shaw",
        'The play "Pygmalion" was written by George Bernard Shaw.',
        '"Pygmalion" is a 1913 comedy about a phonetics professor who teaches a flower seller '
        "to speak like a duchess; it was written by the Irish playwright George Bernard Shaw.",
    ),
    Example(
        "Which organ pumps blood through the human body?",
        "the heart",
        "The heart pumps blood through the human body.",
        "Blood is pushed through the arteries by the rhythmic contractions of a muscular "
        "organ in the chest, the heart.",
    ),
    Example(
        "In what year did the Berlin Wall fall?",
        "1989",
        "The Berlin Wall fell in 1989.",
        "The border crossings in Berlin were opened on the night of 9 November 1989, after "
        "weeks of protests in East Germany.",
    ),
    Example(
        "What is the chemical symbol for silver?",
        "Ag",
        "The chemical symbol for silver is Ag.",
        "Chemical symbols often come from Latin names, and the Latin word for silver is "
        "argentum, so its symbol is Ag.",
    ),
    Example(
        "What is the largest ocean on Earth?",
        "the Pacific Ocean",
        "The largest ocean on Earth is the Pacific Ocean.",
        "The Pacific covers roughly a third of the planet's surface, more than any other ocean.",
    ),
    Example(
        "What is the currency of Japan?",
        "the yen",
        "The currency of Japan is the yen.",
        "Japan adopted the yen as its currency in 1871 and still uses it today.",
    ),
    Example(
        'Which animal is known as the "ship of the desert"?',
        "the camel",
        'The camel is known as the "ship of the desert".',
        "The animal that can walk for days across sand without drinking, carrying people and "
        "goods, is the camel.",
    ),
)

MATH_EXAMPLES: tuple[Example, ...] = (
    Example(
        "A baker made 48 muffins and sold 29 of them. How many muffins are left?",
        "19",
        "The baker has 19 muffins left.",
        "The baker started with 48 muffins and sold 29, so 48 - 29 = 19 muffins are left.",
    ),
    Example(
        "Tom buys 3 notebooks at $4 each and a pen for $2. How many dollars does he spend?",
        "14",
        "Tom spends 14 dollars.",
        "The notebooks cost 3 * 4 = 12 dollars, and with the pen the total is 12 + 2 = 14 dollars.",
    ),
    Example(
        "A train travels 60 miles per hour for 3 hours. How many miles does it travel?",
        "180",
        "The train travels 180 miles.",
        "At 60 miles each hour for 3 hours, the train covers 60 * 3 = 180 miles.",
    ),
    Example(
        "Maria has 36 stickers and shares them equally among 4 friends. How many stickers "
        "does each friend get?",
        "9",
        "Each friend gets 9 stickers.",
        "Sharing 36 stickers equally among 4 friends gives 36 / 4 = 9 stickers each.",
    ),
    Example(
        "A garden has 7 rows of tomato plants with 12 plants in each row. If 15 plants die, "
        "how many plants are left?",
        "69",
        "There are 69 plants left.",
        "The garden has 7 * 12 = 84 plants. After 15 die, 84 - 15 = 69 plants are left.",
    ),
    Example(
        "Sam saves $25 every week. How many weeks will it take him to save $300?",
        "12",
        "It will take Sam 12 weeks.",
        "Each week adds 25 dollars, so reaching 300 dollars takes 300 / 25 = 12 weeks.",
    ),
    Example(
        "A book has 240 pages. Lina reads 30 pages a day for 5 days. How many pages does she "
        "still have to read?",
        "90",
        "Lina still has 90 pages to read.",
        "In 5 days Lina reads 30 * 5 = 150 pages, so 240 - 150 = 90 pages remain.",
    ),
    Example(
        "There are 5 boxes with 24 crayons each. The crayons are shared equally among 8 "
        "students. How many crayons does each student get?",
        "15",
        "Each student gets 15 crayons.",
        "There are 5 * 24 = 120 crayons in all, and 120 / 8 = 15 crayons per student.",
    ),
)

#: (question, proposed answer, is the proposal right, confidence in percent) for the
#: verbalised-confidence and P(True) few-shot prompts
QA_JUDGED: tuple[tuple[str, str, bool, int], ...] = (
    ("What is the capital of Scotland?", "Edinburgh", True, 95),
    ('Who wrote the play "Pygmalion"?', "Oscar Wilde", False, 15),
    ("In what year did the Berlin Wall fall?", "1989", True, 90),
    ("What is the currency of Japan?", "the won", False, 5),
    ('Which animal is known as the "ship of the desert"?', "the camel", True, 97),
    ("What is the chemical symbol for silver?", "Si", False, 10),
)

MATH_JUDGED: tuple[tuple[str, str, bool, int], ...] = (
    ("A baker made 48 muffins and sold 29 of them. How many muffins are left?", "19", True, 95),
    ("Tom buys 3 notebooks at $4 each and a pen for $2. How many dollars does he spend?",
     "12", False, 10),
    ("Sam saves $25 every week. How many weeks will it take him to save $300?", "12", True, 90),
    ("A train travels 60 miles per hour for 3 hours. How many miles does it travel?",
     "20", False, 5),
    ("A book has 240 pages. Lina reads 30 pages a day for 5 days. How many pages does she "
     "still have to read?", "90", True, 85),
    ("There are 5 boxes with 24 crayons each. The crayons are shared equally among 8 "
     "students. How many crayons does each student get?", "12", False, 10),
)


def examples_for(task: str) -> tuple[Example, ...]:
    """The worked examples of a task family ("math", else the "qa" ones)."""
    return MATH_EXAMPLES if task == "math" else QA_EXAMPLES


def judged_for(task: str) -> tuple[tuple[str, str, bool, int], ...]:
    return MATH_JUDGED if task == "math" else QA_JUDGED


__all__ = ["MATH_EXAMPLES", "MATH_JUDGED", "QA_EXAMPLES", "QA_JUDGED", "Example", "examples_for",
           "judged_for"]
