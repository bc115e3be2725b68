"""Every LLM prompt of the method, in one place and versioned.

Synthesis prompts come in versions; output folders are named after the version, so results made
with other prompts are never mixed in or reused. Changing any text here needs a new version.

- ``v1``: the paper's wording (Kim & Baek, NAACL Findings 2025, Sec. 3 and Appendix): one prompt
  each for the CoT query, the relevant passage and the "plausible but irrelevant" passage.
- ``v2``: for small models and for queries that are claims as well as questions. The relevant
  passage reads like a passage of the collection and gives evidence; the hard negative is written
  in two steps: (1) another query of the same kind and field on a different subject (three
  examples from other fields; asked again when it still shares most of the query's content
  words), (2) the relevant-passage prompt on that query. Small models asked directly for an irrelevant passage
  restate the query (SciFact, Qwen-Coder 1.5B: 11/16 single-prompt negatives vs 0/16 two-step;
  ``shared/docs/small-llm-synthesis.md``). The CoT prompt stays the paper's.
"""

from __future__ import annotations

PROMPT_VERSIONS = ("v1", "v2")
# The default synthesis version. v2 becomes the default once the dev split shows its stage 1
# better than v1's (results/<dataset>/dev/); until then the committed data is v1's.
PROMPT_VERSION = "v1"
# Whether the synthesis drops the passages' sentences that talk about the prompt ("This supports
# the claim that ..."; syntriever.meta_text), per version: not for v1, whose committed records stay
# as written (33 of its 809 SciFact positives hold one); from v2 on (34 of 150 v2 positives).
DROP_META_SENTENCES = {"v1": False, "v2": True}
# The pairwise comparison prompt of stage 2 has one version (its folders say so).
COMPARE_VERSION = "v1"

EXPERT_SYSTEM = "You are a subject-matter expert."

COT_USER = "{query}\nLet's think step by step."

POSITIVE_USER = (
    "Write a passage that elaborates on the question below. Do not include any false or "
    "speculative content. Be thorough. Reply with the passage only.\n\nQuestion: {query}"
)

NEGATIVE_USER = (
    "Write a passage that contains plausible but irrelevant context given the question below. "
    "Reply with the passage only, without repeating the question.\n\nQuestion: {query}"
)

POSITIVE_V2_SYSTEM = (
    "You are a subject-matter expert who writes passages of a document collection. A search query "
    "can be a question or a claim."
)

POSITIVE_V2_USER = (
    "Write a passage, as it would appear in a document collection on the subject of the query below "
    "(for a scientific claim: the abstract of a research article), that gives the evidence needed to "
    "answer the question or to support or refute the claim. State concrete findings. Write one plain "
    "paragraph of about 150 words: no title, no headings, no lists, no preamble; do not mention the "
    "query or these instructions; do not spell out abbreviations you are unsure of.\n\nQuery: {query}"
)

OTHER_QUERY_SYSTEM = (
    "You write search queries. Given a query, write one new query of the same kind (a question stays "
    "a question, a claim stays a claim) and the same field, about a different subject: it shares none "
    "of the original's main entities (names, substances, genes, diseases, organisms, populations, "
    "places, methods, numbers) and is not a variation of it. Reply with the new query only.\n\n"
    "Examples:\n"
    "Query: Aspirin use lowers the risk of colorectal cancer in adults over 50.\n"
    "New query: Regular aerobic exercise improves insulin sensitivity in type 2 diabetes.\n"
    "Query: What are the tax consequences of selling inherited stock?\n"
    "New query: How does a company's dividend policy affect its share price?\n"
    "Query: who played the lead role in the movie titanic\n"
    "New query: when was the eiffel tower opened to the public"
)

OTHER_QUERY_USER = "Query: {query}\nNew query:"

VERIFY_USER = (
    "Question: {query}\n\nPassage: {passage}\n\n"
    "Is the passage relevant to the question? Answer yes or no."
)

COMPARE_USER = (
    "Question: {query}\n\nPassage #1: {first}\n\nPassage #2: {second}\n\n"
    "Which passage is more relevant for answering the question? "
    "Answer only Passage #1 or Passage #2."
)


