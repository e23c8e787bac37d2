/* Gopher's word n-gram counts for one document, in C: the most frequent n-gram, and datatrove's walk over
repeated n-grams.

Words come in as two int64 arrays for a whole batch (each word's string hash and length) and a document
as its [start, end) range of words. An n-gram is identified by a 64-bit rolling hash of its words' hashes,
computed as the walk goes (two different n-grams sharing one count as equal: odds about m²/2⁶⁴ per
document of m words), and counted in an open-addressing table sized for the document, at most half full:
32 bytes per word of the document while the call runs. A table of up to 64K slots (1 MiB) is kept for the
next call; a larger one is freed when the call returns, so no document's memory outlives it.

The arrays must be one-dimensional, C-contiguous, 8-byte-aligned int64 buffers (numpy int64 arrays,
array('q')): anything else is refused, never reinterpreted; sizes must not be negative, and a count that
does not fit in int64 raises OverflowError. gopher_repetition.py holds the numpy twins of
both functions (same arguments, same answers, same errors); tests hold the two to each other. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static const uint64_t BASE = 0x9E3779B97F4A7C15ULL;

static uint64_t fmix64(uint64_t h) {
    h ^= h >> 33;
    h *= 0xFF51AFD7ED558CCDULL;
    h ^= h >> 33;
    h *= 0xC4CEB9FE1A85EC53ULL;
    h ^= h >> 33;
    return h ? h : 1; /* 0 marks an empty slot */
}

typedef struct {
    uint64_t key;
    uint32_t count;
    uint32_t first;
} Slot;

#define KEPT_SLOTS ((size_t)1 << 16)
static Slot *kept; /* the small table reused by every call (the GIL is held throughout) */

typedef struct {
    Slot *slots;
    size_t mask;
} Table;

/* Open an empty table for `positions` keys at most half full; -1 with MemoryError set on failure. */
static int table_open(Table *t, size_t positions) {
    size_t want = 16;
    while (want < 2 * positions) want <<= 1;
    if (want <= KEPT_SLOTS) {
        if (kept == NULL && (kept = PyMem_Calloc(KEPT_SLOTS, sizeof(Slot))) == NULL) goto nomemory;
        memset(kept, 0, want * sizeof(Slot));
        t->slots = kept;
    } else if ((t->slots = PyMem_Calloc(want, sizeof(Slot))) == NULL) {
        goto nomemory;
    }
    t->mask = want - 1;
    return 0;
nomemory:
    PyErr_NoMemory();
    return -1;
}

static void table_close(Table *t) {
    if (t->slots != kept) PyMem_Free(t->slots);
    t->slots = NULL;
}

/* The slot holding `key`, or the empty one where it goes. */
static Slot *find(const Table *t, uint64_t key) {
    size_t i = (size_t)key & t->mask;
    while (t->slots[i].key != 0 && t->slots[i].key != key) i = (i + 1) & t->mask;
    return &t->slots[i];
}

/* The rolling hash of the n-gram starting at each position of words[0:m), one position at a time. */
typedef struct {
    const int64_t *words;
    int n;
    uint64_t top; /* BASE^(n-1) */
    uint64_t h;   /* hash of the n-gram at `at`, before fmix64 */
    Py_ssize_t at;
} Roll;

static void roll_start(Roll *r, const int64_t *words, int n) {
    r->words = words;
    r->n = n;
    r->top = 1;
    for (int j = 1; j < n; j++) r->top *= BASE;
    r->h = 0;
    for (int j = 0; j < n; j++) r->h = r->h * BASE + (uint64_t)words[j];
    r->at = 0;
}

/* Move to the next position; the caller makes sure words[at + n] exists. */
static void roll_next(Roll *r) {
    r->h = (r->h - (uint64_t)r->words[r->at] * r->top) * BASE + (uint64_t)r->words[r->at + r->n];
    r->at++;
}

