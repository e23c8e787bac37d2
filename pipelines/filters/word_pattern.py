"""Words as spaCy's English tokenizer cuts them: the pattern that defines them, and its linear-time form.

datatrove's English filters count words with spaCy (`spacy.blank("en")`), which is most of their cost. The
pattern below gives nearly the same tokens with one compiled regular expression:

- whitespace separates chunks; leading punctuation (brackets, quotes, `#`, `*`, `_`, `$`…) splits off one
  character at a time, trailing punctuation likewise, a final `.` only after a lowercase letter, a digit or
  two capitals (so `U.S.`, `F.` and `e.g.` stay whole);
- inside a chunk it splits where spaCy's infixes do: `...`, hyphens and `:<>=/` between letters, commas
  between letters, `.` between a lowercase and a capital letter, arithmetic signs between digits;
- clitics split off the end: `'s`, `n't`, `'re`, `'ve`, `'ll`, `'m`, `'d`; a number loses a trailing unit,
  currency sign or `%` (`10km`, `5$`, `20%`); URLs stay whole.

- words spaCy splits though written without an apostrophe ("dont", "cannot") and the emoticons it merges
  ("):", "''") follow spaCy too.

What it leaves out (spaCy's other exception spellings, rarer emoticons, non-Latin rules) shifts a document's
counts by a token or two: on the reference documents 97% of documents get exactly spaCy's tokens and 35 of
144,138 tokens differ; docs/filters.md gives the measured agreement of the decisions.

`pattern_words` is the definition. A backtracking engine runs it in time quadratic in a run of trailing
marks followed by another character ("a,,,,x": every position of the run asks whether only marks follow to
the chunk's end, and scans the run to find out), so the build cuts words with `chunk_words`: the same
pattern, rewritten so that each of those questions is answered by the one character where it is asked
(`twin_words`; a chunk with no run of more than four marks, where the definition is linear, takes the
definition itself). Of
the chunk, the marks that end it (its trailing run of `_SUFFIX` characters: the only place where "only
marks follow" holds) are replaced by private-use twins, and the pattern is compiled a second time with
every twin accepted wherever its mark is, and each scan to the chunk's end replaced by a test of one
character: is it a twin. Every other part of the pattern matches exactly where it did, so the tokens'
boundaries are the definition's (tests/pipelines/test_word_pattern.py holds the two to the same tokens);
the words are then cut from the original chunk.
"""

from __future__ import annotations

import re

# spaCy's prefix and suffix punctuation (one character per token), and the ones only at the start.
_EDGE = r"""…,:;!?¿¡()\[\]{}<>_#*&'"”“`‘´’‚„»«。？！，、；：～·（）【】《》「」『』〈〉"""
_PREFIX = _EDGE + r"§%=—–$£€¥"
_SUFFIX = _EDGE + r".—–"
_CLITIC = r"(?:n['’]t|['’](?:[sS]|m|re|ve|ll|d))"
_UNIT = r"(?<=[0-9])(?:[$£€¥%+]|km|cm|mm|m|kg|mg|g|lb|oz|ft|yd|mph|kb|KB|MB|GB|TB|K|M|G|T)"
_LETTER = r"[^\W\d_]"
_INFIX = (
    rf"(?<=[0-9])[+\-*^](?=[0-9-])"
    rf"|(?<=[a-z'\"])\.(?=[A-Z'\"])"
    rf"|(?<={_LETTER}),(?={_LETTER})"
    rf"|(?<=[^\W_])(?:---|--|-|–|—|~)(?={_LETTER})"
    rf"|(?<=[^\W_])[:<>=/](?={_LETTER})"
    rf"|\.\.+|…"
)
# Where a chunk's core ends: before its trailing clitic, unit and punctuation, or before an infix.
# A final "." splits off unless it follows a lone capital ("I/O.", "F."), as spaCy's suffix rule has it.
_TRAIL = rf"(?:[{_EDGE}—–]|(?:(?<=[A-Z][A-Z])|(?<![A-Z]))\.)*"
_CORE_END = rf"(?:{_CLITIC}|{_UNIT})?{_TRAIL}(?:\s|$)|{_INFIX}"
_CHUNK_END = rf"(?=[{_SUFFIX}]*(?:\s|$))"
_CHUNK_START = rf"(?<![^\s{_PREFIX}])"
# Words spaCy splits though written without an apostrophe ("dont" -> "do", "nt"): word -> length of the first.
_SPLIT_WORDS = {
    "cannot": 3,
    "gonna": 3,
    "gotta": 3,
    "dont": 2,
    "doesnt": 4,
    "didnt": 3,
    "isnt": 2,
    "arent": 3,
    "wasnt": 3,
    "werent": 4,
    "cant": 2,
    "couldnt": 5,
    "wouldnt": 5,
    "shouldnt": 6,
    "wont": 2,
    "hasnt": 3,
    "havent": 4,
    "hadnt": 3,
    "aint": 2,
    "im": 1,
    "ive": 1,
    "id": 1,
    "hes": 2,
    "shes": 3,
    "whats": 4,
    "thats": 4,
    "theres": 5,
    "hows": 3,
    "youre": 3,
    "theyre": 4,
}
_SPLIT_WORD_SET = frozenset([*_SPLIT_WORDS, *map(str.capitalize, _SPLIT_WORDS)])
# Emoticons and quotes spaCy merges back into one token ("):" in "def f():", "''"); "8)" is left out, as
# it would cost every number a check.
_MERGED_FORMS = ("):", "(:", ":)", ":(", ";)", ":-)", ":]", "[:", ":*", "''")
_MERGED = "|".join(map(re.escape, _MERGED_FORMS))

