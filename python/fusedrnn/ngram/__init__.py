"""Count-based n-gram language models (the pre-neural baseline).

Word- or character-level models of any order with sentence-boundary padding and
the estimators MLE, add-k / Laplace, interpolated Kneser-Ney, modified
Kneser-Ney, Katz back-off and stupid back-off. Counting and scoring are
vectorised with NumPy. Models read and write the ARPA format.

Example::

    from fusedrnn.ngram import NgramModel
    lm = NgramModel(order=3, level="word", estimator="kneser-ney")
    lm.fit(["i am sam", "sam i am", "i do not like green eggs and ham"])
    lm.prob("am", ["<s>", "i"])          # P(am | <s> i)
    lm.perplexity(["i am ham"])
    print(lm.explain("i am sam"))
"""

from fusedrnn.ngram.arpa import read_arpa, write_arpa
from fusedrnn.ngram.estimators import ESTIMATORS
from fusedrnn.ngram.explain import Explanation, Factor
from fusedrnn.ngram.model import Evaluation, NgramModel
from fusedrnn.ngram.vocab import BOS, EOS, UNK, Vocabulary

__all__ = [
    "BOS",
    "EOS",
    "ESTIMATORS",
    "Evaluation",
    "Explanation",
    "Factor",
    "NgramModel",
    "UNK",
    "Vocabulary",
    "read_arpa",
    "write_arpa",
]
