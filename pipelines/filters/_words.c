/* The common chunks of `text_stats.words`, cut in C; every other chunk goes back to the regular expression.

`words(text)` depends only on each whitespace-separated chunk (no token spans whitespace and no lookaround
of the pattern tells whitespace from the text's edge), so a chunk may be cut on its own. This module cuts,
straight from the text, the chunks of plain ASCII shapes that make up most prose:

    open* core clitic? trail*

- open: a punctuation mark spaCy splits off a word's start ( ( [ { " # * $ = … , never ' );
- core: ASCII letters, or several runs of letters joined by 1-3 hyphens ("well-known"), or ASCII digits;
- clitic: 's 'S 'm 'd 're 've 'll after letters, or n't (the core then ends before the n);
- trail: the marks spaCy splits off a word's end, and "." .

Tokens come out exactly as the pattern cuts them: a mark per token unless two form one of the merged
emoticons or a run of dots; a final "." kept on a single letter ("a."), an abbreviation ("Mr.") or "www.",
and on a core ending in one capital after a non-capital ("xA.": spaCy's suffix rule). Chunks of any other
shape, and chunks whose core is a word spaCy splits ("cannot"), are handed in one call to the Python
fallback, which returns their tokens laid end to end; they are put back in place by their lengths.
tests/pipelines/test_words_native.py checks this module against the pattern token for token.

Every function owns what it reads: a list it is given is read from a private tuple from the first item that
could run Python code (a classifier, a `__len__` or `__hash__`) on, the fallback gets a tuple of the chunks
and its answer is copied, and `configure` builds the whole configuration aside and swaps it in only once
every part was accepted. Each walk is linear in the text. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define WORD 12 /* longest table word + 1 */

enum { OPEN = 1, TRAIL = 2, LETTER = 4, DIGIT = 8, UPPER = 16, PUNCTUATION = 32 };

/* A table of short ASCII words, looked up by length and first character. */
typedef struct {
    char words[64][WORD];
    uint64_t index[WORD][128]; /* bit k: words[k] has this length and first character */
} Table;

/* Everything `configure` sets: built and checked whole in a scratch copy, then swapped in at once, so a
   failing call leaves the previous configuration as it was. */
typedef struct {
    unsigned char classes[128];
    char merged[16][4]; /* merged emoticons and quotes, NUL-terminated, at most 3 characters */
    int n_merged;
    Table split, kept_dot; /* words spaCy splits though written without an apostrophe; cores that keep a
                              following ".": abbreviations and "www" */
    PyObject *fallback;    /* fallback(chunks: tuple[str]) -> list[str]: the pattern's words of the chunks */
    PyObject *classify;    /* classify(word) -> (symbol, has_letter) for a non-ASCII word */
} Config;

static Config config, scratch;
static int configured;

typedef struct {
    int kind;
    const void *data;
} Text;

static inline Py_UCS4 at(const Text *t, Py_ssize_t i) { return PyUnicode_READ(t->kind, t->data, i); }

static inline int has(const Text *t, Py_ssize_t i, int flag) {
    Py_UCS4 c = at(t, i);
    return c < 128 && (config.classes[c] & flag);
}

/* Whether text[a:b] is one of the table's words. */
static int in_table(const Table *table, const Text *t, Py_ssize_t a, Py_ssize_t b) {
    Py_ssize_t n = b - a;
    if (n >= WORD) return 0;
    Py_UCS4 first = at(t, a);
    if (first >= 128) return 0;
    for (uint64_t bits = table->index[n][first]; bits; bits &= bits - 1) {
        const char *w = table->words[__builtin_ctzll(bits)];
        Py_ssize_t i = 1;
        while (i < n && at(t, a + i) == (Py_UCS4)(unsigned char)w[i]) i++;
        if (i == n) return 1;
    }
    return 0;
}

/* Length of the merged form starting at text[i] (within [i, end)), or 0. */
static Py_ssize_t merged_at(const Text *t, Py_ssize_t i, Py_ssize_t end) {
    for (int k = 0; k < config.n_merged; k++) {
        const char *m = config.merged[k];
        Py_ssize_t n = (Py_ssize_t)strlen(m);
        if (i + n > end) continue;
        Py_ssize_t j = 0;
        while (j < n && at(t, i + j) == (Py_UCS4)(unsigned char)m[j]) j++;
        if (j == n) return n;
    }
    return 0;
}

/* The items a function reads: a list or tuple, borrowed until an item may run Python code (a callback, a
   `__len__` or `__hash__`), from which on the rest is read from a private tuple: no code can then change
   what is read. Until that point none has run, so the list is as it was given. */
