/* Decontamination's hot path in C: a text's normalised words, and the index keys found among them.

`words(text)` cuts a str into words (maximal runs of characters that are alphanumeric once lower-cased,
Python's `str.isalnum`; case folded by each character's simple lower-case mapping, so offsets stay those of
`text`) and hashes each: FNV-1a over its first 64 lower-cased code points, finished with its length and a
64-bit mix. `probe(...)` rolls the keys of every window of the given word counts over those hashes and looks
each up in the index's open-addressing table, behind a blocked Bloom filter per kind of key. words.py holds
the same arithmetic in Python and numpy, used where this module was not built; tests hold the two to the same
answers, over every code point. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define FNV_OFFSET 0xCBF29CE484222325ULL
#define FNV_PRIME 0x100000001B3ULL
#define LENGTH_MIX 0x9E3779B97F4A7C15ULL
#define BASE 0x9E3779B97F4A7C15ULL
#define WINDOW_MIX 0xD6E8FEB86659FD93ULL
#define HASHED_CHARS 64
#define MAX_LENGTHS 64

static uint64_t fmix64(uint64_t h) {
    h ^= h >> 33;
    h *= 0xFF51AFD7ED558CCDULL;
    h ^= h >> 33;
    h *= 0xC4CEB9FE1A85EC53ULL;
    h ^= h >> 33;
    return h;
}

/* The key of a window whose hashes sum (times powers of BASE) to `sum`, of `length` words; never 0 (0 marks
   an empty slot of the table). */
static uint64_t window_key(uint64_t sum, int length) {
    uint64_t key = fmix64(sum ^ ((uint64_t)length * WINDOW_MIX));
    return key ? key : 1;
}

/* A tuple of three bytes objects holding `count` 8-byte values from each array (b"" when there are none). */
static PyObject *three_arrays(const void *a, const void *b, const void *c, Py_ssize_t count) {
    static const char none[1] = {0};
    return Py_BuildValue("(y#y#y#)", a ? (const char *)a : none, count * 8, b ? (const char *)b : none, count * 8,
                         c ? (const char *)c : none, count * 8);
}

/* ASCII: alphanumeric, and lower case. */
static unsigned char ascii_alnum[128];

typedef struct {
    uint64_t *hashes;
    int64_t *starts, *ends;
    Py_ssize_t count, capacity;
} Words;

static int push(Words *w, uint64_t hash, Py_ssize_t start, Py_ssize_t end) {
    if (w->count == w->capacity) {
        Py_ssize_t grown = w->capacity ? 2 * w->capacity : 256;
        uint64_t *h = PyMem_Realloc(w->hashes, grown * sizeof(uint64_t));
        if (h == NULL) return -1;
        w->hashes = h;
        int64_t *s = PyMem_Realloc(w->starts, grown * sizeof(int64_t));
        if (s == NULL) return -1;
        w->starts = s;
        int64_t *e = PyMem_Realloc(w->ends, grown * sizeof(int64_t));
        if (e == NULL) return -1;
        w->ends = e;
        w->capacity = grown;
    }
    w->hashes[w->count] = hash;
    w->starts[w->count] = start;
    w->ends[w->count] = end;
    w->count++;
    return 0;
}

/* One loop per character width, so the compiler sees plain arrays. */
#define CUT_WORDS(TYPE)                                                                         \
    static int cut_##TYPE(const TYPE *data, Py_ssize_t n, Words *w) {                           \
        Py_ssize_t start = -1, length = 0;                                                      \
        uint64_t h = 0;                                                                         \
        for (Py_ssize_t i = 0; i <= n; i++) {                                                   \
            Py_UCS4 c = 0, lower = 0;                                                           \
            int alnum = 0;                                                                      \
            if (i < n) {                                                                        \
                c = data[i];                                                                    \
                if (c < 128) {                                                                  \
                    alnum = ascii_alnum[c];                                                     \
                    lower = (c >= 'A' && c <= 'Z') ? c + 32 : c;                                \
                } else {                                                                        \
                    lower = Py_UNICODE_TOLOWER(c);                                              \
                    alnum = Py_UNICODE_ISALNUM(lower);                                          \
                }                                                                               \
            }                                                                                   \
            if (alnum) {                                                                        \
                if (start < 0) {                                                                \
                    start = i;                                                                  \
                    length = 0;                                                                 \
                    h = FNV_OFFSET;                                                             \
                }                                                                               \
                if (length < HASHED_CHARS) h = (h ^ (uint64_t)lower) * FNV_PRIME;               \
                length++;                                                                       \
            } else if (start >= 0) {                                                            \
                if (push(w, fmix64(h ^ ((uint64_t)length * LENGTH_MIX)), start, i) < 0) return -1; \
                start = -1;                                                                     \
            }                                                                                   \
        }                                                                                       \
        return 0;                                                                               \
    }

