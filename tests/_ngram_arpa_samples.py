"""Small hand-written ARPA files in the styles of KenLM's ``lmplz`` and of SRILM's ``ngram-count``.

Each sample comes with sentences and their log10 probabilities worked out by hand with the
ARPA back-off rule (``P(w | c) = P(c w)`` if listed, else ``bow(c) * P(w | c[1:])``, with
``bow = 1`` for an unlisted context), as KenLM scores them with ``bos=True, eos=True``.
Used by ``test_ngram_arpa.py`` (fusedrnn's reader) and ``test_ngram_kenlm.py`` (KenLM itself).
"""

from __future__ import annotations

# lmplz style: "<s>" listed with log10 P = 0 (lmplz's convention), "<unk>" and "</s>" with
# back-off 0, contexts ending in "</s>" with back-off 0, no back-off on the highest order,
# n-grams not sorted.
LMPLZ_STYLE = """\\data\\
ngram 1=5
ngram 2=6
ngram 3=4

\\1-grams:
-1.2\t<unk>\t0
0\t<s>\t-0.4
-0.5\ta\t-0.3
-0.6\tb\t-0.25
-0.7\t</s>\t0

\\2-grams:
-0.3\t<s> a\t-0.2
-0.45\ta b\t-0.15
-0.35\tb a\t-0.1
-0.5\ta </s>\t0
-0.4\tb </s>\t0
-0.55\t<s> b\t-0.05

\\3-grams:
-0.1\t<s> a b
-0.2\ta b a
-0.25\tb a </s>
-0.15\t<s> b a

\\end\\
"""

LMPLZ_SCORES = {
    # P(a|<s>) -.3; P(b|<s> a) -.1; P(a|a b) -.2; P(</s>|b a) -.25
    "a b a": -0.3 - 0.1 - 0.2 - 0.25,
    # P(b|<s>) -.55; P(b|<s> b) = bow(<s> b) -.05 + [bow(b) -.25 + P(b) -.6];
    # P(zz|b b): "b b" unlisted, so P(<unk>|b) = bow(b) -.25 + P(<unk>) -1.2;
    # P(</s>|b <unk>): "b <unk>" unlisted, P(</s>|<unk>) = bow(<unk>) 0 + P(</s>) -.7
    "b b zz": -0.55 + (-0.05 - 0.25 - 0.6) + (-0.25 - 1.2) + (0.0 - 0.7),
    # P(</s>|<s>) = bow(<s>) -.4 + P(</s>) -.7
    "": -0.4 - 0.7,
}

# SRILM style: a blank line before \data\, "<s>" with -99, no "<unk>" (ngram-count without -unk),
# no back-off field where it would be 0, and a pruned suffix: the trigram "y x </s>" is
# listed but its suffix "x </s>" is not (KenLM fills it in with its back-off probability).
SRILM_STYLE = """
\\data\\
ngram 1=4
ngram 2=4
ngram 3=2

\\1-grams:
-99\t<s>\t-0.5
-0.4\tx\t-0.2
-0.8\ty\t-0.35
-0.6\t</s>

\\2-grams:
-0.25\t<s> x\t-0.1
-0.3\tx y\t-0.05
-0.2\ty </s>
-0.7\ty x\t-0.15

\\3-grams:
-0.05\t<s> x y
-0.12\ty x </s>

\\end\\
"""

SRILM_SCORES = {
    # P(x|<s>) -.25; P(y|<s> x) -.05; P(</s>|x y) = bow(x y) -.05 + P(</s>|y) -.2
    "x y": -0.25 - 0.05 + (-0.05 - 0.2),
    # P(y|<s>) = bow(<s>) -.5 + P(y) -.8; P(x|<s> y) = P(x|y) -.7 ("<s> y" unlisted);
    # P(</s>|y x) = -.12 (the trigram whose suffix "x </s>" the file leaves out)
    "y x": (-0.5 - 0.8) - 0.7 - 0.12,
    # P(x|<s>) -.25; P(</s>|<s> x) = bow(<s> x) -.1 + P(</s>|x), and "x </s>" is not listed:
    # bow(x) -.2 + P(</s>) -.6
    "x": -0.25 + (-0.1 - 0.2 - 0.6),
    # OOV without <unk> in the file: KenLM's log10 P(<unk>) = -100.
    # P(x|<s>) -.25; P(<unk>|<s> x) = bow(<s> x) -.1 + bow(x) -.2 + (-100); P(</s>|x <unk>) = P(</s>) -.6
    "x q": -0.25 + (-0.1 - 0.2 - 100.0) - 0.6,
}