typedef struct {
    PyObject *seq;     /* the caller's list or tuple (borrowed), or a tuple of its items from `offset` (owned) */
    Py_ssize_t offset; /* index, in the caller's sequence, of seq's first item */
    Py_ssize_t size;   /* items in the caller's sequence when the call began */
    int owned;
} Items;

static int items_open(Items *items, PyObject *seq, const char *function) {
    if (!PyList_Check(seq) && !PyTuple_Check(seq)) {
        PyErr_Format(PyExc_TypeError, "%s() expected a list or tuple, not %.100s", function, Py_TYPE(seq)->tp_name);
        return -1;
    }
    items->seq = seq;
    items->offset = 0;
    items->size = PySequence_Fast_GET_SIZE(seq);
    items->owned = 0;
    return 0;
}

static inline PyObject *items_get(const Items *items, Py_ssize_t i) {
    return PySequence_Fast_GET_ITEM(items->seq, i - items->offset);
}

/* Before item i may run code: read items i… from a private tuple from now on; -1 on error. */
static int items_own(Items *items, Py_ssize_t i) {
    if (items->owned || PyTuple_Check(items->seq)) return 0;
    PyObject *rest = PyList_GetSlice(items->seq, i, items->size);
    if (rest == NULL) return -1;
    PyObject *tuple = PyList_AsTuple(rest);
    Py_DECREF(rest);
    if (tuple == NULL) return -1;
    items->seq = tuple;
    items->offset = i;
    items->owned = 1;
    return 0;
}

static void items_close(Items *items) {
    if (items->owned) Py_DECREF(items->seq);
}

/* A private tuple of the items of a list or tuple (a new reference; NULL with TypeError for any other type). */
static PyObject *owned_items(PyObject *seq, const char *function) {
    Items items;
    if (items_open(&items, seq, function) < 0) return NULL;
    if (PyTuple_Check(seq)) {
        Py_INCREF(seq);
        return seq;
    }
    return PyList_AsTuple(seq);
}

/* The last word seen per slot, by a hash of its bytes: common words come back as the same str object,
   with no allocation and their hash already computed (the n-gram ids and stop words need it). */
#define CACHED_WORDS 65536
#define CACHED_LONGEST 24
static PyObject *cached_words[CACHED_WORDS];

/* Return a new reference to text[a:b] of a one-byte-per-character text, from the cache when it holds it. */
static PyObject *cached_substring(PyObject *text, const Py_UCS1 *s, Py_ssize_t a, Py_ssize_t b) {
    Py_ssize_t n = b - a;
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (Py_ssize_t i = 0; i < n; i++) h = (h ^ s[a + i]) * 1099511628211ULL;
    PyObject **slot = &cached_words[(h ^ (h >> 32)) & (CACHED_WORDS - 1)];
    PyObject *hit = *slot;
    if (hit != NULL && PyUnicode_GET_LENGTH(hit) == n && memcmp(PyUnicode_1BYTE_DATA(hit), s + a, n) == 0) {
        Py_INCREF(hit);
        return hit;
    }
    PyObject *token = PyUnicode_Substring(text, a, b);
    if (token != NULL) {
        Py_INCREF(token);
        Py_XSETREF(*slot, token);
    }
    return token;
}

/* Append text[a:b] to `out`; -1 on error. */
static int emit(PyObject *text, const Text *t, PyObject *out, Py_ssize_t a, Py_ssize_t b) {
    PyObject *token = t->kind == PyUnicode_1BYTE_KIND && b - a > 1 && b - a <= CACHED_LONGEST
                          ? cached_substring(text, (const Py_UCS1 *)t->data, a, b)
                          : PyUnicode_Substring(text, a, b);
    if (token == NULL) return -1;
    int rc = PyList_Append(out, token);
    Py_DECREF(token);
    return rc;
}

/* Append the tokens of a run of marks text[a:b]: merged forms and runs of dots whole, others one each. */
static int emit_marks(PyObject *text, const Text *t, PyObject *out, Py_ssize_t a, Py_ssize_t b) {
    Py_ssize_t i = a;
    while (i < b) {
        Py_ssize_t n = merged_at(t, i, b);
        if (n == 0 && at(t, i) == '.') {
            n = 1;
            while (i + n < b && at(t, i + n) == '.') n++;
        }
        if (n == 0) n = 1;
        if (emit(text, t, out, i, i + n) < 0) return -1;
        i += n;
    }
    return 0;
}

