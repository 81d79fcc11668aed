"""The project's own documents (README.md and docs/) against the repository and the code.

- every relative Markdown link resolves to a file of the repository, and every `#anchor` to a
  heading of its target;
- nothing in the repository points at the folder the contract documents were handed over in;
- the worked examples of docs/signing.md are the cases of docs/signing-vectors.json, each with
  its own string to sign and signature;
- docs/api.md lists every route the code serves and every error code it answers with, and
  docs/signing.md every code the signature check fails with.
"""

from __future__ import annotations

import ast
import base64
import re
import subprocess
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pytest

from domain.signing import HEADER_KEY, HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIMESTAMP
from tests.unit.test_signing import _VECTORS_PATH, VECTORS, _Vectors

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SIGNING_MD = DOCS / "signing.md"
API_MD = DOCS / "api.md"
VECTORS_JSON = DOCS / "signing-vectors.json"
MARKDOWN = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]

# What nothing may point at, spelled in pieces so that this file does not match itself.
OUTSIDE = ("../" + "shared", "/work/" + "shared")

_FENCE = re.compile(r"^(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def _lines_outside_fences(text: str) -> Iterator[str]:
    """The lines of a Markdown text that are not inside a fenced code block."""
    fenced = False
    for line in text.splitlines():
        if _FENCE.match(line.lstrip()):
            fenced = not fenced
            continue
        if not fenced:
            yield line


def _fenced_blocks(text: str) -> list[str]:
    """The contents of the fenced code blocks, in order."""
    blocks: list[str] = []
    current: list[str] | None = None
    for line in text.splitlines():
        if _FENCE.match(line.lstrip()):
            if current is None:
                current = []
            else:
                blocks.append("\n".join(current))
                current = None
        elif current is not None:
            current.append(line)
    return blocks


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = text.replace("`", "").strip().lower()
    kept = "".join(ch for ch in text if ch in " -_" or unicodedata.category(ch)[0] in "LN")
    return kept.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    anchors: set[str] = set()
    for line in _lines_outside_fences(path.read_text(encoding="utf-8")):
        found = _HEADING.match(line)
        if found is None:
            continue
        slug = _slug(found.group(2))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def _links(path: Path) -> list[str]:
    """Link targets in the prose of a Markdown file (not in code blocks or code spans)."""
    targets: list[str] = []
    for line in _lines_outside_fences(path.read_text(encoding="utf-8")):
        targets += _LINK.findall(_INLINE_CODE.sub("", line))
    return targets


def _repository_files() -> list[Path]:
    """Files git tracks, and new ones it does not ignore (documents not yet committed)."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    paths = (ROOT / name for name in listed.decode("utf-8", "surrogateescape").split("\0"))
    return sorted(p for p in paths if p.is_file())  # a file deleted but not yet committed: gone


def _vectors() -> _Vectors:
    assert VECTORS_JSON == _VECTORS_PATH  # the one copy, which test_signing checks
    return VECTORS


# --- links ----------------------------------------------------------------------------------


def test_the_documents_exist() -> None:
    for name in ("design.md", "api.md", "signing.md", "signing-vectors.json"):
        assert (DOCS / name).is_file(), name


@pytest.mark.parametrize("document", MARKDOWN, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(document: Path) -> None:
    targets = _links(document)
    assert targets, "no links found: has the link syntax changed?"
    broken: list[str] = []
    for target in targets:
        if _SCHEME.match(target):
            continue  # http:, https:, mailto:
        path_part, _, anchor = target.partition("#")
        resolved = (document.parent / path_part).resolve() if path_part else document
        if not resolved.is_relative_to(ROOT) or not resolved.exists():
            broken.append(f"{target}: no such file in the repository")
        elif anchor and (resolved.suffix != ".md" or anchor not in _anchors(resolved)):
            broken.append(f"{target}: no heading #{anchor} in {resolved.relative_to(ROOT)}")
    assert not broken, broken


def test_slugs_follow_github() -> None:
    assert _slug("Order of checks") == "order-of-checks"
    assert _slug("Circuit breaker and call limits") == "circuit-breaker-and-call-limits"
    assert _slug("`GET /v1/orders/{order_id}`") == "get-v1ordersorder_id"
    assert _slug("Flows: receivable and settlement") == "flows-receivable-and-settlement"


def test_documents_named_in_the_code_exist() -> None:
    """A comment that sends the reader to a document of docs/ (and a section of it, as in
    `(docs/<name>.md, "Heading")`) names a document and a heading that exist."""
    named = re.compile(r"docs/([\w.-]+\.(?:md|json))(?:,\s*|\s+\()?(?:\"([^\"\n]+)\")?")
    missing: list[str] = []
    for path in _repository_files():
        if path.suffix not in (".py", ".md", ".toml", ".yaml", ".yml"):
            continue
        for name, section in named.findall(path.read_text(encoding="utf-8", errors="replace")):
            document = DOCS / name
            if not document.is_file():
                missing.append(f"{path.relative_to(ROOT)}: docs/{name}")
            elif section and _slug(section) not in _anchors(document):
                missing.append(f'{path.relative_to(ROOT)}: docs/{name}, "{section}"')
    assert not missing, missing


def test_nothing_points_outside_the_repository() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}: {needle}"
        for path in _repository_files()
        for needle in OUTSIDE
        if needle.encode() in path.read_bytes()
    ]
    assert not offenders, offenders


# --- signing.md and its vectors -------------------------------------------------------------


def test_signing_examples_are_the_vectors() -> None:
    """Each case has its own example: the string to sign as a code block, and in the same
    section the request it signs and the signature a client must produce."""
    vectors = _vectors()
    text = SIGNING_MD.read_text(encoding="utf-8")
    keys = (
        vectors["hmac_secret"],
        vectors["ed25519_private_seed_b64"],
        vectors["ed25519_public_key_b64"],
    )
    for key in keys:
        assert f"`{key}`" in text, key
    sections = re.split(r"^### ", text, flags=re.M)
    for i, case in enumerate(vectors["cases"]):
        mine = [s for s in sections if case["string_to_sign"] in _fenced_blocks(s)]
        assert len(mine) == 1, f"case {i}: {len(mine)} sections show its string to sign"
        section = mine[0]
        for part in (case["target"], case["key_id"], str(case["timestamp"]), case["nonce"]):
            assert f"`{part}`" in section or f"`{case['method']} {part}`" in section, (i, part)
        assert f"X-Showdist-Signature: {case['signature']}" in section, i
        body = base64.b64decode(case["body_b64"]).decode("utf-8")
        if body:
            assert f"`{body}`" in section, i
        assert case["algorithm"].lower() in section.lower(), i


def test_signing_examples_cover_every_case_once() -> None:
    shown = [
        b for b in _fenced_blocks(SIGNING_MD.read_text(encoding="utf-8")) if b.startswith("SHOW")
    ]
    assert shown == [case["string_to_sign"] for case in _vectors()["cases"]]


def test_signing_names_the_headers_and_every_failure() -> None:
    text = SIGNING_MD.read_text(encoding="utf-8")
    for header in (HEADER_KEY, HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE):
        assert f"`{header}`" in text, header
    sources = [ROOT / "domain" / "signing.py", ROOT / "serve_app" / "auth.py"]
    raised = {
        code
        for source in sources
        for code in re.findall(r"SignatureError\(\s*\"([a-z_]+)\"", source.read_text("utf-8"))
    }
    assert raised >= {"signature_missing", "signature_invalid", "nonce_replayed"}
    missing = sorted(code for code in raised if f"`{code}`" not in text)
    assert not missing, missing


# --- api.md against the routes and error codes ----------------------------------------------

_HTTP_METHODS = {"get", "post", "put", "patch", "delete"}


def _served_routes() -> set[tuple[str, str]]:
    """(METHOD, path) of every route declared with a router's decorator in serve_app/."""
    routes: set[tuple[str, str]] = set()
    for source in sorted((ROOT / "serve_app").glob("*.py")):
        tree = ast.parse(source.read_text(encoding="utf-8"))
        prefixes: dict[str, str] = {}
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Assign)
                and isinstance(node.value, ast.Call)
                and isinstance(node.value.func, ast.Name)
                and node.value.func.id in ("APIRouter", "FastAPI")
            ):
                prefix = next(
                    (
                        kw.value.value
                        for kw in node.value.keywords
                        if kw.arg == "prefix" and isinstance(kw.value, ast.Constant)
                    ),
                    "",
                )
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        prefixes[target.id] = str(prefix)
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for decorator in node.decorator_list:
                if (
                    isinstance(decorator, ast.Call)
                    and isinstance(decorator.func, ast.Attribute)
                    and decorator.func.attr in _HTTP_METHODS
                    and isinstance(decorator.func.value, ast.Name)
                    and decorator.func.value.id in prefixes
                    and decorator.args
                    and isinstance(decorator.args[0], ast.Constant)
                ):
                    path = prefixes[decorator.func.value.id] + str(decorator.args[0].value)
                    routes.add((decorator.func.attr.upper(), path))
    return routes


