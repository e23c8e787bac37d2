/* Gopher's word n-gram counts for one document, in C: the most frequent n-gram, and datatrove's walk over
repeated n-grams.

Words come in as two int64 arrays for a whole batch (each word's string hash and length) and a document
as its [start, end) range of words. An n-gram is identified by a 64-bit rolling hash of its words' hashes
(two different n-grams sharing one count as equal: odds about m²/2⁶⁴ per document of m words), and
counted in an open-addressing table sized for the document. gopher_repetition.py holds the same counts in
numpy, used where this module was not built; tests hold the two to the same answers. */

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
    int64_t count;
    int64_t first;
} Slot;

/* One table reused by every call (the GIL is held throughout), grown to the largest document seen. */
static Slot *slots;
static size_t capacity;

/* Empty the table, sized for `positions` keys at most half full; return its index mask, 0 on error. */
static size_t prepare_table(size_t positions) {
    size_t want = 16;
    while (want < 2 * positions) want <<= 1;
    if (want > capacity) {
        Slot *grown = PyMem_Realloc(slots, want * sizeof(Slot));
        if (grown == NULL) {
            PyErr_NoMemory();
            return 0;
        }
        slots = grown;
        capacity = want;
    }
    memset(slots, 0, want * sizeof(Slot));
    return want - 1;
}

/* The slot holding `key`, or the empty one where it goes. */
static Slot *find(uint64_t key, size_t mask) {
    size_t i = (size_t)key & mask;
    while (slots[i].key != 0 && slots[i].key != key) i = (i + 1) & mask;
    return &slots[i];
}

/* Hash of each n-gram starting in [start, end - n], written to out (rolling: one multiply-add per word). */
static void ngram_keys(const int64_t *words, Py_ssize_t start, Py_ssize_t end, int n, uint64_t *out) {
    uint64_t top = 1; /* BASE^(n-1) */
    for (int j = 1; j < n; j++) top *= BASE;
    uint64_t h = 0;
    for (int j = 0; j < n; j++) h = h * BASE + (uint64_t)words[start + j];
    Py_ssize_t count = end - start - n + 1;
    for (Py_ssize_t i = 0; i < count; i++) {
        out[i] = fmix64(h);
        if (i + 1 < count) h = (h - (uint64_t)words[start + i] * top) * BASE + (uint64_t)words[start + i + n];
    }
}

typedef struct {
    Py_buffer words, sizes;
    Py_ssize_t start, end;
    int n;
} Range;

/* Check the parsed arrays and range; 0 when they fit, -1 with ValueError set. */
static int parse_range(Range *r) {
    if (r->words.len != r->sizes.len || r->words.len % 8) {
        PyErr_SetString(PyExc_ValueError, "words and sizes must be int64 arrays of one length");
        return -1;
    }
    Py_ssize_t total = r->words.len / 8;
    if (r->start < 0 || r->end < r->start || r->end > total || r->n < 1) {
        PyErr_Format(PyExc_ValueError, "bad range [%zd, %zd) of %zd words for n = %d", r->start, r->end, total,
                     r->n);
        return -1;
    }
    return 0;
}

static uint64_t *keys_for(const Range *r, Py_ssize_t count) {
    uint64_t *keys = PyMem_Malloc((size_t)(count ? count : 1) * sizeof(uint64_t));
    if (keys == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    ngram_keys((const int64_t *)r->words.buf, r->start, r->end, r->n, keys);
    return keys;
}

PyDoc_STRVAR(top_doc,
             "top_ngram_chars(words, sizes, start, end, n) -> int\n\n"
             "Count x length (words joined by spaces) of the most frequent n-gram of words[start:end]; ties\n"
             "go to the one seen first (datatrove's Counter.most_common(1)); 0 when it has fewer than n words.");

static PyObject *top_ngram_chars(PyObject *self, PyObject *args) {
    Range r;
    if (!PyArg_ParseTuple(args, "y*y*nni:top_ngram_chars", &r.words, &r.sizes, &r.start, &r.end, &r.n)) return NULL;
    PyObject *result = NULL;
    uint64_t *keys = NULL;
    if (parse_range(&r) < 0) goto done;
    Py_ssize_t count = r.end - r.start - r.n + 1;
    if (count <= 0) {
        result = PyLong_FromLong(0);
        goto done;
    }
    size_t mask;
    if ((keys = keys_for(&r, count)) == NULL || (mask = prepare_table((size_t)count)) == 0) goto done;
    Slot *best = NULL;
    for (Py_ssize_t i = 0; i < count; i++) {
        Slot *s = find(keys[i], mask);
        if (s->key == 0) {
            s->key = keys[i];
            s->first = i;
        }
        s->count++;
        if (best == NULL || s->count > best->count || (s->count == best->count && s->first < best->first)) best = s;
    }
    const int64_t *sizes = (const int64_t *)r.sizes.buf;
    int64_t chars = r.n - 1;
    for (int j = 0; j < r.n; j++) chars += sizes[r.start + best->first + j];
    result = PyLong_FromLongLong(best->count * chars);
done:
    PyMem_Free(keys);
    PyBuffer_Release(&r.words);
    PyBuffer_Release(&r.sizes);
    return result;
}

PyDoc_STRVAR(repeated_doc,
             "repeated_ngram_chars(words, sizes, start, end, n, stop_above) -> int\n\n"
             "Characters in repeated n-grams of words[start:end] as datatrove's walk counts them: an n-gram seen\n"
             "before adds its length (words joined without spaces) and the walk jumps n words, the n-grams it\n"
             "jumps over never seen; otherwise it is added and the walk moves one word. Returns as soon as the\n"
             "count passes stop_above.");

static PyObject *repeated_ngram_chars(PyObject *self, PyObject *args) {
    Range r;
    double stop_above;
    if (!PyArg_ParseTuple(args, "y*y*nnid:repeated_ngram_chars", &r.words, &r.sizes, &r.start, &r.end, &r.n,
                          &stop_above))
        return NULL;
    PyObject *result = NULL;
    uint64_t *keys = NULL;
    if (parse_range(&r) < 0) goto done;
    Py_ssize_t count = r.end - r.start - r.n + 1;
    int64_t repeated = 0;
    if (count > 0) {
        size_t mask;
        if ((keys = keys_for(&r, count)) == NULL || (mask = prepare_table((size_t)count)) == 0) goto done;
        const int64_t *sizes = (const int64_t *)r.sizes.buf + r.start;
        Py_ssize_t i = 0;
        while (i < count) {
            Slot *s = find(keys[i], mask);
            if (s->key != 0) {
                for (int j = 0; j < r.n; j++) repeated += sizes[i + j];
                if ((double)repeated > stop_above) break;
                i += r.n;
            } else {
                s->key = keys[i];
                i++;
            }
        }
    }
    result = PyLong_FromLongLong(repeated);
done:
    PyMem_Free(keys);
    PyBuffer_Release(&r.words);
    PyBuffer_Release(&r.sizes);
    return result;
}

static PyMethodDef methods[] = {
    {"top_ngram_chars", top_ngram_chars, METH_VARARGS, top_doc},
    {"repeated_ngram_chars", repeated_ngram_chars, METH_VARARGS, repeated_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_ngrams", "Gopher's n-gram counts in C.", -1, methods};

PyMODINIT_FUNC PyInit__ngrams(void) { return PyModule_Create(&module); }