/* Cut the chunk text[a:b] if it has one of the shapes above: append its tokens and return 1; return 0
   (appending nothing) for any other chunk; -1 on error. */
static int cut_chunk(PyObject *text, const Text *t, PyObject *out, Py_ssize_t a, Py_ssize_t b) {
    if (b - a == 1) return emit(text, t, out, a, b) < 0 ? -1 : 1; /* one character: one token */
    Py_ssize_t p = a;
    while (p < b && has(t, p, OPEN)) p++;
    Py_ssize_t core = p;
    if (p == b) return 0;
    Py_ssize_t seams[8][2]; /* [start, end) of each hyphen run between letter runs */
    int n_seams = 0;
    int letters = has(t, p, LETTER);
    Py_ssize_t run = p; /* start of the last letter run */
    if (letters) {
        for (;;) {
            run = p;
            while (p < b && has(t, p, LETTER)) p++;
            if (in_table(&config.split, t, run, p)) return 0;
            Py_ssize_t h = p;
            while (h < b && at(t, h) == '-') h++;
            if (h == p || h - p > 3 || h == b || !has(t, h, LETTER)) break;
            if (n_seams == 8) return 0;
            seams[n_seams][0] = p;
            seams[n_seams][1] = h;
            n_seams++;
            p = h;
        }
    } else if (has(t, p, DIGIT)) {
        while (p < b && has(t, p, DIGIT)) p++;
    } else {
        return 0;
    }
    Py_ssize_t core_end = p, clitic_end = p;
    if (letters && n_seams == 0 && p < b && at(t, p) == '\'' && p + 1 < b && has(t, p + 1, LETTER)) {
        Py_UCS4 c1 = at(t, p + 1), c2 = p + 2 < b ? at(t, p + 2) : 0;
        if (c1 == 's' || c1 == 'S' || c1 == 'm' || c1 == 'd')
            clitic_end = p + 2;
        else if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l'))
            clitic_end = p + 3;
        else if (c1 == 't' && p - 1 > run && at(t, p - 1) == 'n') {
            core_end = p - 1;
            if (in_table(&config.split, t, run, core_end)) return 0;
            clitic_end = p + 2;
        } else
            return 0;
    }
    for (Py_ssize_t i = clitic_end; i < b; i++)
        if (!has(t, i, TRAIL)) return 0;
    int dot = clitic_end < b && at(t, clitic_end) == '.';
    /* What the final "." does: 0 splits off, 1 stays on the core, -1 a case left to the pattern. */
    int keep = 0;
    if (dot) {
        if (clitic_end > core_end) {
            keep = at(t, clitic_end - 1) == 'S' ? -1 : 0;
        } else if (!letters) {
            keep = 0;
        } else if (n_seams) {
            keep = -1;
        } else if (core_end - core == 1 || in_table(&config.kept_dot, t, core, core_end)) {
            keep = 1;
        } else if (has(t, core_end - 1, UPPER) && !has(t, core_end - 2, UPPER)) {
            /* a lone capital: "." stays on unless a run of dots follows (an infix ends the core) */
            keep = clitic_end + 1 < b && at(t, clitic_end + 1) == '.' ? 0 : 1;
        }
    }
    if (keep < 0) return 0;
    if (emit_marks(text, t, out, a, core) < 0) return -1;
    Py_ssize_t start = core;
    for (int k = 0; k < n_seams; k++) {
        if (emit(text, t, out, start, seams[k][0]) < 0 || emit(text, t, out, seams[k][0], seams[k][1]) < 0) return -1;
        start = seams[k][1];
    }
    if (keep) {
        if (emit(text, t, out, start, core_end + 1) < 0) return -1;
        return emit_marks(text, t, out, core_end + 1, b) < 0 ? -1 : 1;
    }
    if (emit(text, t, out, start, core_end) < 0) return -1;
    if (clitic_end > core_end && emit(text, t, out, core_end, clitic_end) < 0) return -1;
    return emit_marks(text, t, out, clitic_end, b) < 0 ? -1 : 1;
}

/* Put the fallback's tokens in place of the None left for each chunk it cut, by the chunks' lengths.
   `out` and `chunks` are this call's own lists; `tokens` is a private copy of what the fallback returned. */
