"""Full-text search in the database's own machinery, for Chinese without spaces and for English.

Chinese has no spaces between words, and neither PostgreSQL's parsers nor SQLite's tokenizers
segment it. So the text is indexed as a document of tokens we make ourselves: every run of CJK
characters becomes its overlapping character bigrams (左侧卵巢 → 左侧 侧卵 卵巢) plus the run's last
character alone (so a one-character query still finds characters at the end of a run), and
every other word becomes its lower-cased self. A query is tokenised the same way and its tokens
are AND-ed, so "卵巢囊肿", "囊肿 卵巢" and "卵巢 实性" all find "左侧卵巢囊肿伴实性成分" without
needing the exact phrase. Latin words and single characters match as prefixes.

PostgreSQL keeps the document as a weighted ``tsvector`` (title weight A) under a GIN index and
ranks with ``ts_rank``; SQLite keeps it in an FTS5 table (kept in step by triggers made in the
migration) and ranks with ``bm25``. pg_trgm was considered: it needs three characters to use its
index, and most Chinese medical words are two.
"""

import re
from dataclasses import dataclass

import sqlalchemy as sa

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_RUN = re.compile(rf"[{_CJK}]+|[^\W_{_CJK}]+")
MAX_TERMS = 32  # a query longer than this adds no precision, only work
TITLE_WEIGHT = 4.0  # how much more a hit in the title counts than one in the body (SQLite's bm25)
SIMPLE = sa.literal_column("'simple'::regconfig")


def _is_cjk(run: str) -> bool:
    return bool(re.match(rf"[{_CJK}]", run))


def tokens(text: str | None) -> list[str]:
    """Split text into index tokens: CJK bigrams plus each run's last character, lower-cased words."""
    out: list[str] = []
    for run in _RUN.findall((text or "").lower()):
        if _is_cjk(run):
            out.extend(run[i:i + 2] for i in range(len(run) - 1))
            out.append(run[-1])
        else:
            out.append(run)
    return out


def document(*texts: str | None) -> str:
    """Return the space-separated token document of the texts."""
    return " ".join(t for text in texts for t in tokens(text))


def query_terms(q: str) -> list[tuple[str, bool]]:
    """Return the query's distinct terms as (token, prefix?) pairs, at most MAX_TERMS."""
    terms: dict[str, bool] = {}
    for run in _RUN.findall(q.lower()):
        if _is_cjk(run) and len(run) > 1:
            for i in range(len(run) - 1):
                terms.setdefault(run[i:i + 2], False)
        else:  # a word being typed, or a single character: match what starts with it
            terms.setdefault(run, True)
    return list(terms.items())[:MAX_TERMS]


@dataclass(frozen=True)
class Index:
    """Where a searchable document lives: its table, key, title/body token columns, and the
    PostgreSQL tsvector column or the SQLite FTS5 table (whose rowid is the key)."""

    table: str
    key: str
    title: str
    body: str
    tsv: str
    fts: str


def tsvector(title, body):
    """The PostgreSQL expression of a document's weighted tsvector (title A, body D)."""
    weighted = sa.func.setweight(sa.func.to_tsvector(SIMPLE, title), sa.literal_column("'A'"))
    return weighted.op("||")(sa.func.to_tsvector(SIMPLE, body))


def tsv_match(tsv, q: str):
    """Return (condition, score) matching a PostgreSQL tsvector column against every term of q,
    higher score better; None when q has no searchable term."""
    terms = query_terms(q)
    if not terms:
        return None
    tsquery = sa.func.to_tsquery(SIMPLE, " & ".join(f"{t}:*" if prefix else t for t, prefix in terms))
    return tsv.op("@@")(tsquery), sa.func.ts_rank(tsv, tsquery)


def ranked(index: Index, q: str, dialect: str):
    """Return a subquery (id, score) of the documents matching every term of q, higher score better;
    None when q has no searchable term."""
    terms = query_terms(q)
    if not terms:
        return None
    if dialect == "postgresql":
        condition, score = tsv_match(sa.column(index.tsv), q)
        return (sa.select(sa.column(index.key).label("id"), score.label("score"))
                .select_from(sa.table(index.table)).where(condition).subquery())
    match = " AND ".join(f'"{t}"*' if prefix else f'"{t}"' for t, prefix in terms)  # tokens hold no quotes
    fts = sa.literal_column(index.fts)
    return (sa.select(sa.literal_column("rowid").label("id"),
                      (-sa.func.bm25(fts, TITLE_WEIGHT, 1.0)).label("score"))
            .select_from(sa.table(index.fts)).where(fts.op("MATCH")(match)).subquery())
