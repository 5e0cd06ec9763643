"""Search (issue 5, DESIGN sections 6 and 7) over HTTP: a catalog of 10,000 generated files searched by
every filter, compared with the same search computed in Python, page by page."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import httpx
import pytest

from tests.query import _corpus
from tests.query._corpus import CatalogFile
from tests.support.cluster import Cluster, ClusterFactory

CORPUS_SIZE = 10_000
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def cluster(make_cluster_module: ClusterFactory) -> Cluster:
    """The conftest's cluster with rate limiting off: these tests send a few hundred searches a minute."""
    return make_cluster_module(queries=1, query_settings={"rate_limit_per_minute": 0})


@pytest.fixture(scope="module")
def element_ids(cluster: Cluster) -> tuple[str, str]:
    return cluster.elements["edit"].element_id, cluster.elements["rw"].element_id


@pytest.fixture(scope="module")
def corpus(cluster: Cluster, element_ids: tuple[str, str]) -> list[CatalogFile]:
    """Every catalog row, also as Python objects; a test that inserts rows appends them here."""
    files = _corpus.make_corpus(CORPUS_SIZE, element_ids)
    asyncio.run(_corpus.copy_into(cluster.admin.database_url, cluster.admin.schema, files))
    return files


@pytest.fixture(scope="module")
def api(cluster: Cluster) -> httpx.Client:
    return cluster.query_client("USER")


def _pages(
    api: httpx.Client, filters: dict[str, Any], *, limit: int = 1000, method: str = "POST"
) -> list[Any]:
    """Every page of one search, following next_cursor; each page checked against the limit."""
    pages: list[dict[str, Any]] = []
    cursor = None
    while True:
        response = _search(api, {**filters, "limit": limit, **({"cursor": cursor} if cursor else {})}, method)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= limit
        pages.append(page)
        cursor = page["next_cursor"]
        if cursor is None:
            return pages
        assert len(page["items"]) == limit, "a page short of the limit must be the last one"
        assert len(pages) <= CORPUS_SIZE, "the cursor does not advance"


def _search(api: httpx.Client, filters: dict[str, Any], method: str = "POST") -> httpx.Response:
    if method == "POST":
        return api.post("/search", json=filters)
    params: list[tuple[str, str | int | float | bool | None]] = []
    for name, value in filters.items():
        name = "q" if name == "query" else name
        if name == "tags":
            params.extend(("tags", tag) for tag in value)
        elif name == "metadata":
            params.append((name, json.dumps(value)))
        else:
            params.append((name, str(value)))
    return api.get("/search", params=params)


def _found(api: httpx.Client, filters: dict[str, Any], **options: Any) -> list[dict[str, Any]]:
    return [item for page in _pages(api, filters, **options) for item in page["items"]]


def _ids(items: list[dict[str, Any]]) -> list[str]:
    return [item["file_id"] for item in items]


def _expected_ids(corpus: list[CatalogFile], filters: dict[str, Any]) -> list[str]:
    return [str(f.file_id) for f in _corpus.search(corpus, filters)]


def _moment(corpus: list[CatalogFile], index: int) -> str:
    return sorted(f.created_at for f in corpus)[index].isoformat()


def _single_filters(corpus: list[CatalogFile], element_ids: tuple[str, str]) -> list[dict[str, Any]]:
    return [
        {"query": "report"},
        {"query": "ОТЧЁТ годовой"},
        {"query": "annual_report-2024.pdf"},
        {"query": "invoice -draft"},
        {"query": "budget or протокол"},
        {"query": '"annual report"'},
        {"query": "финансы"},
        {"filename": "report"},
        {"filename": "ОТЧЁТ"},
        {"filename": "50%"},
        {"filename": "a_b"},
        {"filename": "_"},
        {"filename": "%"},
        {"tags": ["invoice"]},
        {"tags": ["финансы", "2024"]},
        {"tags": ["archive_old", "legal", "q1"]},
        {"metadata": {"dept": "legal"}},
        {"metadata": {"dept": "бухгалтерия"}},
        {"metadata": {"year": 2024}},
        {"metadata": {"score": 2}},
        {"metadata": {"flag": 1}},
        {"metadata": {"flag": True}},
        {"metadata": {"reviewed": None}},
        {"content_type": "image/*"},
        {"content_type": "text/plain"},
        {"content_type": "TEXT/PLAIN; charset=latin1"},
        {"content_type": "text/csv"},
        {"size_min": 1024},
        {"size_max": 1024},
        {"size_min": 1, "size_max": 4096},
        {"created_after": _moment(corpus, 5000)},
        {"created_before": _moment(corpus, 5000)},
        {"storage_element_id": element_ids[0]},
        {"status": "active"},
    ]


