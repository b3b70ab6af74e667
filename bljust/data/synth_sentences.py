"""The small English grammar and vocabulary whose sentences the synthetic corpus (``bljust.data.synth``) speaks.

``generate_sentence(rng)`` draws one sentence of MIN_WORDS..MAX_WORDS lowercase words, deterministic
given the state of ``rng``; ``VOCABULARY`` is every word the grammar can produce.
"""
from __future__ import annotations

import random

NAMES = ("john", "mary", "peter", "anna", "tom", "sarah", "david", "emma", "james", "lucy", "paul", "kate",
         "henry", "alice", "jack", "helen")
# (singular, plural)
PEOPLE = (("man", "men"), ("woman", "women"), ("child", "children"), ("boy", "boys"), ("girl", "girls"),
          ("teacher", "teachers"), ("doctor", "doctors"), ("farmer", "farmers"), ("driver", "drivers"),
          ("student", "students"), ("friend", "friends"), ("neighbor", "neighbors"), ("brother", "brothers"),
          ("sister", "sisters"), ("mother", "mothers"), ("father", "fathers"), ("baby", "babies"),
          ("king", "kings"), ("queen", "queens"), ("nurse", "nurses"), ("soldier", "soldiers"),
          ("painter", "painters"), ("stranger", "strangers"), ("family", "families"))
ANIMALS = (("dog", "dogs"), ("cat", "cats"), ("bird", "birds"), ("horse", "horses"), ("cow", "cows"),
           ("fish", "fish"), ("sheep", "sheep"), ("rabbit", "rabbits"), ("mouse", "mice"), ("duck", "ducks"))
THINGS = (("book", "books"), ("letter", "letters"), ("box", "boxes"), ("table", "tables"), ("chair", "chairs"),
          ("window", "windows"), ("door", "doors"), ("car", "cars"), ("boat", "boats"), ("apple", "apples"),
          ("cake", "cakes"), ("cup", "cups"), ("bottle", "bottles"), ("key", "keys"), ("bag", "bags"),
          ("hat", "hats"), ("coat", "coats"), ("shoe", "shoes"), ("picture", "pictures"), ("song", "songs"),
          ("story", "stories"), ("ball", "balls"), ("clock", "clocks"), ("phone", "phones"), ("map", "maps"),
          ("lamp", "lamps"), ("basket", "baskets"), ("flower", "flowers"), ("egg", "eggs"), ("bell", "bells"),
          ("ring", "rings"), ("candle", "candles"), ("blanket", "blankets"), ("ticket", "tickets"),
          ("glass", "glasses"), ("plate", "plates"), ("knife", "knives"), ("bicycle", "bicycles"),
          ("umbrella", "umbrellas"), ("newspaper", "newspapers"), ("orange", "oranges"), ("sandwich", "sandwiches"))
PLACES = ("kitchen", "garden", "river", "market", "school", "station", "library", "village", "forest", "office",
          "park", "church", "lake", "beach", "bridge", "hill", "house", "shop", "field", "city", "hospital",
          "road", "farm", "island", "mountain", "harbor", "castle", "museum", "hotel", "valley")
ADJECTIVES = ("old", "young", "big", "small", "little", "red", "blue", "green", "yellow", "white", "black",
              "brown", "happy", "quiet", "tall", "long", "bright", "dark", "warm", "cold", "heavy", "empty",
              "clean", "new", "strange", "lovely", "tired", "busy", "hungry", "famous", "gentle", "broken",
              "golden", "wooden", "tiny", "huge", "clever", "kind", "angry", "funny", "lucky", "strong", "soft",
              "sweet", "beautiful", "careful", "nervous", "proud", "pretty", "simple")
# Adjectives that can describe a person or animal; the rest describe things.
ANIMATE_ADJECTIVES = ("old", "young", "big", "small", "little", "happy", "quiet", "tall", "tired", "busy",
                      "hungry", "famous", "gentle", "clever", "kind", "angry", "funny", "lucky", "strong",
                      "careful", "nervous", "proud", "pretty", "brown", "black", "white")
