"""claimscope: check what papers are claimed to say against what they actually say."""

__version__ = "0.1.0"