def _combined_filters(corpus: list[CatalogFile], element_ids: tuple[str, str]) -> list[dict[str, Any]]:
    return [
        {"query": "report", "tags": ["invoice"], "sort": "size_bytes", "order": "asc"},
        {"filename": "план", "content_type": "image/*", "storage_element_id": element_ids[1]},
        {"metadata": {"dept": "legal", "year": 2023}, "size_min": 1024, "sort": "original_filename"},
        {
            "created_after": _moment(corpus, 2000),
            "created_before": _moment(corpus, 8000),
            "size_max": 1_048_576,
            "tags": ["2024"],
            "sort": "updated_at",
            "order": "asc",
        },
        {"query": "budget -план", "metadata": {"flag": False}, "content_type": "application/*"},
        # Sorted by creation date with terms: the week walk (statements._weekly_statement), both ways,
        # with its first and last week cut by the date filters.
        {"tags": ["invoice"], "order": "asc"},
        {
            "filename": "report",
            "created_after": _moment(corpus, 3000),
            "created_before": _moment(corpus, 7000),
        },
        {
            "query": "report annual",
            "tags": ["2024"],
            "created_after": _moment(corpus, 1000),
            "order": "asc",
        },
        {"filename": "ОТЧЁТ", "query": "отчёт", "created_before": _moment(corpus, 9000), "order": "asc"},
    ]


def test_every_filter_alone_finds_exactly_what_the_reference_finds(
    api: httpx.Client, corpus: list[CatalogFile], element_ids: tuple[str, str]
) -> None:
    active = sum(f.status == "active" for f in corpus)
    for filters in _single_filters(corpus, element_ids):
        expected = _expected_ids(corpus, filters)
        if filters != {"status": "active"}:
            assert 0 < len(expected) < active, f"the corpus does not exercise {filters}"
        assert _ids(_found(api, filters)) == expected, filters


def test_combined_filters_find_exactly_what_the_reference_finds(
    api: httpx.Client, corpus: list[CatalogFile], element_ids: tuple[str, str]
) -> None:
    for filters in _combined_filters(corpus, element_ids):
        expected = _expected_ids(corpus, filters)
        assert expected, f"the corpus does not exercise {filters}"
        assert _ids(_found(api, filters, limit=7)) == expected, filters


@pytest.mark.parametrize("sort", ["created_at", "updated_at", "size_bytes", "original_filename"])
@pytest.mark.parametrize("order", ["asc", "desc"])
def test_each_sort_and_order_returns_every_active_file_once_in_order(
    api: httpx.Client, corpus: list[CatalogFile], sort: str, order: str
) -> None:
    found = _found(api, {"sort": sort, "order": order})
    by_id = {str(f.file_id): f for f in corpus}
    assert _ids(found) == _expected_ids(corpus, {"sort": sort, "order": order})
    # Each item is the file's attributes document as the catalog holds it.
    assert all(item == by_id[item["file_id"]].attributes for item in found)


def test_the_default_is_newest_first_and_the_default_limit(
    api: httpx.Client, corpus: list[CatalogFile]
) -> None:
    response = api.post("/search", json={})
    assert response.status_code == 200
    assert _ids(response.json()["items"]) == _expected_ids(corpus, {})[:50]
    assert response.json()["next_cursor"]


def test_deleted_files_never_appear(api: httpx.Client, corpus: list[CatalogFile]) -> None:
    deleted = [f for f in corpus if f.status == "deleted"]
    assert len(deleted) > 100
    everything = set(_ids(_found(api, {})))
    assert not everything & {str(f.file_id) for f in deleted}
    assert len(everything) == sum(f.status == "active" for f in corpus)
    # Not even when a filter matches one of them exactly.
    target = deleted[0]
    exact = {"filename": target.original_filename, "created_after": target.created_at.isoformat()}
    assert str(target.file_id) not in _ids(_found(api, exact))
    refused = api.post("/search", json={"status": "deleted"})
    assert refused.status_code == 422
    assert refused.headers["content-type"] == PROBLEM
    assert "deleted files are never shown" in refused.json()["detail"]


