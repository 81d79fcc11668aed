"""A real pretix for the test suite: started on 127.0.0.1 on a free port, with its own data
directory and a SQLite database copied from the migrated template that `scripts/pretix-env`
caches, bootstrapped (an organizer, a team with an API token, an event series with two dates
and two products with quotas), and stopped after.

The environment is `SHOWDIST_PRETIX_VENV` (exported by `scripts/test`; by default the cache
path `scripts/pretix-env` uses). A pretix that is missing or does not start raises
`PretixError`: a test that needs pretix fails loudly, it is never skipped.

`PretixAdmin` is the box office's side: it creates events, products, dates and quotas, cancels
orders and checks tickets in, through pretix's own REST API (as an organizer's staff would,
with the same team token)."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from tests.support.services import HOST, free_port

__all__ = [
    "PRETIX_VERSION",
    "PretixAdmin",
    "PretixError",
    "PretixPostgres",
    "PretixServer",
    "SeriesEvent",
    "pretix_session",
]

PRETIX_VERSION = "2026.8.0"  # the version scripts/pretix-env pins
VENV_ENV = "SHOWDIST_PRETIX_VENV"
ORGANIZER = "showdist"

# Run by pretix's own Python before the server starts: the organizer, its API team and token,
# and manual payments enabled for the organizer's events (pretix puts an event with paid
# products live only when a payment method is enabled; the REST API cannot enable one).
_BOOTSTRAP = """
import json, os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pretix.settings")
import django
django.setup()
from django_scopes import scopes_disabled
from pretix.base.models import Organizer, Team, TeamAPIToken
with scopes_disabled():
    org = Organizer.objects.create(name="showdist test box office", slug=sys.argv[1])
    org.settings.payment_manual__enabled = True
    team = Team.objects.create(
        organizer=org, name="showdist API", all_events=True,
        all_event_permissions=True, all_organizer_permissions=True,
    )
    token = TeamAPIToken.objects.create(team=team, name="showdist")
    print(json.dumps({"organizer": org.slug, "token": token.token}))
"""


# pretix's own "cancel event" (what its backend runs when the box office cancels an event or
# one of its dates): every order of it cancelled, with no refund made in pretix.
_CANCEL_EVENT = """
import os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pretix.settings")
import django
django.setup()
from django_scopes import scopes_disabled
from pretix.base.models import Event
from pretix.base.services.cancelevent import cancel_event
with scopes_disabled():
    event = Event.objects.get(organizer__slug=sys.argv[1], slug=sys.argv[2])
    subevent = int(sys.argv[3]) if sys.argv[3] != "-" else None
    cancel_event.apply(kwargs=dict(
        event=event.pk, subevent=subevent, auto_refund=False, keep_fee_fixed="0.00",
        keep_fee_per_ticket="0.00", keep_fee_percentage="0.00", keep_fees=[], send=False,
        user=None,
    )).get()
