"""Sample and benchmark text made from what every machine has (Python's own docs and sources): the bundled
sample corpus in the four native layouts, and the generated documents that tests and benches share."""