def test_get_answers_as_post_does(
    api: httpx.Client, corpus: list[CatalogFile], element_ids: tuple[str, str]
) -> None:
    cases: list[dict[str, Any]] = [
        {"query": "invoice -draft", "sort": "size_bytes", "order": "asc"},
        {"tags": ["финансы", "2024"], "metadata": {"dept": "legal"}},
        {"metadata": {"flag": True, "score": 2.0}},
        {"filename": "50%", "content_type": "text/*"},
        {"created_after": _moment(corpus, 100), "created_before": _moment(corpus, 9000), "size_min": 5},
        {"storage_element_id": element_ids[1], "sort": "original_filename", "order": "asc"},
    ]
    for filters in cases:
        by_post = _found(api, filters, limit=50)
        assert by_post, filters
        assert _found(api, filters, limit=50, method="GET") == by_post, filters


@pytest.mark.parametrize(
    ("sort", "order"), [("created_at", "desc"), ("created_at", "asc"), ("size_bytes", "asc")]
)
def test_paging_returns_every_match_once_while_files_are_added(
    cluster: Cluster,
    api: httpx.Client,
    corpus: list[CatalogFile],
    element_ids: tuple[str, str],
    sort: str,
    order: str,
) -> None:
    filters = {"tags": ["invoice"], "sort": sort, "order": order}
    before = set(_expected_ids(corpus, filters))
    seen: list[str] = []
    added: list[CatalogFile] = []
    cursor = None
    for page_number in range(1000):
        body = {**filters, "limit": 200, **({"cursor": cursor} if cursor else {})}
        response = api.post("/search", json=body)
        assert response.status_code == 200, response.text
        seen.extend(_ids(response.json()["items"]))
        cursor = response.json()["next_cursor"]
        if cursor is None:
            break
        # New matches land all over the order: before the page just read and after it.
        fresh = _corpus.more_files(30, element_ids, seed=f"{sort}-{order}-{page_number}", tag="invoice")
        asyncio.run(_corpus.copy_into(cluster.admin.database_url, cluster.admin.schema, fresh))
        added.extend(fresh)
    corpus.extend(added)
    assert len(seen) == len(set(seen)), "a file came twice"
    assert before <= set(seen), "a file that matched all along was skipped"
    assert set(seen) - before <= {str(f.file_id) for f in added}
    assert set(seen) - before, "no inserted file landed after the cursor: the test did not test"


