"""Generate semcal's bundled grade-school arithmetic word problems (task "math").

Each template draws its numbers from a seeded random generator, phrases a 1-3 step word
problem, and computes the answer with integer arithmetic. The arithmetic is also written
out as an expression string (``meta["expression"]``) so the tests can recompute every
answer independently of this script. Run from the repository root::

    python tools/make_arithmetic.py            # writes src/semcal/data/bundled/arithmetic.jsonl
    python tools/make_arithmetic.py --check    # exits 1 if the shipped file differs

The output is deterministic for a given seed and count.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Callable
from pathlib import Path

SEED = 20240611
COUNT = 300
OUT = Path(__file__).resolve().parents[1] / "src" / "semcal" / "data" / "bundled" / "arithmetic.jsonl"

NAMES = [
    ("Aisha", "she"), ("Ben", "he"), ("Carlos", "he"), ("Dana", "she"), ("Elif", "she"),
    ("Farid", "he"), ("Grace", "she"), ("Hiro", "he"), ("Ines", "she"), ("Jamal", "he"),
    ("Kofi", "he"), ("Lena", "she"), ("Mateo", "he"), ("Nadia", "she"), ("Omar", "he"),
    ("Priya", "she"), ("Quinn", "he"), ("Rosa", "she"), ("Sven", "he"), ("Tara", "she"),
    ("Umar", "he"), ("Vera", "she"), ("Wei", "he"), ("Yara", "she"), ("Zane", "he"),
]
SMALL_ITEMS = ["marbles", "stickers", "stamps", "shells", "beads", "cards", "pencils", "buttons"]
FOODS = ["apples", "oranges", "cookies", "muffins", "eggs", "lemons", "cupcakes", "pears"]
SHOP = [("notebook", "notebooks"), ("pen", "pens"), ("sandwich", "sandwiches"),
        ("toy car", "toy cars"), ("plant pot", "plant pots"), ("comic book", "comic books"),
        ("ball", "balls"), ("candle", "candles")]

Problem = tuple[str, int, str, int]  # question, answer, expression, steps


def _person(rng: random.Random, exclude: str | None = None) -> tuple[str, str]:
    while True:
        name, pron = rng.choice(NAMES)
        if name != exclude:
            return name, pron


def _count(k: int, one: str, many: str) -> str:
    """'1 adult', '3 adults'."""
    return f"{k} {one if k == 1 else many}"


def _possessive(pron: str) -> str:
    return "her" if pron == "she" else "his"


def t_add(rng: random.Random) -> Problem:
    (n, p), item = _person(rng), rng.choice(SMALL_ITEMS)
    a, b = rng.randint(12, 95), rng.randint(5, 60)
    return (f"{n} has {a} {item}. {p.capitalize()} gets {b} more {item} from a friend. "
            f"How many {item} does {n} have now?", a + b, f"{a} + {b}", 1)


def t_give_away(rng: random.Random) -> Problem:
    n, _ = _person(rng)
    f, _ = _person(rng, n)
    item = rng.choice(SMALL_ITEMS)
    a = rng.randint(30, 120)
    b = rng.randint(5, a - 5)
    return (f"{n} had {a} {item} and gave {b} of them to {f}. How many {item} does {n} have left?",
            a - b, f"{a} - {b}", 1)


def t_boxes(rng: random.Random) -> Problem:
    item = rng.choice(FOODS)
    a, b = rng.randint(6, 24), rng.randint(3, 15)
    return (f"A box holds {a} {item}. How many {item} are there in {b} full boxes?",
            a * b, f"{a} * {b}", 1)


def t_share(rng: random.Random) -> Problem:
    n, p = _person(rng)
    item = rng.choice(SMALL_ITEMS)
    each, k = rng.randint(3, 15), rng.randint(2, 9)
    total = each * k
    return (f"{n} shares {total} {item} equally among {k} friends. "
            f"How many {item} does each friend get?", each, f"{total} / {k}", 1)


def t_price(rng: random.Random) -> Problem:
    n, p = _person(rng)
    one, many = rng.choice(SHOP)
    a, c = rng.randint(2, 9), rng.randint(2, 15)
    return (f"{n} buys {a} {many} that cost ${c} each. How many dollars does {n} spend?",
            a * c, f"{a} * {c}", 1)


def t_change(rng: random.Random) -> Problem:
    n, p = _person(rng)
    one, many = rng.choice(SHOP)
    while True:
        a, c = rng.randint(2, 6), rng.randint(2, 12)
        bill = rng.choice([20, 50, 100])
        if a * c < bill:
            break
    return (f"{n} buys {a} {many} at ${c} each and pays with a ${bill} bill. "
            f"How many dollars of change does {p} get back?", bill - a * c, f"{bill} - {a} * {c}", 2)


def t_speed(rng: random.Random) -> Problem:
    vehicle = rng.choice(["train", "bus", "truck", "car"])
    s, h = rng.choice([40, 45, 50, 55, 60, 65, 70, 75, 80, 90]), rng.randint(2, 6)
    return (f"A {vehicle} travels at {s} kilometres per hour for {h} hours. "
            f"How many kilometres does it travel?", s * h, f"{s} * {h}", 1)


def t_pages(rng: random.Random) -> Problem:
    n, p = _person(rng)
    r, d = rng.randint(8, 30), rng.randint(3, 9)
    total = r * d + rng.randint(10, 150)
    return (f"A book has {total} pages. {n} reads {r} pages every day for {d} days. "
            f"How many pages does {p} still have to read?", total - r * d, f"{total} - {r} * {d}", 2)


def t_save_weeks(rng: random.Random) -> Problem:
    n, p = _person(rng)
    s, w = rng.choice([5, 6, 8, 10, 12, 15, 20, 25]), rng.randint(4, 20)
    goal = s * w
    thing = rng.choice(["a bike", "a guitar", "a tablet", "a pair of skates", "a telescope"])
    return (f"{n} wants to buy {thing} that costs ${goal}. {p.capitalize()} saves ${s} every week. "
            f"How many weeks does it take {n} to save enough?", w, f"{goal} / {s}", 1)


def t_chairs(rng: random.Random) -> Problem:
    r, c = rng.randint(5, 15), rng.randint(6, 20)
    k = rng.randint(3, r * c // 2)
    return (f"A hall has {r} rows of chairs with {c} chairs in each row. At a concert, {k} chairs "
            f"are empty. How many chairs are taken?", r * c - k, f"{r} * {c} - {k}", 2)


def t_age(rng: random.Random) -> Problem:
    n, p = _person(rng)
    a, d, y = rng.randint(6, 14), rng.randint(2, 9), rng.randint(3, 12)
    return (f"{n} is {a} years old. {_possessive(p).capitalize()} cousin is {d} years older than "
            f"{n}. How old will the cousin be in {y} years?", a + d + y, f"{a} + {d} + {y}", 2)


def t_legs(rng: random.Random) -> Problem:
    c, w = rng.randint(3, 25), rng.randint(2, 15)
    return (f"A farm has {c} chickens and {w} cows. How many legs do these animals have "
            f"altogether?", 2 * c + 4 * w, f"2 * {c} + 4 * {w}", 2)


def t_walk_weeks(rng: random.Random) -> Problem:
    n, p = _person(rng)
    k, w = rng.randint(2, 9), rng.randint(2, 6)
    return (f"{n} walks {k} kilometres every day. How many kilometres does {p} walk in {w} weeks?",
            7 * k * w, f"7 * {k} * {w}", 2)


def t_half_then_buy(rng: random.Random) -> Problem:
    n, p = _person(rng)
    f, _ = _person(rng, n)
    item = rng.choice(SMALL_ITEMS)
    h, b = rng.randint(6, 40), rng.randint(3, 25)
    a = 2 * h
    return (f"{n} had {a} {item}. {p.capitalize()} gave half of them to {f} and then bought "
            f"{b} more. How many {item} does {n} have now?", h + b, f"{a} / 2 + {b}", 2)


def t_groups(rng: random.Random) -> Problem:
    g, k = rng.randint(3, 8), rng.randint(4, 12)
    n = g * k
    return (f"A class of {n} students is split into groups of {g}. How many groups are there?",
            k, f"{n} / {g}", 1)


def t_packs(rng: random.Random) -> Problem:
    n, p = _person(rng)
    item = rng.choice(["batteries", "balloons", "napkins", "paper plates", "crayons"])
    packs, each = rng.randint(2, 8), rng.randint(6, 24)
    used = rng.randint(1, packs * each - 1)
    return (f"{n} buys {packs} packs of {item} with {each} in each pack. {p.capitalize()} uses "
            f"{used} of them at a party. How many {item} are left?", packs * each - used,
            f"{packs} * {each} - {used}", 2)


def t_bake_share(rng: random.Random) -> Problem:
    n, p = _person(rng)
    food = rng.choice(["cookies", "muffins", "cupcakes", "brownies"])
    f, each = rng.randint(2, 8), rng.randint(2, 9)
    e = rng.randint(1, 6)
    t = f * each + e
    return (f"{n} bakes {t} {food}, eats {e} of them, and shares the rest equally among {f} "
            f"friends. How many {food} does each friend get?", each, f"({t} - {e}) / {f}", 2)


def t_movie_minutes(rng: random.Random) -> Problem:
    h, m = rng.randint(1, 3), rng.randint(5, 55)
    return (f"A movie is {h} hours and {m} minutes long. How long is the movie in minutes?",
            60 * h + m, f"60 * {h} + {m}", 2)


def t_wage(rng: random.Random) -> Problem:
    n, p = _person(rng)
    w, h, d = rng.randint(9, 25), rng.randint(3, 8), rng.randint(2, 6)
    return (f"{n} earns ${w} per hour. {p.capitalize()} works {h} hours a day for {d} days. "
            f"How many dollars does {n} earn in total?", w * h * d, f"{w} * {h} * {d}", 2)


def t_discount(rng: random.Random) -> Problem:
    while True:
        price = rng.randint(4, 40) * 10
        pct = rng.choice([10, 20, 25, 30, 40, 50])
        if price * pct % 100 == 0:
            break
    thing = rng.choice(["jacket", "lamp", "bicycle helmet", "backpack", "pair of shoes"])
    return (f"A {thing} costs ${price}. It is on sale for {pct}% off. What is the sale price "
            f"in dollars?", price - price * pct // 100, f"{price} - {price} * {pct} / 100", 2)


def t_twice(rng: random.Random) -> Problem:
    n, _ = _person(rng)
    f, _ = _person(rng, n)
    item = rng.choice(SMALL_ITEMS)
    a = rng.randint(5, 60)
    return (f"{n} has {a} {item}. {f} has twice as many {item} as {n}. How many {item} do they "
            f"have together?", a + 2 * a, f"{a} + 2 * {a}", 2)


def t_difference(rng: random.Random) -> Problem:
    n, _ = _person(rng)
    f, _ = _person(rng, n)
    b = rng.randint(10, 80)
    a = b + rng.randint(3, 40)
    game = rng.choice(["a video game", "a spelling quiz", "a basketball game", "a trivia contest"])
    return (f"In {game}, {n} scored {a} points and {f} scored {b} points. How many more points "
            f"did {n} score than {f}?", a - b, f"{a} - {b}", 1)


def t_fuel(rng: random.Random) -> Problem:
    litres, hundreds = rng.randint(5, 12), rng.randint(2, 9)
    km = 100 * hundreds
    return (f"A car uses {litres} litres of fuel for every 100 kilometres. How many litres does it "
            f"use to drive {km} kilometres?", litres * hundreds, f"{km} / 100 * {litres}", 2)


def t_perimeter(rng: random.Random) -> Problem:
    length, width = rng.randint(5, 30), rng.randint(3, 20)
    return (f"A rectangular garden is {length} metres long and {width} metres wide. How many "
            f"metres of fence are needed to go all the way around it?", 2 * (length + width),
            f"2 * ({length} + {width})", 2)


def t_area(rng: random.Random) -> Problem:
    length, width = rng.randint(3, 15), rng.randint(2, 12)
    return (f"A rectangular room is {length} metres long and {width} metres wide. What is its area "
            f"in square metres?", length * width, f"{length} * {width}", 1)


def t_tickets(rng: random.Random) -> Problem:
    a, c = rng.randint(8, 20), rng.randint(3, 7)
    x, y = rng.randint(1, 4), rng.randint(1, 5)
    place = rng.choice(["zoo", "museum", "aquarium", "theme park"])
    return (f"At the {place}, adult tickets cost ${a} and child tickets cost ${c}. How many dollars "
            f"do {_count(x, 'adult', 'adults')} and {_count(y, 'child', 'children')} pay in total?", a * x + c * y,
            f"{a} * {x} + {c} * {y}", 3)


def t_bus(rng: random.Random) -> Problem:
    s = rng.randint(15, 50)
    off = rng.randint(3, s - 3)
    on = rng.randint(2, 20)
    return (f"A bus has {s} passengers. At the next stop, {off} passengers get off and {on} get on. "
            f"How many passengers are on the bus now?", s - off + on, f"{s} - {off} + {on}", 2)


def t_third(rng: random.Random) -> Problem:
    k = rng.randint(4, 30)
    total = 3 * k
    food = rng.choice(["apples", "tulips", "balloons", "marbles"])
    colour = rng.choice(["red", "yellow", "blue"])
    return (f"There are {total} {food} in a basket. One third of them are {colour}. How many of "
            f"the {food} are not {colour}?", total - total // 3, f"{total} - {total} / 3", 2)


def t_allowance(rng: random.Random) -> Problem:
    n, p = _person(rng)
    a = rng.randint(6, 20)
    s = rng.randint(1, a - 1)
    w = rng.randint(3, 10)
    return (f"{n} gets ${a} of pocket money every week and spends ${s} of it. How many dollars "
            f"does {p} save in {w} weeks?", (a - s) * w, f"({a} - {s}) * {w}", 2)


def t_temperature(rng: random.Random) -> Problem:
    t, r = rng.randint(2, 15), rng.randint(3, 12)
    f = rng.randint(2, t + r + 8)
    ans = t + r - f
    return (f"The temperature was {t} degrees Celsius in the morning. By noon it had risen by {r} "
            f"degrees, and by midnight it had fallen by {f} degrees from the noon temperature. "
            f"What was the temperature at midnight, in degrees Celsius?", ans,
            f"{t} + {r} - {f}", 2)


def t_two_items_change(rng: random.Random) -> Problem:
    n, p = _person(rng)
    (one1, many1), (one2, many2) = rng.sample(SHOP, 2)
    while True:
        a, c, b, d = rng.randint(2, 5), rng.randint(2, 9), rng.randint(1, 4), rng.randint(3, 12)
        bill = rng.choice([50, 100])
        if a * c + b * d < bill:
            break
    return (f"{n} buys {a} {many1} at ${c} each and {_count(b, one2, many2)} at ${d} each. {p.capitalize()} "
            f"pays with a ${bill} bill. How many dollars of change does {n} get?",
            bill - (a * c + b * d), f"{bill} - ({a} * {c} + {b} * {d})", 3)


def t_goody_bags(rng: random.Random) -> Problem:
    n, p = _person(rng)
    k, s, c = rng.randint(4, 12), rng.randint(2, 6), rng.randint(3, 8)
    have = rng.randint(5, k * (s + c) - 5)
    return (f"{n} is making goody bags for {k} guests. Each bag gets {s} stickers and {c} sweets. "
            f"{p.capitalize()} already has {have} stickers and sweets in total. How many more "
            f"stickers and sweets does {n} need?", k * (s + c) - have, f"{k} * ({s} + {c}) - {have}", 3)


def t_earn_spend(rng: random.Random) -> Problem:
    n, p = _person(rng)
    start, e, w = rng.randint(10, 90), rng.randint(5, 30), rng.randint(2, 8)
    x = rng.randint(5, start + e * w - 5)
    return (f"{n} has ${start} in a piggy bank. {p.capitalize()} earns ${e} each week for {w} weeks "
            f"by walking dogs, then spends ${x} on a gift. How many dollars does {n} have now?",
            start + e * w - x, f"{start} + {e} * {w} - {x}", 3)


TEMPLATES: dict[str, Callable[[random.Random], Problem]] = {
    fn.__name__[2:]: fn
    for fn in (t_add, t_give_away, t_boxes, t_share, t_price, t_change, t_speed, t_pages,
               t_save_weeks, t_chairs, t_age, t_legs, t_walk_weeks, t_half_then_buy, t_groups,
               t_packs, t_bake_share, t_movie_minutes, t_wage, t_discount, t_twice,
               t_difference, t_fuel, t_perimeter, t_area, t_tickets, t_bus, t_third,
               t_allowance, t_temperature, t_two_items_change, t_goody_bags, t_earn_spend)
}


def generate(seed: int = SEED, count: int = COUNT) -> list[dict]:
    """``count`` distinct problems, cycling through the templates in a seeded order."""
    rng = random.Random(seed)
    names = list(TEMPLATES)
    rows: list[dict] = []
    seen: set[str] = set()
    i = 0
    while len(rows) < count:
        if i % len(names) == 0:
            rng.shuffle(names)
        name = names[i % len(names)]
        i += 1
        question, answer, expr, steps = TEMPLATES[name](rng)
        if question in seen:
            continue
        seen.add(question)
        answers = [str(answer)]
        if abs(answer) >= 1000:
            answers.append(f"{answer:,}")
        rows.append({
            "id": f"arith-{len(rows) + 1:03d}",
            "question": question,
            "answers": answers,
            "task": "math",
            "meta": {"template": name, "steps": steps, "expression": expr},
        })
    return rows


def render(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--count", type=int, default=COUNT)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--check", action="store_true", help="compare with --out instead of writing")
    args = ap.parse_args(argv)
    text = render(generate(args.seed, args.count))
    if args.check:
        same = args.out.exists() and args.out.read_text(encoding="utf-8") == text
        print("up to date" if same else f"{args.out} differs from the generator output")
        return 0 if same else 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.count} problems to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
