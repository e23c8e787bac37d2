/* `" ".join(text.split())` in one pass: the whitespace runs of exact dedupe's key made one space.

Splitting a document into words only to join them again allocates a string per word; this copies the
characters once. Whitespace is Python's (`str.isspace`, as `str.split` uses), and the result is a canonical
str (the narrowest kind that holds it), so it hashes and compares like the joined words. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

PyDoc_STRVAR(squeeze_doc,
             "squeeze($module, text, /)\n--\n\n"
             "Return `\" \".join(text.split())`: no leading or trailing whitespace, each run inside one space.");

/* Copy the words of data[0:n] into out, one space between them; return the characters written. One loop per
   character width, so the compiler sees plain arrays. */
#define SQUEEZE(TYPE)                                                   \
    static Py_ssize_t squeeze_##TYPE(const TYPE *data, Py_ssize_t n, TYPE *out) { \
        Py_ssize_t size = 0;                                            \
        int pending = 0; /* whitespace after a word: a space before the next */ \
        for (Py_ssize_t i = 0; i < n; i++) {                            \
            Py_UCS4 c = data[i];                                        \
            if (Py_UNICODE_ISSPACE(c)) {                                \
                pending = size > 0;                                     \
                continue;                                               \
            }                                                           \
            if (pending) {                                              \
                out[size++] = ' ';                                      \
                pending = 0;                                            \
            }                                                           \
            out[size++] = (TYPE)c;                                      \
        }                                                               \
        return size;                                                    \
    }

SQUEEZE(Py_UCS1)
SQUEEZE(Py_UCS2)
SQUEEZE(Py_UCS4)

static PyObject *squeeze(PyObject *self, PyObject *arg) {
    if (!PyUnicode_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "squeeze() takes a str, not %.100s", Py_TYPE(arg)->tp_name);
        return NULL;
    }
    if (PyUnicode_READY(arg) < 0) return NULL;
    int kind = PyUnicode_KIND(arg);
    Py_ssize_t n = PyUnicode_GET_LENGTH(arg), size;
    void *out = PyMem_Malloc(n ? n * kind : 1);
    if (out == NULL) return PyErr_NoMemory();
    if (kind == PyUnicode_1BYTE_KIND)
        size = squeeze_Py_UCS1(PyUnicode_1BYTE_DATA(arg), n, out);
    else if (kind == PyUnicode_2BYTE_KIND)
        size = squeeze_Py_UCS2(PyUnicode_2BYTE_DATA(arg), n, out);
    else
        size = squeeze_Py_UCS4(PyUnicode_4BYTE_DATA(arg), n, out);
    /* the narrowest kind that holds the result (dropped whitespace may have been its widest character) */
    PyObject *result = PyUnicode_FromKindAndData(kind, out, size);
    PyMem_Free(out);
    return result;
}

static PyMethodDef methods[] = {
    {"squeeze", squeeze, METH_O, squeeze_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_spaces", "Whitespace runs made one space, in C.", -1,
                                    methods};

PyMODINIT_FUNC PyInit__spaces(void) { return PyModule_Create(&module); }
