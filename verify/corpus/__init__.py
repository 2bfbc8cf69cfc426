"""Corpus-scale evidence indexes: passage shards, streamed embeddings, approximate FAISS search, local and Ray
engines."""