# Abbreviations that keep their final "." (alternatives in this order: "Sep" before "Sept").
_ABBREVIATIONS = (
    *("Mr", "Mrs", "Ms", "Dr", "St", "Jr", "Sr", "Prof", "Rev", "Gen", "Gov", "Sen", "Rep", "Inc", "Ltd"),
    *("Co", "Corp", "Bros", "vs", "Mt", "Ph.D", "Jan", "Feb", "Mar", "Apr", "Jun", "Jul", "Aug", "Sep"),
    *("Sept", "Oct", "Nov", "Dec"),
)

_COMMON = (
    # a plain word or number not followed by "." (most words), then lone punctuation: the common cases first
    rf"(?:{_LETTER}+|[0-9]+)(?=\s|$|[{_EDGE}][{_SUFFIX}]*(?:\s|$))"
    rf"|{_MERGED}|\.\.+|…"  # a merged emoticon or quote, an ellipsis
    rf"|(?!{_CLITIC})[{_PREFIX}]|\.(?=[{_SUFFIX}]*(?:\s|$))"
    rf"|(?:https?://|www\.)\S*?{_CHUNK_END}"  # a URL, less trailing punctuation
    rf"|(?<=\S){_CLITIC}{_CHUNK_END}"  # a clitic that ends a chunk
    rf"|{_UNIT}{_CHUNK_END}"  # a number's unit
    rf"|{_INFIX}"
    rf"|{_CHUNK_START}(?:[A-Za-z]\.)+{_CHUNK_END}"  # U.S., e.g., F., a.
    rf"|{_CHUNK_START}(?:{'|'.join(map(re.escape, _ABBREVIATIONS))})\.{_CHUNK_END}"  # abbreviations
    # a chunk's core ("+" starts one only before a digit)
    rf"|and/or|(?!\+[^0-9])[^\s{_PREFIX}]\S*?(?={_CORE_END})"
    rf"|\S"  # any other character at a chunk's edge
)
# "(?=\S)" lets the matcher skip whitespace without trying every alternative there (measured: 1.5x faster).
_FAST_SOURCE = rf"(?=\S)(?:{_COMMON})"
_FULL_SOURCE = (
    r"(?=\S)(?:"
    + _CHUNK_START
    + "(?:"
    + "|".join(
        rf"{w[:k]}(?={w[k:]}{_CHUNK_END})"
        for word, k in _SPLIT_WORDS.items()
        for w in (word, word.capitalize())
    )
    + ")|"
    + _COMMON
    + ")"
)
_FAST_WORDS = re.compile(_FAST_SOURCE)
_FULL_WORDS = re.compile(_FULL_SOURCE)


def pattern_words(text: str) -> list[str]:
    """Return the words of `text` as the regular expressions above cut them: the definition, in time quadratic
    in a long run of trailing marks followed by another character (the build uses `chunk_words`)."""
    tokens = _FAST_WORDS.findall(text)
    # The rare documents with a word like "dont" or "cannot" take the slower pattern that splits them.
    if not _SPLIT_WORD_SET.isdisjoint(tokens):
        return _FULL_WORDS.findall(text)
    return tokens


# The linear-time form. MARKS are the characters of `_SUFFIX`, the only ones the pattern's scans to a
# chunk's end go over; each gets a twin in the private-use area. Text that holds a twin already has it
# replaced by another private-use character first (`_NEUTRAL`), which the pattern treats the same.
MARKS = "".join(sorted(set(re.sub(r"\\(.)", r"\1", _SUFFIX))))
_TWINS = {mark: chr(0xE000 + i) for i, mark in enumerate(MARKS)}
_NEUTRAL = "\ue0ff"
_TWIN_RANGE = re.compile(f"[\ue000-{chr(0xE000 + len(MARKS) - 1)}]")
_TO_TWINS = str.maketrans(_TWINS)
assert all(re.fullmatch(f"[{_SUFFIX}]", mark) for mark in MARKS)

# The scans, as the definition writes them, and the one-character tests that replace them. "Only marks
# follow to the end" holds at q exactly when q is at the end or the character at q is a twin; the trail
# also refuses a first "." after a lone capital, which is a test of the two characters before q.
_EDGE_TWINS = "".join(_TWINS[mark] for mark in MARKS if re.fullmatch(f"[{_EDGE}]", mark))
_ALL_TWINS = "".join(_TWINS.values())
_DOT_TWIN = _TWINS["."]
_SCANS = {
    rf"[{_EDGE}][{_SUFFIX}]*(?:\s|$)": f"[{_EDGE_TWINS}]",
    _CHUNK_END: rf"(?=[{_ALL_TWINS}]|\s|$)",
    rf"{_TRAIL}(?:\s|$)": (
        rf"(?:\s|$|(?=[{_ALL_TWINS.replace(_DOT_TWIN, '')}])|(?:(?<=[A-Z][A-Z])|(?<![A-Z]))(?={_DOT_TWIN}))"
    ),
}