# Transitive verbs taking a thing: (base, third person singular, past).
THING_VERBS = (("find", "finds", "found"), ("take", "takes", "took"), ("bring", "brings", "brought"),
               ("carry", "carries", "carried"), ("open", "opens", "opened"), ("paint", "paints", "painted"),
               ("buy", "buys", "bought"), ("sell", "sells", "sold"), ("clean", "cleans", "cleaned"),
               ("move", "moves", "moved"), ("push", "pushes", "pushed"), ("hold", "holds", "held"),
               ("keep", "keeps", "kept"), ("want", "wants", "wanted"), ("need", "needs", "needed"),
               ("drop", "drops", "dropped"), ("hide", "hides", "hid"), ("fix", "fixes", "fixed"),
               ("wash", "washes", "washed"), ("catch", "catches", "caught"), ("throw", "throws", "threw"),
               ("leave", "leaves", "left"), ("lose", "loses", "lost"), ("break", "breaks", "broke"),
               ("borrow", "borrows", "borrowed"), ("send", "sends", "sent"), ("make", "makes", "made"),
               ("get", "gets", "got"), ("draw", "draws", "drew"), ("see", "sees", "saw"))
# Transitive verbs taking a person or animal.
PERSON_VERBS = (("meet", "meets", "met"), ("call", "calls", "called"), ("help", "helps", "helped"),
                ("visit", "visits", "visited"), ("follow", "follows", "followed"), ("watch", "watches", "watched"),
                ("remember", "remembers", "remembered"), ("forget", "forgets", "forgot"),
                ("miss", "misses", "missed"), ("like", "likes", "liked"), ("love", "loves", "loved"),
                ("thank", "thanks", "thanked"), ("ask", "asks", "asked"), ("hear", "hears", "heard"),
                ("teach", "teaches", "taught"), ("wake", "wakes", "woke"), ("feed", "feeds", "fed"),
                ("know", "knows", "knew"))
# Intransitive verbs.
INTRANSITIVE_VERBS = (("walk", "walks", "walked"), ("run", "runs", "ran"), ("sleep", "sleeps", "slept"),
                      ("sing", "sings", "sang"), ("laugh", "laughs", "laughed"), ("smile", "smiles", "smiled"),
                      ("wait", "waits", "waited"), ("arrive", "arrives", "arrived"), ("sit", "sits", "sat"),
                      ("stand", "stands", "stood"), ("swim", "swims", "swam"), ("dance", "dances", "danced"),
                      ("work", "works", "worked"), ("play", "plays", "played"), ("cry", "cries", "cried"),
                      ("jump", "jumps", "jumped"), ("rest", "rests", "rested"), ("listen", "listens", "listened"),
                      ("shout", "shouts", "shouted"), ("stay", "stays", "stayed"), ("read", "reads", "read"),
                      ("write", "writes", "wrote"), ("cook", "cooks", "cooked"), ("travel", "travels", "traveled"))
MANNER_ADVERBS = ("quickly", "slowly", "quietly", "carefully", "happily", "suddenly", "together", "alone",
                  "again", "early", "late", "outside")
FREQUENCY_ADVERBS = ("always", "often", "never", "sometimes", "usually", "rarely")
PAST_TIMES = ("yesterday", "last night", "last week", "this morning", "after dinner", "before lunch",
              "on sunday", "on monday", "at noon", "a long time ago", "two days ago", "in the evening")
FUTURE_TIMES = ("tomorrow", "next week", "tonight", "after lunch", "on friday", "on saturday", "next year",
                "in the morning", "later today", "soon")
PLACE_PREPOSITIONS = ("in", "near", "behind", "beside", "across", "inside", "outside", "at", "by", "from",
                      "to", "into", "around", "along", "under", "over", "through", "past")
PLURAL_DETERMINERS = ("the", "these", "those", "my", "your", "our", "their", "some", "many", "two", "three",
                      "four", "five", "ten", "all the", "his", "her")
SINGULAR_DETERMINERS = ("the", "a", "this", "that", "my", "your", "his", "her", "our", "their", "one", "every")
SUBJECT_PRONOUNS = (("i", False), ("you", False), ("he", True), ("she", True), ("we", False), ("they", False))
OBJECT_PRONOUNS = ("me", "you", "him", "her", "us", "them")
# Contracted pronoun + will.
WILL_CONTRACTIONS = {"i": "i'll", "you": "you'll", "he": "he'll", "she": "she'll", "we": "we'll", "they": "they'll"}
CONJUNCTIONS = ("and", "but", "because", "so", "when", "while", "after", "before", "until")
QUESTION_WORDS = ("where", "when", "why", "how")
THINKING = ("i think", "she said that", "he knows that", "we heard that", "they told me that", "i'm sure that",
            "it's true that", "i hope that", "nobody knew that", "everyone says that")
