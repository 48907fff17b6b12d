"""Hand labels of a user's own run: the ``semcal label`` page (:mod:`semcal.label.server`),
the label file (:mod:`semcal.label.labels`) and the B check the analysis reports
(:mod:`semcal.label.check`). See docs/labelling.md."""
