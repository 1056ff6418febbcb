"""Reference scores for the packaged Jigsaw BiLSTM, computed by the package's own Keras code.

This is how tests/data/bilstm_reference.json was made. It needs TensorFlow, which eigenshift does
not depend on, so it runs in a throw-away environment:

    python3 -m venv /tmp/tfenv
    /tmp/tfenv/bin/pip install tensorflow-cpu==2.21.0 h5py
    /tmp/tfenv/bin/pip install --no-deps toxic-comment-classifier==0.3.0
    /tmp/tfenv/bin/python scripts/bilstm_reference.py > tests/data/bilstm_reference.json
"""

import json
import sys

import tensorflow as tf
from toxic_classifier import ToxicCommentClassifier
from toxic_classifier.model import LIST_CLASSES

TEXTS = [
    "You are a stupid idiot and I hate you.",
    "Shut the fuck up, you worthless piece of shit.",
    "Go kill yourself, moron.",
    "Thank you for the helpful explanation, I learned a lot today.",
    "The weather in Paris is mild in the spring.",
    "Please review the edits I made to the article about the river.",
    "",
    "What a fucking beautiful day!",
    "He said the committee would meet again on Tuesday to discuss the budget.",
    " ".join(["word"] * 150) + " you idiot",
]

clf = ToxicCommentClassifier()
rows = [{"text": t, "scores": clf.classify(t)} for t in TEXTS]
json.dump(
    {
        "origin": "toxic-comment-classifier==0.3.0 ToxicCommentClassifier.classify, "
        f"tensorflow-cpu=={tf.__version__}, via scripts/bilstm_reference.py",
        "labels": LIST_CLASSES,
        "rows": rows,
    },
    sys.stdout,
    indent=1,
)
