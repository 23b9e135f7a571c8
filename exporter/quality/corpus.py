"""Texts for training the demo models, tracing and parity checks.

Two sources:

- a small generated NER corpus (PER / LOC / ORG / MISC): sentences from templates filled with names, places,
  organisations and other names, deterministic for a given seed. The demo tagger and classifier are trained
  on them; tracing uses them;
- the shipped check set (:func:`check_sentences`): natural English text written for this project, on which
  exports are checked when the user gives no sentences of their own.
"""

from __future__ import annotations

import functools
import logging
import random
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "CHECK_SENTENCES_FILE",
    "LABEL_PREFIX",
    "TOPICS",
    "check_sentences",
    "generate_sentences",
    "generate_tagged_sentences",
    "generate_topic_texts",
    "read_conll",
    "read_labeled_texts",
]

log = logging.getLogger(__name__)

#: The shipped check set, relative to the ``exporter`` package (package data: one text per line, UTF-8).
CHECK_SENTENCES_FILE = "data/check_sentences.txt"

#: How a text classification file marks its labels (FastText style, as Flair's ``ClassificationCorpus`` reads it).
LABEL_PREFIX = "__label__"

FIRST_NAMES = (
    "John Mary Peter Anna Michael Sarah David Laura James Emma Robert Olivia Thomas Sophie Daniel Julia Paul "
    "Maria Carlos Ahmed Fatima Hiroshi Yuki Ivan Olga Pierre Claire Hans Greta Luca Giulia Raj Priya Chen Wei "
    "Kwame Amina Diego Lucia Sven Ingrid Omar Leila Tom Kate Mark Lisa George Helen Barbara Klaus Jürgen "
    "Heinrich Ursula Wolfgang Monika Francois Amelie Giovanni Francesca Alejandro Camila Mateo Valentina Noah "
    "Liam Ava Mia Ethan Chloe Lucas Zoe Samuel Nora Elena Viktor Natasha Dmitri Svetlana Kenji Akiko Min Jin "
    "Arjun Ananya Tariq Yasmin Kofi Abena Thabo Zanele Hamid Soraya Ruth Walter Edith Frank Irene Bernard "
    "Agnes Rupert Tessa Declan Siobhan Boris Angelika Timothy Jacinta Emmanuel Narendra Recep Justin Shinzo"
).split()
LAST_NAMES = (
    "Smith Johnson Miller Brown Davis Wilson Moore Taylor Anderson Thomas Jackson White Harris Martin Garcia "
    "Martinez Robinson Clark Lewis Walker Hall Young King Wright Lopez Hill Scott Green Adams Baker Nelson "
    "Carter Mitchell Perez Roberts Turner Phillips Campbell Parker Evans Edwards Collins Stewart Morris Rogers "
    "Schmidt Müller Dubois Rossi Tanaka Kowalski Novak Ivanova Okafor Haddad Nakamura Fischer Weber Meyer "
    "Wagner Becker Hoffmann Schulz Koch Richter Klein Wolf Schröder Neumann Schwarz Zimmermann Braun Hartmann "
    "Lange Krause Lehmann Moreau Laurent Lefebvre Fontaine Bianchi Romano Ricci Colombo Fernandez Gonzalez "
    "Rodriguez Sanchez Ramirez Torres Flores Rivera Gomez Diaz Suzuki Takahashi Watanabe Yamamoto Kim Lee "
    "Park Choi Wang Zhang Liu Chen Yang Huang Zhao Patel Sharma Singh Gupta Khan Ali Hassan Mensah Mbeki "
    "Kenyatta Abiodun Olsen Hansen Johansson Lindqvist Virtanen Korhonen Papadopoulos Yilmaz Kaya Petrov "
    "Smirnov Popescu Horvat Kovacs Nagy Dvorak Byrne Murphy Kelly Walsh O'Brien Fraser Macdonald Thornton "
    "Blackwood Ashford Merriweather Castellano Villanueva Oyelaran Achterberg Grünwald Halvorsen Takeda"
).split()
CITIES = (
    "London Paris Berlin Madrid Rome Vienna Prague Warsaw Lisbon Dublin Amsterdam Brussels Oslo Stockholm "
    "Helsinki Athens Istanbul Cairo Nairobi Lagos Tokyo Osaka Seoul Beijing Shanghai Mumbai Delhi Sydney "
    "Melbourne Toronto Chicago Boston Denver Seattle Houston Dallas Atlanta Miami Lima Santiago Bogota Hamburg "
    "Munich Zurich Geneva Milan Naples Lyon Marseille Glasgow Manchester"
).split() + ["New York", "San Francisco", "Los Angeles", "Buenos Aires", "Rio de Janeiro", "Hong Kong", "Cape Town"]
COUNTRIES = (
    "France Germany Spain Italy Austria Poland Portugal Ireland Norway Sweden Finland Greece Turkey Egypt Kenya "
    "Nigeria Japan Korea China India Australia Canada Mexico Brazil Peru Chile Argentina Switzerland Belgium"
).split() + ["the United States", "South Africa", "New Zealand", "the Netherlands"]
ORGS = [
    "Siemens",
    "Google",
    "Microsoft",
    "Apple",
    "Amazon",
    "Toyota",
    "Nestlé",
    "Reuters",
    "UNESCO",
    "NATO",
    "Oxfam",
    "Volkswagen",
    "Airbus",
    "Boeing",
    "Samsung",
    "Sony",
    "Intel",
    "Nokia",
    "Ericsson",
    "Pfizer",
    "the European Commission",
    "the World Bank",
    "the United Nations",
    "Deutsche Bank",
    "Goldman Sachs",
    "the Red Cross",
    "General Electric",
    "Bayer",
    "BMW",
    "Shell",
    "the BBC",
    "Oxford University",
    "Harvard University",
    "the Bundesbank",
    "Real Madrid",
    "Manchester United",
    "the Federal Reserve",
]
MISC = [
    "German",
    "French",
    "Italian",
    "Spanish",
    "Japanese",
    "Chinese",
    "Brazilian",
    "Canadian",
    "British",
    "American",
    "European",
    "Olympic",
    "Christmas",
    "Nobel Prize",
    "World Cup",
    "Champions League",
    "iPhone",
    "Windows",
    "Euro",
    "Grammy",
    "Oscar",
    "Tour de France",
    "Wimbledon",
    "Super Bowl",
    "Android",
]
WORDS = (
    "the a report said on Monday that new plan would be announced later this year after talks between "
    "officials and partners over costs and delays in several projects while markets remained calm and "
    "prices rose slightly during the afternoon session as investors waited for more news about growth"
).split()

