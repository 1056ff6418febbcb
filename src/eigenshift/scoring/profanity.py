"""alt-profanity-check (TF-IDF + calibrated linear SVM): a judge independent of the BiLSTM."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from ..core.assets import asset_file
from ..core.errors import ScorerError


class ProfanityScorer:
    name = "alt-profanity-check"

    def __init__(self) -> None:
        import joblib  # the package's own joblib files; loaded like `import profanity_check` does

        pip_name = "alt-profanity-check"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.vectorizer = joblib.load(
                    asset_file("profanity_check", "data/vectorizer.joblib", pip_name)
                )
                self.model = joblib.load(
                    asset_file("profanity_check", "data/model.joblib", pip_name)
                )
        except (OSError, ValueError, AttributeError, ModuleNotFoundError) as exc:
            raise ScorerError(
                f"cannot load alt-profanity-check's model ({exc}); it needs scikit-learn==1.9.1"
            ) from exc

    def score(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros(0)
        return self.model.predict_proba(self.vectorizer.transform(list(texts)))[:, 1].astype(float)