def _documented_routes() -> set[tuple[str, str]]:
    """The rows of api.md's route index: | `METHOD` | `/path` | caller | success |."""
    row = re.compile(r"^\|\s*`([A-Z]+)`\s*\|\s*`(/[^`]*)`\s*\|", re.M)
    return set(row.findall(API_MD.read_text(encoding="utf-8")))


def test_api_lists_every_route_served() -> None:
    served = _served_routes()
    assert len(served) > 30, "the route scan found too few routes: has the code moved?"
    documented = _documented_routes()
    # A route whose router gets its prefix elsewhere is found by its tail.
    missing = sorted(
        f"{method} {path}"
        for method, path in served
        if not any(m == method and d.endswith(path) for m, d in documented)
    )
    assert not missing, missing


def test_api_documents_every_error_code() -> None:
    """Every code the HTTP layer answers with (`ApiError(404, "not_found", ...)`, the verdicts'
    `(409, "sold_out")`, ...) is explained in api.md."""
    coded = re.compile(r"\b[45]\d\d\s*[,:]\s*\"([a-z]+(?:_[a-z]+)*)\"")
    codes = {
        code
        for source in sorted((ROOT / "serve_app").glob("*.py"))
        for code in coded.findall(source.read_text(encoding="utf-8"))
    }
    assert codes >= {"not_found", "invalid_request", "forbidden"}
    text = API_MD.read_text(encoding="utf-8")
    missing = sorted(code for code in codes if f"`{code}`" not in text)
    assert not missing, missing


def test_api_names_the_machine_readable_schema() -> None:
    assert "/openapi.json" in API_MD.read_text(encoding="utf-8")