# {P} person, {C} city, {N} country, {O} organisation, {M} misc.
TEMPLATES = [
    "{P} met {P} in {C} .",
    "{P} , the chief executive of {O} , arrived in {C} on Tuesday .",
    "{O} opened a new office in {C} , {N} .",
    "The {M} team beat {O} 2-1 in {C} .",
    "{P} said {O} would invest more in {N} next year .",
    "Officials in {C} confirmed that {P} had resigned .",
    "{P} won the {M} after a long match against {P} .",
    "Shares of {O} fell after {P} warned about sales in {N} .",
    "The {M} government and {O} signed a deal in {C} .",
    "{P} and {P} will travel from {C} to {C} next week .",
    "According to {O} , exports from {N} rose sharply .",
    "{P} , who was born in {C} , joined {O} in 2010 .",
    "A spokesman for {O} declined to comment on the {M} market .",
    "{P} told reporters in {C} that talks with {O} had failed .",
    "The festival in {C} attracted visitors from {N} and {N} .",
    "{O} hired {P} as its new director of research .",
    "Police in {C} arrested two men on Friday .",
    "The {M} release of the product is planned for {C} .",
    "{P} visited {N} to meet leaders of {O} .",
    "Last year {O} moved its headquarters from {C} to {C} .",
    "Fans of {O} celebrated in the streets of {C} .",
    "{P} wrote a book about the history of {N} .",
    "The meeting between {O} and {O} took place in {C} .",
    "It rained all day in {C} , said {P} .",
    "{P} met with {P} and {P} on Friday .",
    "Yesterday {P} spoke with {P} about {O} .",
    "In {C} , {P} greeted {P} at the airport .",
    "{P} thanked {P} for the help .",
    "{P} and {P} discussed the {M} economy in {C} .",
    "{O} and {O} agreed to merge , {P} said .",
    "{P} is a professor at {O} in {C} .",
    "The {M} president {P} flew to {N} .",
    "{P} lives in {C} with his family .",
    "She met {P} in {C} last summer .",
]
_SLOT_LABEL = {"P": "PER", "C": "LOC", "N": "LOC", "O": "ORG", "M": "MISC"}

