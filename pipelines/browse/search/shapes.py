"""The JSON shapes of the live search APIs, built from a backend's results (pure functions).

Each takes the validated parameters (declared in ``openapi.json``, defaults filled in) and the
results ``[{"title", "url", "snippet"}]``, best first, and returns the body the live API would send.
"""

from __future__ import annotations

ENGINE = "crucible-local"


def window(params: dict, size_key: str, page_key: str, first_page: int) -> tuple[int, int]:
    """(how many results to ask the backend for, where the page starts) for paged APIs."""
    size = params[size_key]
    start = (params[page_key] - first_page) * size
    return start + size, start


def searxng(params: dict, res: list[dict]) -> dict:
    return {
        "query": params["q"], "number_of_results": len(res),
        "results": [{"url": r["url"], "title": r["title"], "content": r["snippet"], "engine": ENGINE,
                     "engines": [ENGINE], "score": 1.0 / (i + 1), "category": "general"} for i, r in enumerate(res)],
        "answers": [], "corrections": [], "infoboxes": [], "suggestions": [], "unresponsive_engines": [],
    }


def serper(params: dict, res: list[dict]) -> dict:
    return {
        "searchParameters": {"q": params["q"], "type": "search", "num": params["num"], "page": params["page"],
                             "engine": "google"},
        "organic": [{"title": r["title"], "link": r["url"], "snippet": r["snippet"], "position": i + 1}
                    for i, r in enumerate(res)],
        "credits": 1,
    }


def brave(params: dict, res: list[dict]) -> dict:
    return {
        "type": "search", "query": {"original": params["q"]},
        "web": {"type": "search", "results": [
            {"title": r["title"], "url": r["url"], "description": r["snippet"], "type": "search_result"}
            for r in res]},
    }


def tavily(params: dict, res: list[dict], seconds: float) -> dict:
    return {
        "query": params["query"], "answer": None, "images": [], "follow_up_questions": None,
        "results": [{"title": r["title"], "url": r["url"], "content": r["snippet"],
                     "score": round(1.0 / (i + 1), 4), "raw_content": None} for i, r in enumerate(res)],
        "response_time": round(seconds, 4),
    }


def retrieve(params: dict, per_query: list[list[dict]]) -> dict:
    """Search-R1: ``result[i]`` holds ``{"document": {"id", "contents"}, "score"}`` (or the documents
    alone without ``return_scores``), ``contents`` being ``'"title"\\nsnippet'``."""
    result = []
    for res in per_query:
        docs = [{"id": r["url"], "contents": f'"{r["title"]}"\n{r["snippet"]}'} for r in res]
        result.append([{"document": d, "score": round(1.0 / (i + 1), 4)} for i, d in enumerate(docs)]
                      if params["return_scores"] else docs)
    return {"result": result}