def test_bad_searches_are_refused_with_a_problem(api: httpx.Client, corpus: list[CatalogFile]) -> None:
    first = api.post("/search", json={"tags": ["invoice"], "limit": 5}).json()
    cursor = first["next_cursor"]
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    payload = json.loads(raw[16:])
    forged_payload = json.dumps({**payload, "k": "2000-01-01T00:00:00+00:00"}, separators=(",", ":")).encode()
    forged = base64.urlsafe_b64encode(raw[:16] + forged_payload).rstrip(b"=").decode()
    flipped = cursor[:10] + ("A" if cursor[10] != "A" else "B") + cursor[11:]
    refused = {
        "unknown sort field": ({"sort": "sha256"}, 422, "sort"),
        "bad order": ({"order": "sideways"}, 422, "order"),
        "limit over the maximum": ({"limit": 1001}, 422, "at most 1000"),
        "limit zero": ({"limit": 0}, 422, "limit"),
        "unknown field": ({"tag": ["invoice"]}, 422, "tag"),
        "naive timestamp": ({"created_after": "2024-01-01T00:00:00"}, 422, "timezone"),
        "size range upside down": ({"size_min": 10, "size_max": 5}, 422, "size_min"),
        "no words in the query": ({"query": "--- !!!"}, 422, "no word"),
        "nested metadata": ({"metadata": {"a": {"b": 1}}}, 422, "metadata"),
        "NUL in a filter": ({"filename": "a\x00b"}, 422, "NUL"),
        "bad media range": ({"content_type": "image"}, 422, "type/subtype"),
        "malformed cursor": ({"tags": ["invoice"], "cursor": "not a cursor!"}, 400, "damaged"),
        "cursor of random bytes": (
            {"tags": ["invoice"], "cursor": "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"},
            400,
            "damaged",
        ),
        "tampered cursor": ({"tags": ["invoice"], "cursor": forged}, 400, "damaged"),
        "flipped character": ({"tags": ["invoice"], "cursor": flipped}, 400, "damaged"),
        "cursor with other filters": ({"tags": ["legal"], "cursor": cursor}, 400, "other filters"),
        "cursor with another sort": (
            {"tags": ["invoice"], "sort": "size_bytes", "cursor": cursor},
            400,
            "sort",
        ),
        "cursor with another order": ({"tags": ["invoice"], "order": "asc", "cursor": cursor}, 400, "order"),
    }
    for case, (body, status, words) in refused.items():
        response = api.post("/search", json=body)
        assert response.status_code == status, (case, response.text)
        assert response.headers["content-type"] == PROBLEM, case
        assert words in response.json()["detail"], (case, response.json())
    broken = api.post("/search", content=b'{"tags": ["invoice"', headers={"content-type": "application/json"})
    assert broken.status_code == 422
    assert broken.headers["content-type"] == PROBLEM
    # The same cursor with the same search (another limit is fine) goes on where the first page ended.
    going_on = api.post("/search", json={"tags": ["invoice"], "limit": 7, "cursor": cursor})
    assert going_on.status_code == 200
    assert _ids(going_on.json()["items"]) == _expected_ids(corpus, {"tags": ["invoice"]})[5:12]


def test_bad_query_parameters_are_refused_with_a_problem(api: httpx.Client) -> None:
    refused = {
        "unknown parameter": ("tag=invoice", 422, "unknown query parameter 'tag'"),
        "query under its POST name": ("query=report", 422, "unknown query parameter 'query'"),
        "repeated single value": ("q=a&q=b", 422, "given 2 times"),
        "metadata not JSON": ("metadata={dept", 400, "JSON object"),
        "metadata not an object": ("metadata=[1]", 422, "JSON object"),
        "metadata NaN": ('metadata={"a": NaN}', 400, "JSON object"),
        "unknown sort": ("sort=sha256", 422, "sort"),
        "not a number": ("size_min=big", 422, "size_min"),
        "malformed cursor": ("cursor=xyz", 400, "damaged"),
    }
    for case, (query_string, status, words) in refused.items():
        response = api.get(f"/search?{query_string}")
        assert response.status_code == status, (case, response.text)
        assert response.headers["content-type"] == PROBLEM, case
        assert words in response.json()["detail"], (case, response.json())


def test_who_may_search(cluster: Cluster, corpus: list[CatalogFile]) -> None:
    expected = _expected_ids(corpus, {"query": "report"})[:20]
    for role in ("AUDITOR", "READONLY", "ADMIN"):
        response = cluster.query_client(role).get("/search", params={"q": "report", "limit": 20})
        assert response.status_code == 200, (role, response.text)
        assert _ids(response.json()["items"]) == expected
    anonymous = httpx.post(f"{cluster.query.url}/api/v1/search", json={"query": "report"}, timeout=30)
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == PROBLEM
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    forged = httpx.get(
        f"{cluster.query.url}/api/v1/search",
        params={"q": "report"},
        headers={"Authorization": "Bearer x.y.z"},
    )
    assert forged.status_code == 401
    assert "items" not in forged.text


def test_search_sees_the_catalog_as_it_changes(
    cluster: Cluster, api: httpx.Client, corpus: list[CatalogFile]
) -> None:
    """No cache stands between search and the catalog: a row is found as soon as it is committed."""
    fresh = _corpus.more_files(1, ("se-late",), seed=99)
    asyncio.run(_corpus.copy_into(cluster.admin.database_url, cluster.admin.schema, fresh))
    corpus.extend(fresh)
    found = api.post("/search", json={"storage_element_id": "se-late"}).json()["items"]
    assert found == [fresh[0].attributes]