static PyObject *merge(PyObject *out, PyObject *chunks, PyObject *tokens) {
    Py_ssize_t n_out = PyList_GET_SIZE(out), n_tokens = PyList_GET_SIZE(tokens);
    Py_ssize_t n_chunks = PyList_GET_SIZE(chunks);
    PyObject *merged_list = PyList_New(0);
    if (merged_list == NULL) return NULL;
    Py_ssize_t next = 0, chunk = 0;
    for (Py_ssize_t i = 0; i < n_out; i++) {
        PyObject *item = PyList_GET_ITEM(out, i);
        if (item != Py_None) {
            if (PyList_Append(merged_list, item) < 0) goto fail;
            continue;
        }
        if (chunk == n_chunks) goto mismatch;
        Py_ssize_t want = PyUnicode_GET_LENGTH(PyList_GET_ITEM(chunks, chunk++)), got = 0;
        while (got < want && next < n_tokens) {
            PyObject *token = PyList_GET_ITEM(tokens, next++);
            if (!PyUnicode_Check(token)) {
                PyErr_SetString(PyExc_TypeError, "the fallback must return a list of str");
                goto fail;
            }
            got += PyUnicode_GET_LENGTH(token);
            if (PyList_Append(merged_list, token) < 0) goto fail;
        }
        if (got != want) goto mismatch;
    }
    if (next != n_tokens || chunk != n_chunks) goto mismatch;
    return merged_list;
mismatch:
    PyErr_SetString(PyExc_RuntimeError, "the fallback's tokens do not cover the chunks it was given");
fail:
    Py_DECREF(merged_list);
    return NULL;
}

static int check_configured(void) {
    if (configured) return 0;
    PyErr_SetString(PyExc_RuntimeError, "configure() was not called");
    return -1;
}

PyDoc_STRVAR(words_doc,
             "words($module, text, /)\n--\n\n"
             "The words of `text` as `text_stats.words` cuts them: common chunks here, the others by the\n"
             "configured fallback, given them in one tuple, which returns their tokens laid end to end.");

static PyObject *words(PyObject *self, PyObject *text) {
    if (!PyUnicode_Check(text)) {
        PyErr_Format(PyExc_TypeError, "words() takes a str, not %.100s", Py_TYPE(text)->tp_name);
        return NULL;
    }
    if (check_configured() < 0 || PyUnicode_READY(text) < 0) return NULL;
    Text t = {PyUnicode_KIND(text), PyUnicode_DATA(text)};
    Py_ssize_t n = PyUnicode_GET_LENGTH(text), i = 0;
    PyObject *out = PyList_New(0), *chunks = PyList_New(0), *result = NULL;
    if (out == NULL || chunks == NULL) goto done;
    while (i < n) {
        while (i < n && Py_UNICODE_ISSPACE(at(&t, i))) i++;
        if (i == n) break;
        Py_ssize_t a = i;
        while (i < n && !Py_UNICODE_ISSPACE(at(&t, i))) i++;
        int cut = cut_chunk(text, &t, out, a, i);
        if (cut < 0) goto done;
        if (cut == 0) {
            PyObject *chunk = PyUnicode_Substring(text, a, i);
            if (chunk == NULL) goto done;
            int rc = PyList_Append(chunks, chunk);
            Py_DECREF(chunk);
            if (rc < 0 || PyList_Append(out, Py_None) < 0) goto done;
        }
    }
    if (PyList_GET_SIZE(chunks) == 0) {
        result = out;
        out = NULL;
        goto done;
    }
    /* The fallback sees a tuple (it cannot change our list) and we read a copy of its answer. */
    PyObject *given = PyList_AsTuple(chunks);
    if (given == NULL) goto done;
    PyObject *fallback = config.fallback;
    Py_INCREF(fallback); /* a configure() run by the fallback must not free it under us */
    PyObject *tokens = PyObject_CallOneArg(fallback, given);
    Py_DECREF(fallback);
    Py_DECREF(given);
    if (tokens == NULL) goto done;
    if (!PyList_Check(tokens)) {
        PyErr_SetString(PyExc_TypeError, "the fallback must return a list of str");
        Py_DECREF(tokens);
        goto done;
    }
    PyObject *copy = PyList_GetSlice(tokens, 0, PyList_GET_SIZE(tokens));
    Py_DECREF(tokens);
    if (copy == NULL) goto done;
    result = merge(out, chunks, copy);
    Py_DECREF(copy);
done:
    Py_XDECREF(out);
    Py_XDECREF(chunks);
    return result;
}

