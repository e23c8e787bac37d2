"""Maps the top-level folders into the `gristmill` import namespace.

`pipelines/`, `tokenizer/`, `shards/`, `trainer/` and `ablate/` install as `gristmill.pipelines`, … so they
never collide with the unrelated PyPI packages of the same names. Everything else lives in pyproject.toml.
"""

from setuptools import Extension, find_packages, setup

AREAS = ("pipelines", "tokenizer", "shards", "trainer", "ablate")

package_dir = {"gristmill": "gristmill"}
packages = find_packages(include=["gristmill", "gristmill.*"])
for area in AREAS:
    package_dir[f"gristmill.{area}"] = area
    packages += [f"gristmill.{area}"] + [f"gristmill.{area}.{sub}" for sub in find_packages(where=area)]

# Hot-path helpers in C, each with a pure-Python twin giving the same results: optional, so an install
# without a compiler still works (slower): the filters' word split and Gopher's n-gram counts, exact
# dedupe's whitespace squeeze, decontamination's words and index probes.
extensions = [
    Extension("gristmill.pipelines.filters._words", ["pipelines/filters/_words.c"], optional=True),
    Extension("gristmill.pipelines.filters._ngrams", ["pipelines/filters/_ngrams.c"], optional=True),
    Extension(
        "gristmill.pipelines.steps.dedupe._spaces", ["pipelines/steps/dedupe/_spaces.c"], optional=True
    ),
    Extension("gristmill.pipelines.decontam._keys", ["pipelines/decontam/_keys.c"], optional=True),
]

setup(packages=packages, package_dir=package_dir, ext_modules=extensions)
