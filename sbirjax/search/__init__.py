"""Search your own photos with a sketch: index a folder with a finished run, query it
(docs/search.md).

  python -m sbirjax.search index --workdir=RUN --photos=DIR --out=INDEX
  python -m sbirjax.search query --index=INDEX --sketch=FILE [--k=10] [--json] [--grid=OUT.png]
"""
from sbirjax.search.api import Searcher
from sbirjax.search.errors import SearchError
from sbirjax.search.index import Index

__all__ = ["Index", "SearchError", "Searcher"]
