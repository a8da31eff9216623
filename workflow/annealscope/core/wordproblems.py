"""Arithmetic word problems from programs.

Two disjoint template families: ``training_problem`` writes worked solutions (the ``program``
synthesis source); ``evaluation_item`` writes multiple-choice questions in other words (the
``arith_mc`` task), so the task measures the skill rather than memorised phrasing.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

NAMES = ["Ava", "Ben", "Chloe", "Daniel", "Elena", "Farid", "Grace", "Hiro", "Isla", "Jamal", "Kira",
         "Liam", "Maya", "Noah", "Olga", "Pedro", "Quinn", "Rosa", "Sami", "Tara", "Umar", "Vera"]
ITEMS = ["apples", "marbles", "stickers", "pencils", "books", "coins", "shells", "cookies", "cards",
         "stamps", "buttons", "beads", "tickets", "plums", "bricks", "ribbons"]
CONTAINERS = ["boxes", "bags", "baskets", "jars", "crates", "trays"]


@dataclass(frozen=True)
class Problem:
    question: str
    solution: str
    answer: int


def training_problem(rng: random.Random) -> Problem:
    """A word problem with a worked, step-by-step solution."""
    name, item, container = rng.choice(NAMES), rng.choice(ITEMS), rng.choice(CONTAINERS)
    kind = rng.choice(["add", "subtract", "multiply", "divide", "two_step"])
    if kind == "add":
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        return Problem(f"{name} has {a} {item}. {name} is given {b} more. How many {item} does {name} have now?",
                       f"{name} starts with {a} {item} and receives {b}. {a} + {b} = {a + b}.", a + b)
    if kind == "subtract":
        a = rng.randint(20, 150)
        b = rng.randint(1, a - 1)
        return Problem(f"{name} had {a} {item} and gave away {b}. How many {item} does {name} keep?",
                       f"{name} keeps what is left after giving {b} away. {a} - {b} = {a - b}.", a - b)
    if kind == "multiply":
        a, b = rng.randint(2, 12), rng.randint(2, 15)
        return Problem(f"{name} fills {a} {container} with {b} {item} each. How many {item} is that in total?",
                       f"Each of the {a} {container} holds {b} {item}. {a} x {b} = {a * b}.", a * b)
    if kind == "divide":
        b, q = rng.randint(2, 12), rng.randint(2, 15)
        return Problem(f"{name} shares {b * q} {item} equally among {b} {container}. "
                       f"How many {item} go in each of the {container}?",
                       f"Sharing {b * q} into {b} equal parts gives {b * q} / {b} = {q}.", q)
    a, b, c = rng.randint(10, 80), rng.randint(2, 9), rng.randint(2, 30)
    return Problem(f"{name} has {a} {item}, buys {b} packs of {c} {item}, and counts them all. "
                   f"How many {item} does {name} have?",
                   f"The packs hold {b} x {c} = {b * c} {item}. Adding the first {a}: {a} + {b * c} = {a + b * c}.",
                   a + b * c)


def training_document(rng: random.Random) -> str:
    problem = training_problem(rng)
    return f"Problem: {problem.question}\nSolution: {problem.solution}\nThe answer is {problem.answer}."


def evaluation_item(rng: random.Random, n_choices: int = 4) -> dict:
    """A multiple-choice arithmetic question in wording that no training template uses."""
    item, container = rng.choice(ITEMS), rng.choice(CONTAINERS)
    kind = rng.choice(["sum", "difference", "product", "quotient"])
    if kind == "sum":
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        question, answer = f"A shelf holds {a} {item} on top and {b} {item} below. What is the total number?", a + b
    elif kind == "difference":
        a = rng.randint(20, 150)
        b = rng.randint(1, a - 1)
        question, answer = f"Out of {a} {item} in a shop, {b} were sold by noon. What number remain unsold?", a - b
    elif kind == "product":
        a, b = rng.randint(2, 12), rng.randint(2, 15)
        question, answer = f"There are {a} {container}, and every one contains {b} {item}. What is the total?", a * b
    else:
        b, q = rng.randint(2, 12), rng.randint(2, 15)
        question, answer = (f"When {b * q} {item} are split evenly over {b} {container}, "
                            f"what number lands in each?"), q
    distractors: set[int] = set()
    while len(distractors) < n_choices - 1:
        candidate = answer + rng.choice([-10, -2, -1, 1, 2, 10, rng.randint(-20, 20)])
        if candidate != answer and candidate >= 0:
            distractors.add(candidate)
    choices = [*distractors, answer]
    rng.shuffle(choices)
    return {"question": question, "choices": [str(choice) for choice in choices], "gold": choices.index(answer)}
