"""Words too common to tell one text from another: English function words and frequent verbs, the keywords
and builtins of Python, number words, and single letters (choice labels, loop variables); numbers written
in digits count as common too.

An index key (an n-gram, or a short text matched whole) needs `min_rare_words` words outside this list, so
a window such as "it is one of the most important of all the", "for i in range len x if x i" or a
licence's "the above copyright notice and this permission notice shall be" never makes a match on its own.
"""

from __future__ import annotations

_ENGLISH = """
a about above after again against all almost also although always am among an and another any are around as
at back be became because become been before being below between both but by can cannot could did do does
doing done down during each either else enough even ever every few first for from further get gets getting
give given go goes going got had has have having he her here hers herself him himself his how however i if
in into is it its itself just last least less let like made make makes many may me might more most much
must my myself need never new next no nor not now of off often on once one only or other others our ours
ourselves out over own per put rather same second see seem seems several shall she should since so some
still such take than that the their theirs them themselves then there therefore these they this those
though three through thus to together too two under until up upon us use used uses using very was we well
were what whatever when where whether which while who whom whose why will with within without would yes
yet you your yours yourself yourselves
"""
_CODE = """
and as assert async await break class continue def del elif else except false finally for from global if
import in is lambda none nonlocal not or pass raise return self true try while with yield print len range
int str float bool list dict set tuple type object isinstance enumerate zip map filter sorted sum min max
abs open super init main name args kwargs typing optional any union callable value values key keys item
items result results x y z n m k i j
"""
_NUMBERS = """
zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen
seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred thousand million
billion first second third fourth fifth sixth seventh eighth ninth tenth
"""
_SINGLE = "abcdefghijklmnopqrstuvwxyz"

# Numbers written in digits are common too (index.py tells them by their characters).
COMMON_WORDS: frozenset[str] = frozenset((_ENGLISH + _CODE + _NUMBERS).split()) | frozenset(_SINGLE)
