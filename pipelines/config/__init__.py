"""The config layer: the recipe's pydantic models, apart from the code that acts on them.

    filters   each rule set's thresholds, the profiles, and which rule sets exist (in chain order)
    decontam  benchmark decontamination: which evaluation sets, how items are matched, drop or cut
    dedupe    exact and MinHash-LSH deduplication settings
    quality   the quality classifier's training settings; the model a build scores with, selection by score

`pipelines/recipe.py` assembles these into a `Recipe`. Nothing here imports a step, a rule set, a reader or
the build, so every part of the pipeline can import its settings without import cycles.
"""