CUT_WORDS(Py_UCS1)
CUT_WORDS(Py_UCS2)
CUT_WORDS(Py_UCS4)

PyDoc_STRVAR(words_doc,
             "words(text) -> (hashes, starts, ends)\n\n"
             "The normalised words of `text` as three bytes objects: uint64 hashes, and int64 start and end\n"
             "character offsets in `text`.");

static PyObject *words(PyObject *self, PyObject *arg) {
    if (!PyUnicode_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "words() takes a str");
        return NULL;
    }
    if (PyUnicode_READY(arg) < 0) return NULL;
    Words w = {NULL, NULL, NULL, 0, 0};
    int kind = PyUnicode_KIND(arg), failed;
    Py_ssize_t n = PyUnicode_GET_LENGTH(arg);
    if (kind == PyUnicode_1BYTE_KIND)
        failed = cut_Py_UCS1(PyUnicode_1BYTE_DATA(arg), n, &w);
    else if (kind == PyUnicode_2BYTE_KIND)
        failed = cut_Py_UCS2(PyUnicode_2BYTE_DATA(arg), n, &w);
    else
        failed = cut_Py_UCS4(PyUnicode_4BYTE_DATA(arg), n, &w);
    PyObject *result = NULL;
    if (failed)
        PyErr_NoMemory();
    else
        result = three_arrays(w.hashes, w.starts, w.ends, w.count);
    PyMem_Free(w.hashes);
    PyMem_Free(w.starts);
    PyMem_Free(w.ends);
    return result;
}

/* The inverse of BASE modulo 2^64 (BASE is odd), by Newton's iteration: each step doubles the bits right. */
static uint64_t base_inverse(void) {
    uint64_t x = BASE;
    for (int i = 0; i < 6; i++) x *= 2 - BASE * x;
    return x;
}

static int in_bloom(const uint64_t *bloom, uint64_t mask, uint64_t key) {
    uint64_t word = bloom[(key >> 40) & mask];
    return (word >> ((key >> 28) & 63) & 1) && (word >> ((key >> 34) & 63) & 1);
}

typedef struct {
    int64_t *slots, *positions, *lengths;
    Py_ssize_t count, capacity;
} Hits;

static int hit(Hits *h, int64_t slot, int64_t position, int64_t length) {
    if (h->count == h->capacity) {
        Py_ssize_t grown = h->capacity ? 2 * h->capacity : 64;
        int64_t *a = PyMem_Realloc(h->slots, grown * sizeof(int64_t));
        if (a == NULL) return -1;
        h->slots = a;
        int64_t *b = PyMem_Realloc(h->positions, grown * sizeof(int64_t));
        if (b == NULL) return -1;
        h->positions = b;
        int64_t *c = PyMem_Realloc(h->lengths, grown * sizeof(int64_t));
        if (c == NULL) return -1;
        h->lengths = c;
        h->capacity = grown;
    }
    h->slots[h->count] = slot;
    h->positions[h->count] = position;
    h->lengths[h->count] = length;
    h->count++;
    return 0;
}

static int power_of_two_words(const Py_buffer *b) {
    Py_ssize_t n = b->len / 8;
    return b->len % 8 == 0 && n > 0 && (n & (n - 1)) == 0;
}

PyDoc_STRVAR(probe_doc,
             "probe(hashes, lengths, table, long_bloom, short_bloom) -> (slots, positions, lengths)\n\n"
             "Every window of `lengths` words (ascending; the largest is the n-gram length, whose keys are behind\n"
             "`long_bloom`, the others behind `short_bloom`) over the uint64 word `hashes` whose key is in the\n"
             "open-addressing `table` (uint64, a power of two long, 0 = empty): three int64 bytes objects, the\n"
             "table slot, the first word and the word count of each, by position, then length.");