# Topic templates for the demo text classifier (same slots as above).
TOPIC_TEMPLATES = {
    "sports": [
        "{P} scored twice as {O} beat the champions in {C} .",
        "The final in {C} ended in a draw after extra time .",
        "{P} won the marathon in {C} in record time .",
        "Fans in {C} cheered as the team lifted the cup .",
        "The coach of {O} praised the defence after the match .",
        "{P} signed a three-year contract with the club from {C} .",
        "The tennis star {P} reached the semi-final in {N} .",
        "{N} qualified for the World Cup after a late goal .",
    ],
    "business": [
        "Shares of {O} rose after strong quarterly profits .",
        "{O} agreed to buy a rival for two billion dollars .",
        "{P} , chief executive of {O} , announced job cuts .",
        "Investors in {C} worried about rising interest rates .",
        "{O} opened a new factory in {N} to cut costs .",
        "The central bank of {N} kept its rates unchanged .",
        "Sales at {O} fell for the third quarter in a row .",
        "The merger of {O} and {O} was approved by regulators .",
    ],
    "politics": [
        "The parliament of {N} passed the new budget on Friday .",
        "{P} won the election in {C} by a wide margin .",
        "The minister {P} resigned after the scandal .",
        "Leaders of {N} and {N} met in {C} for peace talks .",
        "The opposition in {N} called for new elections .",
        "{P} promised lower taxes during the campaign in {C} .",
        "The government of {N} announced a new law on migration .",
        "Voters in {C} rejected the proposal in a referendum .",
    ],
    "science": [
        "Researchers at {O} discovered a new species in {N} .",
        "{P} published a study on climate change and sea levels .",
        "The telescope in {N} captured images of a distant galaxy .",
        "Scientists in {C} developed a faster vaccine test .",
        "{P} received a prize for work on quantum computing .",
        "A team from {O} sequenced the genome of the plant .",
        "The space agency of {N} launched a new satellite .",
        "Physicists in {C} measured the particle with new precision .",
    ],
}
TOPICS = tuple(TOPIC_TEMPLATES)


def _fill(rng: random.Random, slot: str) -> list[str]:
    if slot == "P":
        name = [rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)]
        return name if rng.random() < 0.85 else name[1:]
    pool = {"C": CITIES, "N": COUNTRIES, "O": ORGS, "M": MISC}[slot]
    return rng.choice(pool).split()


def generate_tagged_sentences(count: int, seed: int = 0) -> list[list[tuple[str, str]]]:
    """``count`` template sentences as ``[(token, BIO tag), ...]``."""
    rng = random.Random(seed)
    sentences = []
    for _ in range(count):
        template = rng.choice(TEMPLATES)
        tagged: list[tuple[str, str]] = []
        for piece in template.split():
            if piece.startswith("{") and piece.endswith("}"):
                slot = piece[1]
                words = _fill(rng, slot)
                # "the" in front of an organisation or country stays outside the entity
                if words[0] == "the" and len(words) > 1:
                    tagged.append(("the", "O"))
                    words = words[1:]
                label = _SLOT_LABEL[slot]
                tagged.extend((w, ("B-" if i == 0 else "I-") + label) for i, w in enumerate(words))
            else:
                tagged.append((piece, "O"))
        sentences.append(tagged)
    return sentences


def generate_topic_texts(count: int, seed: int = 0) -> list[tuple[str, str]]:
    """``count`` generated ``(text, topic)`` pairs over :data:`TOPICS`, balanced, deterministic per seed."""
    rng = random.Random(seed)
    pairs = []
    for i in range(count):
        topic = TOPICS[i % len(TOPICS)]
        words = []
        for piece in rng.choice(TOPIC_TEMPLATES[topic]).split():
            words += _fill(rng, piece[1]) if piece.startswith("{") and piece.endswith("}") else [piece]
        pairs.append((" ".join(words), topic))
    rng.shuffle(pairs)
    return pairs


