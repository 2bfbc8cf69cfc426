"""XTREME in miniature on real multilingual text (Debian's translated package descriptions), run end to end by the
replication pipeline: data preparation, a shared tokenizer, MLM pretraining of several model sizes, then the three
phases with and without intermediate training over several seeds. Everything here is labelled scale "miniature".
"""