PyDoc_STRVAR(word_counts_doc,
             "word_counts($module, tokens, /)\n--\n\n"
             "(symbol_words, letter_words, content_chars) over a list or tuple of words: the words made only\n"
             "of punctuation (an empty word counts as one), the words holding a letter, and the characters\n"
             "of the words that are not only punctuation. ASCII words are classed here; the configured\n"
             "`classify(word)` returns (symbol, has_letter) for the others.");

static PyObject *word_counts(PyObject *self, PyObject *seq) {
    if (check_configured() < 0) return NULL;
    Items tokens;
    if (items_open(&tokens, seq, "word_counts") < 0) return NULL;
    PyObject *classify = config.classify;
    Py_INCREF(classify);
    PyObject *result = NULL;
    Py_ssize_t symbols = 0, letters = 0, content = 0;
    for (Py_ssize_t k = 0; k < tokens.size; k++) {
        PyObject *token = items_get(&tokens, k);
        if (!PyUnicode_Check(token)) {
            PyErr_SetString(PyExc_TypeError, "words must be str");
            goto done;
        }
        Py_ssize_t size = PyUnicode_GET_LENGTH(token);
        int symbol = 1, letter = 0;
        if (PyUnicode_IS_ASCII(token)) {
            const unsigned char *s = PyUnicode_1BYTE_DATA(token);
            for (Py_ssize_t i = 0; i < size; i++) {
                symbol &= (config.classes[s[i]] & PUNCTUATION) != 0;
                letter |= (config.classes[s[i]] & LETTER) != 0;
            }
        } else {
            if (items_own(&tokens, k) < 0) goto done; /* classify may run any code */
            token = items_get(&tokens, k);
            PyObject *answer = PyObject_CallOneArg(classify, token);
            if (answer == NULL) goto done;
            int ok = PyArg_ParseTuple(answer, "pp", &symbol, &letter);
            Py_DECREF(answer);
            if (!ok) goto done;
        }
        symbols += symbol;
        letters += letter;
        content += symbol ? 0 : size;
    }
    result = Py_BuildValue("nnn", symbols, letters, content);
done:
    Py_DECREF(classify);
    items_close(&tokens);
    return result;
}

/* An int64 per item of a list or tuple, in a bytearray (numpy reads it without a copy); `of` returns -1 with
   an exception set on error. Exact str items run no code; from the first other item on, items are read from
   a private tuple, so `of` may run any Python code. */
static PyObject *per_item(PyObject *seq, int64_t (*of)(PyObject *), const char *function) {
    Items items;
    if (items_open(&items, seq, function) < 0) return NULL;
    PyObject *out = PyByteArray_FromStringAndSize(NULL, items.size * (Py_ssize_t)sizeof(int64_t));
    for (Py_ssize_t i = 0; out != NULL && i < items.size; i++) {
        PyObject *item = items_get(&items, i);
        if (!PyUnicode_CheckExact(item)) {
            if (items_own(&items, i) < 0) {
                Py_CLEAR(out);
                break;
            }
            item = items_get(&items, i);
        }
        int64_t value = of(item);
        if (value == -1 && PyErr_Occurred()) {
            Py_CLEAR(out);
            break;
        }
        ((int64_t *)PyByteArray_AS_STRING(out))[i] = value;
    }
    items_close(&items);
    return out;
}

static int64_t length_of(PyObject *item) {
    return PyUnicode_Check(item) ? PyUnicode_GET_LENGTH(item) : PyObject_Length(item);
}

static int64_t hash_of(PyObject *item) { return PyObject_Hash(item); }

PyDoc_STRVAR(lengths_doc,
             "lengths($module, items, /)\n--\n\nThe len() of each item of a list or tuple, as native int64s in a "
             "bytearray.");

static PyObject *lengths(PyObject *self, PyObject *items) { return per_item(items, length_of, "lengths"); }

PyDoc_STRVAR(hashes_doc,
             "hashes($module, items, /)\n--\n\nThe hash() of each item of a list or tuple, as native int64s in a "
             "bytearray.");

static PyObject *hashes(PyObject *self, PyObject *items) { return per_item(items, hash_of, "hashes"); }

/* Copy the ASCII strings of a sequence into `rows` × `width` chars (each shorter than width); return
   their count, or -1 on error. */