def generate_sentences(count: int, seed: int = 1, long_every: int = 16, long_words: int = 420) -> list[str]:
    """Plain sentences for tracing or parity checks; every ``long_every``-th one is ``long_words`` words long,
    so that sentences beyond the transformer's maximum length are covered."""
    rng = random.Random(seed)
    texts = []
    for i, tagged in enumerate(generate_tagged_sentences(count, seed)):
        words = [w for w, _ in tagged]
        if long_every and i % long_every == long_every - 1:
            while len(words) < long_words:
                words += [w for w, _ in rng.choice(generate_tagged_sentences(1, rng.randrange(1 << 30)))]
                words += rng.sample(WORDS, 8)
        texts.append(" ".join(words))
    return texts


@functools.lru_cache(maxsize=1)
def _check_lines() -> tuple[str, ...]:
    from importlib.resources import files

    text = files(__package__).joinpath(CHECK_SENTENCES_FILE).read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def check_sentences(count: int | None = None, long_every: int = 16, long_words: int = 420) -> list[str]:
    """The shipped check set: natural English text written for this project, the default parity sentences.

    News, web and forum posts, informal social media (lowercase, typos, hashtags, @handles), product
    reviews, headlines and lists, long multi-clause sentences and texts without any entity, with people,
    organisations, places, products and events named in many languages (diacritics included). The same
    arguments always give the same texts in the same order.

    Args:
        count: how many texts; ``None`` for all of them. Fewer than the set holds: evenly spaced over it, so
            every genre is represented. More than it holds: all of them, with a warning (a sentence is never
            repeated: a copy would narrow the gate's interval without adding evidence).
        long_every: every ``long_every``-th text (0: none) is a paragraph instead of one line: that line and
            the lines after it, until it has ``long_words`` words. Like :func:`generate_sentences`' long
            sentences, these exceed a 512-subtoken window, so the gate covers Flair's overflow windows.
        long_words: the least number of words (split on whitespace) of each paragraph.
    """
    lines = _check_lines()
    total = len(lines)
    if count is not None and count > total:
        log.warning("The check set has %d texts, fewer than the %d asked for: using all %d.", total, count, total)
    n = total if count is None else min(count, total)
    texts = []
    for i in range(n):
        start = i * total // n
        text = lines[start]
        if long_every and i % long_every == long_every - 1:
            parts, following = [text], start + 1
            while sum(len(p.split()) for p in parts) < long_words:
                parts.append(lines[following % total])
                following += 1
            text = " ".join(parts)
        texts.append(text)
    return texts


def read_conll(path: str | Path, limit: int | None = None) -> Iterator[list[tuple[str, str]]]:
    """Yield sentences of a two-column CoNLL file (``token TAG``, space or tab separated)."""
    sentence: list[tuple[str, str]] = []
    count = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.strip() or line.startswith("-DOCSTART-"):
                if sentence:
                    yield sentence
                    count += 1
                    if limit is not None and count >= limit:
                        return
                sentence = []
                continue
            parts = line.split()
            sentence.append((parts[0], parts[-1] if len(parts) > 1 else "O"))
    if sentence:
        yield sentence


def read_labeled_texts(path: str | Path, limit: int | None = None) -> Iterator[tuple[list[str], str]]:
    """Yield ``(labels, text)`` from a FastText-style file: ``__label__sports __label__news Some text .``

    Parsed as Flair's ``ClassificationDataset`` parses it: the leading ``__label__`` words are the labels, the
    rest of the line is the text; lines without a label or without text are skipped.
    """
    count = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            labels: list[str] = []
            skip = 0
            for word in line.split():
                if not word.startswith(LABEL_PREFIX):
                    break
                labels.append(word.replace(LABEL_PREFIX, ""))
                skip += len(word) + 1
            text = line[skip:].strip()
            if labels and text:
                yield labels, text
                count += 1
                if limit is not None and count >= limit:
                    return