/* Get `obj`'s buffer into `view` if it is a one-dimensional, C-contiguous, 8-byte-aligned int64 buffer;
   otherwise -1 with TypeError (not int64) or ValueError (shape, layout) set, and no buffer held. */
static int int64_view(PyObject *obj, Py_buffer *view, const char *what) {
    if (PyObject_GetBuffer(obj, view, PyBUF_RECORDS_RO) < 0) return -1;
    const char *f = view->format != NULL ? view->format : "B";
    if (*f == '@' || *f == '=' || (*f == '<' && PY_LITTLE_ENDIAN)) f++;
    int is_int64 = view->itemsize == 8 && (strcmp(f, "q") == 0 || (sizeof(long) == 8 && strcmp(f, "l") == 0));
    if (!is_int64) {
        PyErr_Format(PyExc_TypeError, "%s must be an int64 array, not format '%s'",
                     what, view->format != NULL ? view->format : "B");
    } else if (view->ndim != 1 || !PyBuffer_IsContiguous(view, 'C')) {
        PyErr_Format(PyExc_ValueError, "%s must be one-dimensional and C-contiguous", what);
    } else if (view->len > 0 && ((uintptr_t)view->buf & 7) != 0) {
        PyErr_Format(PyExc_ValueError, "%s is not 8-byte aligned", what);
    } else {
        return 0;
    }
    PyBuffer_Release(view);
    return -1;
}

typedef struct {
    Py_buffer words, sizes;
    Py_ssize_t start, end;
    int n;
} Range;

/* Take both buffers and check them and the range; 0 when they fit (release both with range_close), -1
   with the error set and nothing held. */
static int range_open(Range *r, PyObject *words, PyObject *sizes) {
    if (int64_view(words, &r->words, "words") < 0) return -1;
    if (int64_view(sizes, &r->sizes, "sizes") < 0) {
        PyBuffer_Release(&r->words);
        return -1;
    }
    Py_ssize_t total = r->words.len / 8;
    if (r->words.len != r->sizes.len) {
        PyErr_SetString(PyExc_ValueError, "words and sizes must be int64 arrays of one length");
    } else if (r->start < 0 || r->end < r->start || r->end > total || r->n < 1) {
        PyErr_Format(PyExc_ValueError, "bad range [%zd, %zd) of %zd words for n = %d", r->start, r->end, total,
                     r->n);
    } else if ((uint64_t)(r->end - r->start) > UINT32_MAX) {
        PyErr_Format(PyExc_ValueError, "a document of %zd words is more than the counts hold", r->end - r->start);
    } else {
        const int64_t *lengths = (const int64_t *)r->sizes.buf;
        uint64_t bits = 0; /* the sign bit of any size: an OR the compiler vectorises */
        for (Py_ssize_t i = r->start; i < r->end; i++) bits |= (uint64_t)lengths[i];
        if ((bits >> 63) == 0) return 0;
        PyErr_SetString(PyExc_ValueError, "sizes must not be negative");
    }
    PyBuffer_Release(&r->words);
    PyBuffer_Release(&r->sizes);
    return -1;
}

static void range_close(Range *r) {
    PyBuffer_Release(&r->words);
    PyBuffer_Release(&r->sizes);
}

PyDoc_STRVAR(top_doc,
             "top_ngram_chars($module, words, sizes, start, end, n, /)\n--\n\n"
             "Count x length (words joined by spaces) of the most frequent n-gram of words[start:end]; ties\n"
             "go to the one seen first (datatrove's Counter.most_common(1)); 0 when it has fewer than n words.");