static int copy_words(PyObject *seq, char *rows, int n_rows, int width, const char *what) {
    PyObject *items = owned_items(seq, "configure");
    if (items == NULL) return -1;
    Py_ssize_t n = PyTuple_GET_SIZE(items);
    if (n > n_rows) {
        PyErr_Format(PyExc_ValueError, "too many %s (%zd > %d)", what, n, n_rows);
        Py_DECREF(items);
        return -1;
    }
    memset(rows, 0, (size_t)n_rows * width);
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *item = PyTuple_GET_ITEM(items, k);
        Py_ssize_t size = 0;
        const char *s = PyUnicode_Check(item) && PyUnicode_IS_ASCII(item) ? PyUnicode_AsUTF8AndSize(item, &size)
                                                                          : NULL;
        if (s == NULL || size == 0 || size >= width) {
            if (!PyErr_Occurred()) PyErr_Format(PyExc_ValueError, "%s must be ASCII str under %d", what, width);
            Py_DECREF(items);
            return -1;
        }
        memcpy(rows + k * width, s, size + 1);
    }
    Py_DECREF(items);
    return (int)n;
}

static int fill_table(Table *table, PyObject *seq, const char *what) {
    memset(table, 0, sizeof *table);
    int n = copy_words(seq, &table->words[0][0], 64, WORD, what);
    for (int k = 0; k < n; k++) {
        const char *w = table->words[k];
        table->index[strlen(w)][(unsigned char)w[0]] |= (uint64_t)1 << k;
    }
    return n < 0 ? -1 : 0;
}

static int mark(unsigned char *classes, PyObject *chars, int flag) {
    if (!PyUnicode_Check(chars) || !PyUnicode_IS_ASCII(chars)) {
        PyErr_SetString(PyExc_ValueError, "character classes must be ASCII str");
        return -1;
    }
    Py_ssize_t size;
    const char *s = PyUnicode_AsUTF8AndSize(chars, &size); /* may hold NUL: the control characters */
    if (s == NULL) return -1;
    for (Py_ssize_t i = 0; i < size; i++) classes[(unsigned char)s[i]] |= flag;
    return 0;
}

PyDoc_STRVAR(configure_doc,
             "configure($module, open, trail, punctuation, merged, kept_dot, split, fallback, classify, /)\n--\n\n"
             "Set the ASCII marks that open and end a word, the merged forms, the cores that keep a final\n"
             "'.', the words spaCy splits, the fallback that cuts the other chunks, and the classifier of\n"
             "non-ASCII words; text_stats derives them from its pattern's own constants. All or nothing: a\n"
             "call that fails leaves the previous configuration in place.");

static PyObject *configure(PyObject *self, PyObject *args) {
    PyObject *open, *trail, *punctuation, *merged_forms, *kept, *split_words, *fallback, *classify;
    if (!PyArg_ParseTuple(args, "OOOOOOOO:configure", &open, &trail, &punctuation, &merged_forms, &kept,
                          &split_words, &fallback, &classify))
        return NULL;
    if (!PyCallable_Check(fallback) || !PyCallable_Check(classify)) {
        PyErr_SetString(PyExc_TypeError, "configure(): fallback and classify must be callable");
        return NULL;
    }
    Config *next = &scratch;
    memset(next->classes, 0, sizeof next->classes);
    for (int c = 'a'; c <= 'z'; c++) next->classes[c] |= LETTER;
    for (int c = 'A'; c <= 'Z'; c++) next->classes[c] |= LETTER | UPPER;
    for (int c = '0'; c <= '9'; c++) next->classes[c] |= DIGIT;
    if (mark(next->classes, open, OPEN) < 0 || mark(next->classes, trail, TRAIL) < 0 ||
        mark(next->classes, punctuation, PUNCTUATION) < 0)
        return NULL;
    next->n_merged = copy_words(merged_forms, &next->merged[0][0], 16, 4, "merged forms");
    if (next->n_merged < 0 || fill_table(&next->kept_dot, kept, "cores that keep a dot") < 0 ||
        fill_table(&next->split, split_words, "split words") < 0)
        return NULL;
    /* Everything checked: swap it in. The old callables are released last (their finalizers may run code). */
    PyObject *old_fallback = config.fallback, *old_classify = config.classify;
    Py_INCREF(fallback);
    Py_INCREF(classify);
    next->fallback = fallback;
    next->classify = classify;
    config = *next;
    configured = 1;
    Py_XDECREF(old_fallback);
    Py_XDECREF(old_classify);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"words", words, METH_O, words_doc},
    {"word_counts", word_counts, METH_O, word_counts_doc},
    {"lengths", lengths, METH_O, lengths_doc},
    {"hashes", hashes, METH_O, hashes_doc},
    {"configure", configure, METH_VARARGS, configure_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_words", "Common word chunks cut in C.", -1, methods};

PyMODINIT_FUNC PyInit__words(void) { return PyModule_Create(&module); }
