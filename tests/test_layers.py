"""The import rules between Keyturn's packages (ARCHITECTURE: core at the bottom).

- core imports no I/O library and no other Keyturn package, and only
  ``core/jose.py`` touches the JOSE library;
- the guard imports only core (its optional modules bring their own framework);
- keys never imports SQLAlchemy, and reaches storage only through its
  SQL-free contract (``storage/protocol.py``, ``storage/records.py``);
- ``storage/protocol.py`` imports no SQLAlchemy: only records and stdlib;
- storage never imports the server, the client or the guard;
- the services under every front end (tokens, clients, users) import no web
  framework, so the CLI, the admin API and the vendor routes share them;
- the client never imports the server, storage or keys.

Each rule is checked twice: on the source (every ``import``, also inside
functions) and on a fresh interpreter's ``sys.modules`` after importing the
package, which also catches what comes in through another module.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import keyturn

SRC = Path(keyturn.__file__).parent

#: Libraries that do I/O, or serve a framework or a database: never in core.
IO_LIBRARIES = frozenset(
    {"httpx2", "httpx", "requests", "redis", "sqlalchemy", "starlette", "fastapi",
     "uvicorn", "asyncpg", "aiosqlite", "alembic", "orjson", "prometheus_client"}
)  # fmt: skip


def modules(package: str) -> list[Path]:
    return sorted((SRC / package).rglob("*.py"))


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> Iterator[str]:
    """Every module ``path`` imports, absolute, wherever the import statement is."""
    package = module_name(path).rsplit(".", 0 if path.name == "__init__.py" else 1)[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                yield f"{base}.{node.module}" if node.module else base
            elif node.module:
                yield node.module


def top(name: str) -> str:
    return name.split(".")[0]


def keyturn_package(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if parts[0] == "keyturn" and len(parts) > 1 else None


def loaded_after_import(names: list[str]) -> set[str]:
    """``sys.modules`` of a fresh interpreter after importing ``names``."""
    code = f"import sys\nfor n in {names!r}: __import__(n)\nprint('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def violations(package: str, allowed: set[str], forbidden_libraries: frozenset[str]) -> list[str]:
    found = []
    for path in modules(package):
        for name in imports(path):
            inner = keyturn_package(name)
            if (inner is not None and inner not in allowed) or top(name) in forbidden_libraries:
                found.append(f"{path.relative_to(SRC)} imports {name}")
    return found


# -- core ------------------------------------------------------------------


def test_core_source_imports_no_io_library_and_no_other_package() -> None:
    assert violations("core", {"core"}, IO_LIBRARIES) == []


def test_only_core_jose_touches_the_jose_library() -> None:
    owners = {
        path.relative_to(SRC).as_posix()
        for path in SRC.rglob("*.py")
        if any(top(name) == "joserfc" for name in imports(path))
    }
    assert owners == {"core/jose.py"}


def test_importing_all_of_core_loads_no_io_library() -> None:
    loaded = loaded_after_import([module_name(p) for p in modules("core")])
    assert {top(m) for m in loaded} & IO_LIBRARIES == set()
    assert {keyturn_package(m) for m in loaded} <= {None, "core"}


# -- guard -----------------------------------------------------------------

#: The guard's optional integrations, each the one owner of its library.
GUARD_LIBRARIES = {
    "httpx2": "guard/_http.py",
    "starlette": "guard/starlette.py",
    "fastapi": "guard/fastapi.py",
    "redis": "guard/redis_denylist.py",
}


def test_guard_imports_only_core() -> None:
    assert violations("guard", {"core", "guard"}, frozenset()) == []


def test_guard_imports_each_library_at_one_point() -> None:
    for path in modules("guard"):
        for name in imports(path):
            owner = GUARD_LIBRARIES.get(top(name))
            where = path.relative_to(SRC).as_posix()
            assert owner is None or owner == where, f"{where} imports {name}"


def test_base_guard_import_loads_no_framework_store_or_server() -> None:
    loaded = loaded_after_import(["keyturn.guard"])
    assert {top(m) for m in loaded} & {"starlette", "fastapi", "redis", "sqlalchemy"} == set()
    assert {keyturn_package(m) for m in loaded} <= {None, "core", "guard"}


# -- keys ------------------------------------------------------------------


#: What keys may see of storage: the contract and its records, never the SQL.
STORAGE_CONTRACT = frozenset({"keyturn.storage.protocol", "keyturn.storage.records"})


def test_keys_source_never_imports_sqlalchemy() -> None:
    assert violations("keys", {"core", "keys", "storage"}, frozenset({"sqlalchemy"})) == []


def test_keys_reach_storage_only_through_its_contract() -> None:
    found = [
        f"{path.relative_to(SRC)} imports {name}"
        for path in modules("keys")
        for name in imports(path)
        if keyturn_package(name) == "storage" and name not in STORAGE_CONTRACT
    ]
    assert found == []


def test_importing_all_of_keys_loads_no_sqlalchemy() -> None:
    loaded = loaded_after_import([module_name(p) for p in modules("keys")])
    assert "sqlalchemy" not in {top(m) for m in loaded}
    assert {m for m in loaded if keyturn_package(m) == "storage"} <= {
        "keyturn.storage",
        *STORAGE_CONTRACT,
    }


# -- storage ---------------------------------------------------------------


def test_storage_protocol_imports_only_records_and_stdlib() -> None:
    path = SRC / "storage" / "protocol.py"
    outside = {
        name
        for name in imports(path)
        if name != "__future__" and top(name) not in sys.stdlib_module_names
    }
    assert outside == {"keyturn.storage.records"}


def test_importing_the_storage_protocol_loads_no_sqlalchemy() -> None:
    loaded = loaded_after_import(["keyturn.storage.protocol"])
    assert "sqlalchemy" not in {top(m) for m in loaded}


def test_storage_imports_no_package_above_it() -> None:
    assert violations("storage", {"core", "storage"}, frozenset({"starlette", "fastapi"})) == []


def test_repository_still_exports_the_contract() -> None:
    from keyturn.storage import protocol, repository

    for name in ("Storage", "TokenFilter", "ClientExistsError", "UserExistsError"):
        assert getattr(repository, name) is getattr(protocol, name)


# -- server services ---------------------------------------------------------

SERVICES = ["token_service.py", "client_service.py", "users.py"]


@pytest.mark.parametrize("service", SERVICES)
def test_services_import_no_web_framework(service: str) -> None:
    path = SRC / "server" / service
    assert {top(name) for name in imports(path)} & {"starlette", "fastapi", "uvicorn"} == set()


# -- client ----------------------------------------------------------------


def test_client_source_never_imports_server_storage_or_keys() -> None:
    allowed = {"core", "client"}
    assert violations("client", allowed, frozenset({"sqlalchemy", "starlette"})) == []


@pytest.mark.parametrize("package", ["keyturn.client", "keyturn.client.api"])
def test_client_import_loads_no_server_side(package: str) -> None:
    loaded = loaded_after_import([package])
    assert {keyturn_package(m) for m in loaded} <= {None, "core", "client"}
    assert {top(m) for m in loaded} & {"sqlalchemy", "starlette", "orjson"} == set()