static PyObject *probe(PyObject *self, PyObject *args) {
    Py_buffer hashes, lengths_buf, table, long_bloom, short_bloom;
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*:probe", &hashes, &lengths_buf, &table, &long_bloom, &short_bloom))
        return NULL;
    PyObject *result = NULL;
    Hits h = {NULL, NULL, NULL, 0, 0};
    Py_ssize_t n_lengths = lengths_buf.len / 8;
    if (hashes.len % 8 || lengths_buf.len % 8 || n_lengths < 1 || n_lengths > MAX_LENGTHS ||
        !power_of_two_words(&table) || !power_of_two_words(&long_bloom) || !power_of_two_words(&short_bloom)) {
        PyErr_SetString(PyExc_ValueError,
                        "probe: hashes and lengths must be 8-byte arrays (1 to 64 lengths); the table and "
                        "blooms power-of-two uint64 arrays");
        goto done;
    }
    const int64_t *lengths = (const int64_t *)lengths_buf.buf;
    for (Py_ssize_t j = 0; j < n_lengths; j++) {
        if (lengths[j] < 1 || (j && lengths[j] <= lengths[j - 1])) {
            PyErr_SetString(PyExc_ValueError, "probe: lengths must be ascending and positive");
            goto done;
        }
    }
    const uint64_t *w = (const uint64_t *)hashes.buf, *keys = (const uint64_t *)table.buf;
    const uint64_t *lb = (const uint64_t *)long_bloom.buf, *sb = (const uint64_t *)short_bloom.buf;
    uint64_t mask = (uint64_t)(table.len / 8) - 1, lmask = (uint64_t)(long_bloom.len / 8) - 1;
    uint64_t smask = (uint64_t)(short_bloom.len / 8) - 1, inverse = base_inverse();
    Py_ssize_t count = hashes.len / 8;
    uint64_t sums[MAX_LENGTHS], top[MAX_LENGTHS]; /* each length's window sum, and BASE^(length-1) */
    int live = 0;                                 /* lengths whose first window fits */
    for (Py_ssize_t j = 0; j < n_lengths && lengths[j] <= count; j++, live++) {
        uint64_t sum = 0, power = 1;
        for (int64_t t = 0; t < lengths[j]; t++) {
            sum += w[t] * power;
            if (t + 1 < lengths[j]) power *= BASE;
        }
        sums[j] = sum;
        top[j] = power;
    }
    for (Py_ssize_t i = 0; i < count && live > 0; i++) {
        for (int j = 0; j < live; j++) {
            if (i + lengths[j] > count) {
                live = j;
                break;
            }
            int is_long = j == n_lengths - 1;
            uint64_t key = window_key(sums[j], (int)lengths[j]);
            if (in_bloom(is_long ? lb : sb, is_long ? lmask : smask, key)) {
                uint64_t slot = key & mask;
                while (keys[slot] != 0 && keys[slot] != key) slot = (slot + 1) & mask;
                if (keys[slot] == key && hit(&h, (int64_t)slot, i, lengths[j]) < 0) {
                    PyErr_NoMemory();
                    goto done;
                }
            }
            if (i + lengths[j] < count) sums[j] = (sums[j] - w[i]) * inverse + w[i + lengths[j]] * top[j];
        }
    }
    result = three_arrays(h.slots, h.positions, h.lengths, h.count);
done:
    PyMem_Free(h.slots);
    PyMem_Free(h.positions);
    PyMem_Free(h.lengths);
    PyBuffer_Release(&hashes);
    PyBuffer_Release(&lengths_buf);
    PyBuffer_Release(&table);
    PyBuffer_Release(&long_bloom);
    PyBuffer_Release(&short_bloom);
    return result;
}

static PyMethodDef methods[] = {
    {"words", words, METH_O, words_doc},
    {"probe", probe, METH_VARARGS, probe_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_keys", "Decontamination's words and key probes in C.",
                                    -1, methods};

PyMODINIT_FUNC PyInit__keys(void) {
    for (int c = 0; c < 128; c++)
        ascii_alnum[c] = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    return PyModule_Create(&module);
}