"""


class PretixError(RuntimeError):
    """pretix could not be found, started or driven."""


def pretix_venv() -> Path:
    configured = os.environ.get(VENV_ENV)
    if configured:
        return Path(configured)
    return Path.home() / ".cache" / "showdist" / f"pretix-{PRETIX_VERSION}"


@dataclass(frozen=True)
class PretixPostgres:
    """A PostgreSQL database for pretix (trust authentication, as the suite's server)."""

    host: str
    port: int
    user: str
    database: str


class PretixServer:
    """One pretix (gunicorn, `workers` sync workers) and its data, in a temporary directory."""

    def __init__(self, root: Path, venv: Path, port: int) -> None:
        self.root = root
        self.venv = venv
        self.port = port
        self.organizer = ORGANIZER
        self.token = ""
        self.series: SeriesEvent | None = None  # the bootstrapped event series
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def log_file(self) -> Path:
        return self.root / "gunicorn.log"

    @classmethod
    def start(
        cls, *, workers: int = 2, timeout: float = 90.0, postgres: PretixPostgres | None = None
    ) -> PretixServer:
        """A pretix on a copy of the migrated SQLite template, or (`postgres`) on that
        PostgreSQL database, migrated here (a few minutes: for the benchmarks)."""
        venv = pretix_venv()
        template = venv / "template" / "db.sqlite3"
        if not (venv / "bin" / "python").exists() or not (venv / ".installed").exists():
            raise PretixError(
                f"no pretix environment at {venv}: run scripts/pretix-env (scripts/test does)"
            )
        if postgres is None and not template.exists():
            raise PretixError(
                f"no migrated template database at {template}: run scripts/pretix-env"
            )
        root = Path(tempfile.mkdtemp(prefix="showdist-pretix-"))
        server = cls(root, venv, free_port())
        try:
            if postgres is None:
                server._prepare(template)
            else:
                server._prepare_postgres(postgres)
            server._bootstrap()
            server._serve(workers, timeout)
        except BaseException:
            server.stop()
            raise
        atexit.register(server.stop)
        return server

    def _prepare(self, template: Path) -> None:
        data = self.root / "data"
        data.mkdir()
        shutil.copyfile(template, data / "db.sqlite3")
        self._write_config(data, ["backend=sqlite3", f"name={data / 'db.sqlite3'}"])

    def _prepare_postgres(self, db: PretixPostgres) -> None:
        data = self.root / "data"
        data.mkdir()
        self._write_config(
            data,
            [
                "backend=postgresql",
                f"name={db.database}",
                f"user={db.user}",
                f"host={db.host}",
                f"port={db.port}",
            ],
        )
        done = subprocess.run(
            [str(self.python), "-m", "pretix", "migrate", "--noinput"],
            cwd=self.root,
            env=self._env(),
            capture_output=True,
            timeout=1800,
            check=False,
        )
        if done.returncode != 0:
            raise PretixError(f"pretix migrate failed:\n{done.stderr.decode()[-3000:]}")

    def _write_config(self, data: Path, database: list[str]) -> None:
        (self.root / "pretix.cfg").write_text(
            "\n".join(
                [
                    "[pretix]",
                    "instance_name=showdist-test",
                    f"url={self.url}",
                    f"datadir={data}",
                    "ecb_rates=False",
                    "[database]",
                    *database,
                    "[django]",
                    "secret=showdist-test-not-a-secret",
                    "debug=False",
                    "[mail]",
                    "from=pretix@localhost",
                    "",
                ]
            )
        )

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        env["PRETIX_CONFIG_FILE"] = str(self.root / "pretix.cfg")
        return env

    def _run_script(self, name: str, text: str, *args: str) -> subprocess.CompletedProcess[bytes]:
        script = self.root / name
        script.write_text(text)
        return subprocess.run(
            [str(self.python), str(script), *args],
            cwd=self.root,
            env=self._env(),
            capture_output=True,
            timeout=120,
            check=False,
        )

    def cancel_event(self, event: str, subevent: int | None = None) -> None:
        """The box office cancels the event (or one of its dates) in pretix."""
        done = self._run_script(
            "cancel_event.py", _CANCEL_EVENT, self.organizer, event, str(subevent or "-")
        )
        if done.returncode != 0:
            raise PretixError(f"cancel_event failed:\n{done.stderr.decode()[-3000:]}")

    def _bootstrap(self) -> None:
        done = self._run_script("bootstrap.py", _BOOTSTRAP, self.organizer)
        if done.returncode != 0:
            raise PretixError(f"pretix bootstrap failed:\n{done.stderr.decode()[-3000:]}")
        self.token = json.loads(done.stdout.decode().strip().splitlines()[-1])["token"]

    def _serve(self, workers: int, timeout: float) -> None:
        log = self.log_file.open("wb")
        self._proc = subprocess.Popen(
            [
                str(self.python),
                "-m",
                "gunicorn",
                "pretix.wsgi",
                "--bind",
                f"{HOST}:{self.port}",
                "--workers",
                str(workers),
                "--timeout",
                "0",  # a paused pretix (SIGSTOP) is not a dead worker
                "--no-control-socket",
                "--preload",  # pretix is imported once, then the workers fork
                "--graceful-timeout",
                "5",
            ],
            cwd=self.root,
            env=self._env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: paused and stopped as one
        )
        log.close()
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=5.0, trust_env=False) as client:
            while True:
                if self._proc.poll() is not None:
                    raise PretixError(f"pretix exited at start:\n{self._tail()}")
                try:
                    answer = client.get(
                        f"{self.url}/api/v1/organizers/",
                        headers={"Authorization": f"Token {self.token}"},
                    )
                    if answer.status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise PretixError(f"pretix did not answer within {timeout}s:\n{self._tail()}")
                time.sleep(0.2)

    def _tail(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def _signal(self, sig: signal.Signals) -> None:
        if self._proc is None or self._proc.poll() is not None:
            raise PretixError("pretix is not running")
        os.killpg(self._proc.pid, sig)

    def pause(self) -> None:
        """Freeze every pretix process (SIGSTOP): connections are still accepted by the kernel,
        requests wait in the socket, nothing answers. `resume` lets them through."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def stop(self) -> None:
        atexit.unregister(self.stop)
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGCONT)
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=15)
        shutil.rmtree(self.root, ignore_errors=True)

    def admin(self) -> PretixAdmin:
        return PretixAdmin(self.url, self.organizer, self.token)

    def gateway_config(self, event: str, **extra: Any) -> dict[str, Any]:
        """The admin API's `config` for a pretix supplier of `event` (token in clear)."""
        return {
            "base_url": self.url,
            "organizer": self.organizer,
            "event": event,
            "token": self.token,
            **extra,
        }


@dataclass(frozen=True, slots=True)
class SeriesEvent:
    """An event series made by `PretixAdmin.create_series`: two dates, a plain product and a
    product with two variations, a quota of each product on each date."""

    slug: str
    dates: tuple[int, int]  # pretix subevent ids
    standing: int  # item id
    seated: int  # item id
    front: int  # variation ids
    back: int
    quotas: dict[tuple[int, str], int]  # (date, "standing" | "seated") -> quota id


class PretixAdmin:
    """The box office's own calls to its pretix (REST, synchronous)."""

    def __init__(self, url: str, organizer: str, token: str) -> None:
        self._client = httpx.Client(
            base_url=f"{url}/api/v1/organizers/{organizer}/",
            headers={"Authorization": f"Token {token}", "Accept-Language": "en"},
            timeout=60.0,
            trust_env=False,
        )

    def close(self) -> None:
        self._client.close()

    def call(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        answer = self._client.request(method, path, json=body, params=params or None)
        if answer.status_code >= 300:
            raise PretixError(f"{method} {path}: HTTP {answer.status_code} {answer.text[:2000]}")
        return answer.json() if answer.content else None

    def event(self, slug: str) -> str:
        return f"events/{slug}/"

    def create_series(
        self,
        slug: str,
        *,
        standing_size: int = 10,
        seated_size: int = 5,
        first_date: datetime | None = None,
    ) -> SeriesEvent:
        """An event series in EUR: "Standing" 38.00 (40.00 on the first date), "Seated" with
        variations "Front" 80.00 and "Back" 60.00; each product's quota on each date."""
        first = first_date or datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
        self.call(
            "POST",
            "events/",
            {
                "name": {"en": f"Series {slug}", "de": f"Reihe {slug}"},
                "slug": slug,
                "currency": "EUR",
                "date_from": first.isoformat(),
                "has_subevents": True,
                "timezone": "Europe/Berlin",
                "location": {"en": "Test Hall\nBerlin"},
                "plugins": ["pretix.plugins.manualpayment"],
            },
        )
        ev = self.event(slug)
        standing = self.call(
            "POST",
            ev + "items/",
            {"name": {"en": "Standing"}, "default_price": "38.00", "admission": True},
        )
        seated = self.call(
            "POST",
            ev + "items/",
            {
                "name": {"en": "Seated"},
                "default_price": "55.00",
                "admission": True,
                "has_variations": True,
                "variations": [
                    {"value": {"en": "Front"}, "default_price": "80.00"},
                    {"value": {"en": "Back"}, "default_price": "60.00"},
                ],
            },
        )
        front, back = (v["id"] for v in seated["variations"])
        dates = []
        for n, override in ((1, [{"item": standing["id"], "price": "40.00"}]), (2, [])):
            sub = self.call(
                "POST",
                ev + "subevents/",
                {
                    "name": {"en": f"Night {n}"},
                    "date_from": (first + timedelta(days=n - 1)).isoformat(),
                    "active": True,
                    "meta_data": {},
                    "item_price_overrides": override,
                },
            )
            dates.append(sub["id"])
        quotas: dict[tuple[int, str], int] = {}
        for date in dates:
            quotas[date, "standing"] = self.call(
                "POST",
                ev + "quotas/",
                {
                    "name": "standing",
                    "size": standing_size,
                    "items": [standing["id"]],
                    "variations": [],
                    "subevent": date,
                },
            )["id"]
            quotas[date, "seated"] = self.call(
                "POST",
                ev + "quotas/",
                {
                    "name": "seated",
                    "size": seated_size,
                    "items": [seated["id"]],
                    "variations": [front, back],
                    "subevent": date,
                },
            )["id"]
        self.call("PATCH", ev, {"live": True})
        return SeriesEvent(
            slug, (dates[0], dates[1]), standing["id"], seated["id"], front, back, quotas
        )

    def create_single(self, slug: str, *, size: int = 4, price: str = "25.50") -> int:
        """A single event (no dates) with one product "Entry" and its quota; its item id."""
        when = datetime.now(UTC).replace(microsecond=0) + timedelta(days=40)
        self.call(
            "POST",
            "events/",
            {
                "name": {"en": f"Single {slug}"},
                "slug": slug,
                "currency": "EUR",
                "date_from": when.isoformat(),
                "timezone": "Europe/Berlin",
                "location": {"en": "Club\nHamburg"},
                "meta_data": {},
            },
        )
        ev = self.event(slug)
        item = self.call(
            "POST",
            ev + "items/",
            {"name": {"en": "Entry"}, "default_price": price, "admission": True},
        )
        self.call(
            "POST",
            ev + "quotas/",
            {
                "name": "entry",
                "size": size,
                "items": [item["id"]],
                "variations": [],
                "subevent": None,
            },
        )
        self.call("PATCH", ev, {"live": True})
        return int(item["id"])

    def order(self, event: str, code: str) -> Any:
        return self.call("GET", self.event(event) + f"orders/{code}/")

    def orders(self, event: str) -> list[Any]:
        results: list[Any] = []
        page = 1
        while True:
            body = self.call("GET", self.event(event) + "orders/", page=page)
            results.extend(body["results"])
            if not body["next"]:
                return results
            page += 1

    def cancel_order(self, event: str, code: str) -> Any:
        """The box office cancels a (paid) order in pretix, as from its backend."""
        return self.call(
            "POST", self.event(event) + f"orders/{code}/mark_canceled/", {"send_email": False}
        )

    def quota(self, event: str, quota_id: int) -> Any:
        return self.call("GET", self.event(event) + f"quotas/{quota_id}/availability/")

    def set_quota_size(self, event: str, quota_id: int, size: int) -> None:
        self.call("PATCH", self.event(event) + f"quotas/{quota_id}/", {"size": size})

    def checkin_list(self, event: str) -> int:
        body = self.call(
            "POST",
            self.event(event) + "checkinlists/",
            {"name": "Entrance", "all_products": True, "subevent": None, "limit_products": []},
        )
        return int(body["id"])

    def redeem(self, list_id: int, secret: str) -> Any:
        """pretix's own check-in of a scanned ticket secret (what its scanner apps call);
        `status` is `ok`, or `error` with a `reason`."""
        answer = self._client.post(
            "checkinrpc/redeem/", json={"secret": secret, "lists": [list_id], "force": False}
        )
        if answer.status_code not in (201, 400, 404):
            raise PretixError(f"redeem: HTTP {answer.status_code} {answer.text[:2000]}")
        return answer.json()


def pretix_session() -> Iterator[PretixServer]:
    """The suite's one pretix (the session fixture `pretix` in tests/conftest.py): started,
    bootstrapped with the event series `series` (`server.series`), stopped after."""
    server = PretixServer.start()
    try:
        admin = server.admin()
        try:
            server.series = admin.create_series("series")
        finally:
            admin.close()
        yield server
    finally:
        server.stop()