static PyObject *top_ngram_chars(PyObject *self, PyObject *args) {
    Range r;
    PyObject *words, *sizes;
    if (!PyArg_ParseTuple(args, "OOnni:top_ngram_chars", &words, &sizes, &r.start, &r.end, &r.n)) return NULL;
    if (range_open(&r, words, sizes) < 0) return NULL;
    PyObject *result = NULL;
    Py_ssize_t count = r.end - r.start - r.n + 1;
    if (count <= 0) {
        result = PyLong_FromLong(0);
        goto done;
    }
    Table t;
    if (table_open(&t, (size_t)count) < 0) goto done;
    Roll roll;
    roll_start(&roll, (const int64_t *)r.words.buf + r.start, r.n);
    Slot *best = NULL;
    for (Py_ssize_t i = 0; i < count; i++) {
        uint64_t key = fmix64(roll.h);
        Slot *s = find(&t, key);
        if (s->key == 0) {
            s->key = key;
            s->first = (uint32_t)i;
        }
        s->count++;
        if (best == NULL || s->count > best->count || (s->count == best->count && s->first < best->first)) best = s;
        if (i + 1 < count) roll_next(&roll);
    }
    const int64_t *lengths = (const int64_t *)r.sizes.buf + r.start + best->first;
    int64_t chars = r.n - 1, product;
    int overflow = 0;
    for (int j = 0; j < r.n; j++) overflow |= __builtin_add_overflow(chars, lengths[j], &chars);
    overflow |= __builtin_mul_overflow((int64_t)best->count, chars, &product);
    table_close(&t);
    if (overflow) {
        PyErr_SetString(PyExc_OverflowError, "the n-gram count overflows int64");
        goto done;
    }
    result = PyLong_FromLongLong(product);
done:
    range_close(&r);
    return result;
}

PyDoc_STRVAR(repeated_doc,
             "repeated_ngram_chars($module, words, sizes, start, end, n, stop_above, /)\n--\n\n"
             "Characters in repeated n-grams of words[start:end] as datatrove's walk counts them: an n-gram seen\n"
             "before adds its length (words joined without spaces) and the walk jumps n words, the n-grams it\n"
             "jumps over never seen; otherwise it is added and the walk moves one word. Returns as soon as the\n"
             "count passes stop_above.");

static PyObject *repeated_ngram_chars(PyObject *self, PyObject *args) {
    Range r;
    PyObject *words, *sizes;
    double stop_above;
    if (!PyArg_ParseTuple(args, "OOnnid:repeated_ngram_chars", &words, &sizes, &r.start, &r.end, &r.n,
                          &stop_above))
        return NULL;
    if (range_open(&r, words, sizes) < 0) return NULL;
    PyObject *result = NULL;
    Py_ssize_t count = r.end - r.start - r.n + 1;
    int64_t repeated = 0;
    if (count > 0) {
        Table t;
        if (table_open(&t, (size_t)count) < 0) goto done;
        Roll roll;
        roll_start(&roll, (const int64_t *)r.words.buf + r.start, r.n);
        const int64_t *lengths = (const int64_t *)r.sizes.buf + r.start;
        Py_ssize_t i = 0;
        while (i < count) {
            uint64_t key = fmix64(roll.h);
            Slot *s = find(&t, key);
            Py_ssize_t step = 1;
            if (s->key != 0) {
                int overflow = 0;
                for (int j = 0; j < r.n; j++) overflow |= __builtin_add_overflow(repeated, lengths[i + j], &repeated);
                if (overflow) {
                    table_close(&t);
                    PyErr_SetString(PyExc_OverflowError, "the n-gram count overflows int64");
                    goto done;
                }
                if ((double)repeated > stop_above) break;
                step = r.n;
            } else {
                s->key = key;
            }
            for (; step > 0 && i + 1 < count; step--, i++) roll_next(&roll);
            i += step; /* past the last position: the walk is over */
        }
        table_close(&t);
    }
    result = PyLong_FromLongLong(repeated);
done:
    range_close(&r);
    return result;
}

static PyMethodDef methods[] = {
    {"top_ngram_chars", top_ngram_chars, METH_VARARGS, top_doc},
    {"repeated_ngram_chars", repeated_ngram_chars, METH_VARARGS, repeated_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_ngrams", "Gopher's n-gram counts in C.", -1, methods};

PyMODINIT_FUNC PyInit__ngrams(void) { return PyModule_Create(&module); }