def _twin_literal(ch: str) -> str:
    """Return a pattern matching `ch` or, for a mark, its twin."""
    return f"[{re.escape(ch)}{_TWINS[ch]}]" if ch in _TWINS else re.escape(ch)


def _twinned_class(source: str, start: int) -> tuple[str, int]:
    """Return the character class opening at `source[start]` with the twins of its marks added, and the index
    after it."""
    i = start + 1
    if source[i] == "^":
        i += 1
    twins = []
    while source[i] != "]":
        if source[i] == "\\":
            if not source[i + 1].isalnum() and source[i + 1] in _TWINS:
                twins.append(_TWINS[source[i + 1]])
            i += 2
            continue
        if source[i] == "-" and source[i - 1] != "[" and source[i + 1] != "]":
            # a range: only between letters or digits here, which holds no mark
            assert source[i - 1].isalnum() and source[i + 1].isalnum(), source[start : i + 2]
        elif source[i] in _TWINS:
            twins.append(_TWINS[source[i]])
        i += 1
    return source[start:i] + "".join(twins) + "]", i + 1


def _twinned(source: str) -> str:
    """Return the pattern `source` with every mark it matches matching its twin as well (in a class, or as
    a literal outside one); its syntax (groups, lookarounds, quantifiers) is left as it is."""
    out, i = [], 0
    while i < len(source):
        ch = source[i]
        if ch == "\\":
            escaped = source[i + 1]
            out.append(source[i : i + 2] if escaped.isalnum() else _twin_literal(escaped))
            i += 2
        elif ch == "[":
            part, i = _twinned_class(source, i)
            out.append(part)
        elif ch == "(":
            syntax = re.match(r"\(\?(?:[:=!]|<[=!])|\(", source[i:]).group()
            out.append(syntax)
            i += len(syntax)
        elif ch == "{":
            quantifier = re.match(r"\{\d*,?\d*\}", source[i:]).group()
            out.append(quantifier)
            i += len(quantifier)
        elif ch in ")*+?|^$.":
            out.append(ch)
            i += 1
        else:
            out.append(_twin_literal(ch))
            i += 1
    return "".join(out)


def _linear(source: str) -> str:
    """Return the linear-time form of the pattern `source` (see the module's docstring)."""
    holes = {}
    for k, (scan, test) in enumerate(_SCANS.items()):
        hole = f"\\x00{k}\\x00"  # kept as it is by _twinned: neither a mark nor syntax
        source = source.replace(scan, hole)
        holes[hole] = test
    assert f"[{_SUFFIX}]*" not in source and _TRAIL not in source, "a scan to the chunk's end is left"
    source = _twinned(source)
    for hole, test in holes.items():
        source = source.replace(_twinned(hole), test)
    return source


_FAST_LINEAR = re.compile(_linear(_FAST_SOURCE))
_FULL_LINEAR = re.compile(_linear(_FULL_SOURCE))


# The definition's scans go over marks only, so on a chunk its time is O(length × longest run of marks): with
# no run longer than this, the definition itself is linear (measured at least 2.2 MB/s on the worst such
# chunks, against 1.9-3.5 for the twin form) and cheaper per chunk, so only longer runs take the twin form.
_SHORT_RUN = 4
_LONG_RUN = re.compile(f"[{_SUFFIX}]{{{_SHORT_RUN + 1}}}")


def chunk_words(chunk: str) -> list[str]:
    """Return `pattern_words(chunk)` for one chunk (a text with no whitespace), in time linear in it."""
    if len(chunk) <= _SHORT_RUN or _LONG_RUN.search(chunk) is None:
        return pattern_words(chunk)
    return twin_words(chunk)


def twin_words(chunk: str) -> list[str]:
    """Return `pattern_words(chunk)` for one chunk, by the pattern's linear-time form (on any chunk)."""
    mapped = (
        chunk if chunk.isascii() or _TWIN_RANGE.search(chunk) is None else _TWIN_RANGE.sub(_NEUTRAL, chunk)
    )
    core = mapped.rstrip(MARKS)  # the marks that end the chunk take their twins
    if len(core) < len(mapped):
        mapped = core + mapped[len(core) :].translate(_TO_TWINS)
    tokens = _FAST_LINEAR.findall(mapped)
    if not _SPLIT_WORD_SET.isdisjoint(tokens):
        tokens = _FULL_LINEAR.findall(mapped)
    if mapped is chunk:
        return tokens
    words, start = [], 0  # the same places, cut from the chunk itself
    for token in tokens:
        end = start + len(token)
        words.append(chunk[start:end])
        start = end
    return words