MIN_WORDS, MAX_WORDS = 4, 12


_PLACE_NOUNS = tuple((p, p) for p in PLACES)  # places are only used in the singular


def _pick(rng: random.Random, seq):
    return seq[rng.randrange(len(seq))]


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _noun_phrase(rng: random.Random, nouns, adjectives, plural: bool | None = None,
                 determiners: tuple[tuple[str, ...], tuple[str, ...]] = (SINGULAR_DETERMINERS, PLURAL_DETERMINERS),
                 ) -> tuple[list[str], bool]:
    """A determiner, maybe an adjective, a noun; returns the words and whether it is plural.

    ``determiners`` are the (singular, plural) choices; "a" becomes "an" where needed.
    """
    if plural is None:
        plural = rng.random() < 0.3
    noun = _pick(rng, nouns)[1 if plural else 0]
    words = [_pick(rng, adjectives)] if rng.random() < 0.4 else []
    words.append(noun)
    det = _pick(rng, determiners[plural])
    if det == "a":
        det = _article(words[0])
    return det.split() + words, plural


def _subject(rng: random.Random) -> tuple[list[str], bool]:
    """A subject and whether it takes the third-person singular verb form."""
    r = rng.random()
    if r < 0.2:
        return [_pick(rng, NAMES)], True
    if r < 0.45:
        word, third = _pick(rng, SUBJECT_PRONOUNS)
        return [word], third
    words, plural = _noun_phrase(rng, PEOPLE if rng.random() < 0.75 else ANIMALS, ANIMATE_ADJECTIVES)
    return words, not plural


def _object(rng: random.Random, verbs) -> list[str]:
    if verbs is THING_VERBS:
        return _noun_phrase(rng, THINGS, ADJECTIVES)[0]
    r = rng.random()
    if r < 0.2:
        return [_pick(rng, NAMES)]
    if r < 0.4:
        return [_pick(rng, OBJECT_PRONOUNS)]
    return _noun_phrase(rng, PEOPLE if rng.random() < 0.7 else ANIMALS, ANIMATE_ADJECTIVES)[0]


def _place(rng: random.Random) -> list[str]:
    return [_pick(rng, PLACE_PREPOSITIONS)] + _noun_phrase(rng, _PLACE_NOUNS, ADJECTIVES, False)[0]


def _verb_phrase(rng: random.Random, form: int) -> list[str]:
    """A verb in ``form`` (0 base, 1 third person, 2 past) with its object, maybe a place."""
    verbs = _pick(rng, (THING_VERBS, THING_VERBS, PERSON_VERBS, INTRANSITIVE_VERBS))
    words = [_pick(rng, verbs)[form]]
    if verbs is not INTRANSITIVE_VERBS:
        words += _object(rng, verbs)
    if rng.random() < 0.35:
        words += _place(rng)
    elif rng.random() < 0.25:
        words.append(_pick(rng, MANNER_ADVERBS))
    return words


def _clause(rng: random.Random) -> list[str]:
    """A declarative clause."""
    subject, third = _subject(rng)
    r = rng.random()
    if r < 0.35:  # past
        words = subject + _verb_phrase(rng, 2)
        if rng.random() < 0.3:
            words += _pick(rng, PAST_TIMES).split()
        return words
    if r < 0.55:  # present, maybe with a frequency adverb
        adverb = [_pick(rng, FREQUENCY_ADVERBS)] if rng.random() < 0.4 else []
        return subject + adverb + _verb_phrase(rng, 1 if third else 0)
    if r < 0.7:  # negative
        aux = _pick(rng, ("didn't", "can't", "won't", "doesn't" if third else "don't"))
        return subject + [aux] + _verb_phrase(rng, 0)
    if r < 0.85:  # future
        if len(subject) == 1 and subject[0] in WILL_CONTRACTIONS and rng.random() < 0.6:
            words = [WILL_CONTRACTIONS[subject[0]]]
        else:
            words = subject + ["will"]
        words += _verb_phrase(rng, 0)
        if rng.random() < 0.4:
            words += _pick(rng, FUTURE_TIMES).split()
        return words
    # copula
    if len(subject) == 1:  # a name or pronoun
        be = {"i": "was", "you": "were", "we": "were", "they": "were"}.get(subject[0], "was")
    else:
        be = "was" if third else "were"
    very = ["very"] if rng.random() < 0.3 else []
    return subject + [be] + very + [_pick(rng, ANIMATE_ADJECTIVES)]


