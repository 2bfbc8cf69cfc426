"""One batched arXiv lookup asking for a pinned version and the same paper unversioned: the unversioned id still
resolves to the latest version, whatever the order the ids were given in."""

from __future__ import annotations

import pytest

from claimscope.retrieve.ids import parse_arxiv_id


@pytest.mark.parametrize("order", [("2005.13013v1", "2005.13013"), ("2005.13013", "2005.13013v1")])
def test_unversioned_is_latest_next_to_a_pinned_older_version(fake_arxiv, make_source, order):
    got = make_source().fetch_many([parse_arxiv_id(i) for i in order])
    keys = {i: g.ref.key for i, g in zip(order, got, strict=True)}
    assert keys == {"2005.13013v1": "2005.13013v1", "2005.13013": "2005.13013v2"}