def messages(user: str, system: str | None = None) -> list[dict[str, str]]:
    """Chat messages for one request."""
    out = [{"role": "system", "content": system}] if system else []
    out.append({"role": "user", "content": user})
    return out


def cot(query: str) -> list[dict[str, str]]:
    """Chain-of-thought query augmentation."""
    return messages(COT_USER.format(query=query))


def positive(query: str) -> list[dict[str, str]]:
    """A relevant synthetic passage."""
    return messages(POSITIVE_USER.format(query=query), EXPERT_SYSTEM)


def negative(query: str) -> list[dict[str, str]]:
    """A plausible but irrelevant synthetic passage (hard negative)."""
    return messages(NEGATIVE_USER.format(query=query), EXPERT_SYSTEM)


def positive_v2(query: str) -> list[dict[str, str]]:
    """v2: a passage of the collection that gives evidence for the query (question or claim)."""
    return messages(POSITIVE_V2_USER.format(query=query), POSITIVE_V2_SYSTEM)


def other_query(query: str) -> list[dict[str, str]]:
    """v2 hard negatives, step 1: a query of the same kind and field on a different subject."""
    return messages(OTHER_QUERY_USER.format(query=query), OTHER_QUERY_SYSTEM)


def verify(query: str, passage: str) -> list[dict[str, str]]:
    """Self-verification: is the passage relevant? (yes/no)."""
    return messages(VERIFY_USER.format(query=query, passage=passage))


def compare(query: str, first: str, second: str) -> list[dict[str, str]]:
    """Pairwise preference: which of two passages is more relevant? (#1/#2)."""
    return messages(COMPARE_USER.format(query=query, first=first, second=second))


# Query likelihood (a pointwise stage-2 judge, not in the paper; syntriever.likelihood): the
# log-probability of the query as the LLM's answer to this request about one passage.
LIKELIHOOD_VERSION = "v1"
LIKELIHOOD_SYSTEM = "You are a helpful assistant."
LIKELIHOOD_USER = (
    "Write one claim or question that the following passage supports or answers.\n\nPassage: {passage}"
)


def likelihood(passage: str) -> list[dict[str, str]]:
    """The request whose answer's probability is the query likelihood of ``passage``."""
    return messages(LIKELIHOOD_USER.format(passage=passage), LIKELIHOOD_SYSTEM)


# Synthetic queries for passages of the collection (InPars/GPL-style; not in the paper): the LLM
# reads a real passage and writes a query it answers, in the style of example training queries.
# Its own version names its folders.
PASSAGE_QUERY_VERSION = "v1"

PASSAGE_QUERY_SYSTEM = (
    "You write search queries for a document collection. Queries of this collection look like these "
    "examples:\n{examples}\n\nGiven a passage of the collection, write one new {kind} in the style of "
    "the examples that this passage {answers}. Use the passage's own terms; do not copy its title. "
    "Reply with the {kind} only."
)

PASSAGE_QUERY_USER = "Passage: {passage}\n\n{label}:"
# Small models asked for "a query" write questions even when every example is a claim: the kind
# is named, by what most examples end with.
PASSAGE_QUERY_KINDS = {
    "question": {"answers": "answers", "label": "Question"},
    "claim": {"answers": "gives evidence for (one sentence stating a finding of the passage, not a "
                         "question)", "label": "Claim"},
}


def query_kind(examples: list[str]) -> str:
    """``question`` when most examples end with a question mark, else ``claim``."""
    questions = sum(e.strip().endswith("?") for e in examples)
    return "question" if 2 * questions > len(examples) else "claim"


def passage_query(passage: str, examples: list[str]) -> list[dict[str, str]]:
    """A query of the collection's kind (shown by ``examples``) that ``passage`` answers."""
    shown = "\n".join(f"- {e}" for e in examples)
    kind = query_kind(examples)
    words = PASSAGE_QUERY_KINDS[kind]
    return messages(PASSAGE_QUERY_USER.format(passage=passage, label=words["label"]),
                    PASSAGE_QUERY_SYSTEM.format(examples=shown, kind=kind, answers=words["answers"]))