def _question(rng: random.Random) -> list[str]:
    r = rng.random()
    if r < 0.4:
        subject, third = _subject(rng)
        aux = _pick(rng, ("did", "does" if third else "do", "will", "can"))
        wh = [_pick(rng, QUESTION_WORDS)] if rng.random() < 0.5 else []
        return wh + [aux] + subject + _verb_phrase(rng, 0)
    if r < 0.6:
        return ["who"] + _verb_phrase(rng, 2)
    if r < 0.8:
        return ["can", "you", "please"] + _verb_phrase(rng, 0)
    words, plural = _noun_phrase(rng, THINGS, ADJECTIVES)
    return ["are" if plural else "is"] + words + ["still"] + [_pick(rng, ADJECTIVES)]


def _imperative(rng: random.Random) -> list[str]:
    r = rng.random()
    if r < 0.4:
        return ["please"] + _verb_phrase(rng, 0)
    if r < 0.7:
        return ["don't"] + _verb_phrase(rng, 0)
    return ["let's", _pick(rng, INTRANSITIVE_VERBS)[0]] + _place(rng)


def _existential(rng: random.Random) -> list[str]:
    words, plural = _noun_phrase(rng, THINGS if rng.random() < 0.6 else ANIMALS, ADJECTIVES,
                                 determiners=(("a", "one"), ("some", "two", "three", "many")))
    there = _pick(rng, ("there are", "there were")) if plural else _pick(rng, ("there's", "there was"))
    return there.split() + words + _place(rng)


def _sentence(rng: random.Random) -> tuple[list[str], str]:
    """One sentence of any shape (maybe too long or short) and its end punctuation."""
    r = rng.random()
    if r < 0.35:
        return _clause(rng), "."
    if r < 0.5:
        return _question(rng), "?"
    if r < 0.6:
        return _imperative(rng), "."
    if r < 0.7:
        return _existential(rng), "."
    if r < 0.85:
        return _clause(rng) + [_pick(rng, CONJUNCTIONS)] + _clause(rng), "."
    return _pick(rng, THINKING).split() + _clause(rng), "."


def generate_sentence(rng: random.Random) -> tuple[str, str]:
    """A sentence of MIN_WORDS..MAX_WORDS lowercase words and its end punctuation (``.`` or ``?``).

    Deterministic given the state of ``rng``. The punctuation only shapes the intonation.
    """
    while True:
        words, end = _sentence(rng)
        if MIN_WORDS <= len(words) <= MAX_WORDS:
            return " ".join(words), end


def _vocabulary() -> frozenset[str]:
    words: set[str] = set(NAMES) | set(PLACES) | set(ADJECTIVES) | set(MANNER_ADVERBS) | set(FREQUENCY_ADVERBS)
    words |= set(PLACE_PREPOSITIONS) | set(OBJECT_PRONOUNS) | set(CONJUNCTIONS) | set(QUESTION_WORDS)
    words |= set(WILL_CONTRACTIONS.values()) | {p for p, _ in SUBJECT_PRONOUNS}
    for group in (PEOPLE, ANIMALS, THINGS, THING_VERBS, PERSON_VERBS, INTRANSITIVE_VERBS):
        for forms in group:
            words |= set(forms)
    for phrase in PAST_TIMES + FUTURE_TIMES + PLURAL_DETERMINERS + SINGULAR_DETERMINERS + THINKING:
        words |= set(phrase.split())
    words |= {"a", "an", "very", "will", "was", "were", "is", "are", "still", "did", "do", "does", "can",
              "didn't", "can't", "won't", "doesn't", "don't", "please", "let's", "who", "there", "there's"}
    return frozenset(words)


VOCABULARY = _vocabulary()
