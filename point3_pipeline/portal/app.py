"""The reports portal's web app (Starlette): login, each person's merchants, their workbooks and
filing CSVs, downloads. `create_app(settings)` builds it; `point3 serve` runs it with uvicorn.

Every response carries the security headers (SecurityHeaders). Without a session every page and
every file answers 303 to /login. A merchant the person may not see answers 404 exactly like
one that does not exist, and so does any file path that is not a workbook or CSV inside that
merchant's reports folder. Each POST needs its form's csrf_token: the login form's is tied to a
cookie of its own (there is no session yet), the others' to the session; without it, 403.
"""

from __future__ import annotations

import hmac
import os
import secrets
import threading
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from point3_pipeline.config import ConfigError
from point3_pipeline.merchants import Merchant
from point3_pipeline.periods import Period
from point3_pipeline.portal import accounts, audit, pages, sessions
from point3_pipeline.portal.accounts import HASHER, Outcome, User
from point3_pipeline.portal.files import MEDIA_TYPES, content_disposition, raw_path_problem, resolve_download
from point3_pipeline.portal.library import Library, filing_files
from point3_pipeline.portal.settings import PortalSettings
from point3_pipeline.portal.store import Store, open_store

MAX_FORM_BYTES = 8_192  # a login form is a few hundred bytes; more is refused before parsing
MAX_FORM_FIELDS = 20  # a login form has three
# Password checks running at once: argon2id takes 64 MiB and tens of milliseconds of a core per
# check, so a flood of logins would otherwise take a worker thread and 64 MiB each. Past this, 503.
MAX_CONCURRENT_LOGINS = 4
CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")  # fmt: skip
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"content-security-policy", CSP.encode()),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"private, no-store"),  # workbooks and pages alike: never in a shared cache
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
)
WRONG_LOGIN = "아이디 또는 비밀번호가 맞지 않습니다."
LOCKED_LOGIN = "로그인 실패가 많아 잠시 로그인이 막혔습니다. 나중에 다시 하거나 운영자에게 잠금 해제를 요청하세요."
NOT_FOUND = ("찾을 수 없습니다", "요청한 페이지나 파일이 없거나 볼 수 있는 권한이 없습니다.")


class SecurityHeaders:
    """Pure ASGI: the security headers on every response (the router's own 404s included), and
    a 404 for a path with an encoded separator, dot, NUL or percent sign, before routing."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if raw_path_problem(scope.get("raw_path") or scope["path"].encode()):
            return await _not_found()(scope, receive, _with_headers(send))
        return await self.app(scope, receive, _with_headers(send))


def _with_headers(send):
    names = {name for name, _ in SECURITY_HEADERS}

    async def sending(message):
        if message["type"] == "http.response.start":
            kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
            message = {**message, "headers": kept + list(SECURITY_HEADERS)}
        await send(message)

    return sending


def _not_found() -> HTMLResponse:
    """One 404 for everything (the same bytes whoever asks): a missing merchant, another's, a bad path."""
    return HTMLResponse(pages.message_page(*NOT_FOUND), status_code=404)


class Portal:
    """The app's state and its endpoints."""

    def __init__(self, settings: PortalSettings, store: Store, library: Library, hasher=HASHER):
        self.settings = settings
        self.store = store
        self.library = library
        self.hasher = hasher
        prefix = "__Host-" if settings.secure_cookies else ""  # __Host-: Secure, Path=/, no Domain
        self.session_cookie = f"{prefix}point3-session"
        self.login_cookie = f"{prefix}point3-login"
        self.password_checks = threading.BoundedSemaphore(MAX_CONCURRENT_LOGINS)

    # --- cookies and requests

    def _set_cookie(self, response: Response, name: str, value: str, max_age: int | None = None) -> None:
        response.set_cookie(name, value, max_age=max_age, path="/", secure=self.settings.secure_cookies,
                            httponly=True, samesite="strict")  # fmt: skip

    def _clear_cookie(self, response: Response, name: str) -> None:
        response.delete_cookie(name, path="/", secure=self.settings.secure_cookies, httponly=True, samesite="strict")

    @staticmethod
    def address(request: Request) -> str:
        return request.client.host if request.client else "unknown"

    async def session_user(self, request: Request) -> tuple[sessions.Session, User] | None:
        token = request.cookies.get(self.session_cookie)
        return await run_in_threadpool(self._session_user, token)

    def _session_user(self, token: str | None) -> tuple[sessions.Session, User] | None:
        session = sessions.find(self.store, token, self.settings.session)
        if session is None:
            return None
        with self.store.connect() as conn:
            user = accounts.get_user(conn, session.user_name)
        return None if user is None else (session, user)

    def visible_merchant(self, user: User, merchant_id: str) -> Merchant | None:
        return self.library.merchant(merchant_id) if user.may_see(merchant_id) else None

    # --- login and logout

    async def login_form(self, request: Request) -> Response:
        if await self.session_user(request) is not None:
            return RedirectResponse("/", status_code=303)
        token = secrets.token_urlsafe(32)
        response = HTMLResponse(pages.login_page(token))
        self._set_cookie(response, self.login_cookie, token, max_age=3_600)
        return response

    async def login(self, request: Request) -> Response:
        form = await small_form(request)
        if form is None:
            return HTMLResponse(pages.message_page("요청이 너무 큽니다", "로그인 화면을 다시 여세요."), status_code=413)
        expected = request.cookies.get(self.login_cookie, "")
        if not expected or not hmac.compare_digest(form.get("csrf_token", "").encode(), expected.encode()):
            return _forbidden("로그인 화면을 다시 열어 주세요.")
        name, password = form.get("username", "").strip()[:64], form.get("password", "")
        if not self.password_checks.acquire(blocking=False):
            return HTMLResponse(pages.message_page("로그인이 몰렸습니다", "잠시 후 다시 로그인하세요."),
                                status_code=503, headers={"retry-after": "1"})  # fmt: skip
        try:
            outcome, user = await run_in_threadpool(
                accounts.login, self.store, name, password, self.address(request), self.settings.login, self.hasher)
        finally:
            self.password_checks.release()
        if outcome is not Outcome.OK:
            status, message = (429, LOCKED_LOGIN) if outcome is Outcome.LOCKED else (401, WRONG_LOGIN)
            return HTMLResponse(pages.login_page(expected, message), status_code=status)
        old = request.cookies.get(self.session_cookie)
        token = await run_in_threadpool(self._start_session, user.name, self.address(request), old)
        response = RedirectResponse("/", status_code=303)
        self._set_cookie(response, self.session_cookie, token)
        self._clear_cookie(response, self.login_cookie)
        return response

    def _start_session(self, user_name: str, address: str, old_token: str | None) -> str:
        old = sessions.find(self.store, old_token, self.settings.session)
        if old is not None:  # a new login is a new session: no fixation of an old token
            sessions.end(self.store, old)
        return sessions.create(self.store, user_name, address, self.settings.session)

    async def logout(self, request: Request) -> Response:
        form = await small_form(request)
        found = await self.session_user(request)
        response = RedirectResponse("/login", status_code=303)
        if found is None:
            self._clear_cookie(response, self.session_cookie)
            return response
        session, user = found
        if form is None or not session.csrf_ok(form.get("csrf_token")):
            return _forbidden("페이지를 새로 고친 뒤 다시 로그아웃하세요.")
        await run_in_threadpool(self._end_session, session, self.address(request))
        self._clear_cookie(response, self.session_cookie)
        return response

    def _end_session(self, session: sessions.Session, address: str) -> None:
        sessions.end(self.store, session)
        audit.write(self.store, "logout", session.user_name, address=address)

    # --- pages

    async def home(self, request: Request) -> Response:
        found = await self.session_user(request)
        if found is None:
            return RedirectResponse("/login", status_code=303)
        session, user = found
        merchants = [m for m in self.library.merchants().merchants if user.may_see(m.id)]
        return HTMLResponse(pages.home_page(user.name, session.csrf_secret, merchants))

    async def merchant_of(self, request: Request) -> Response | tuple[sessions.Session, User, Merchant]:
        """The session, person and merchant a merchant's page or file rests on; else the answer:
        303 to /login without a session, 404 for a merchant the person may not see."""
        found = await self.session_user(request)
        if found is None:
            return RedirectResponse("/login", status_code=303)
        session, user = found
        merchant = self.visible_merchant(user, request.path_params["merchant_id"])
        return _not_found() if merchant is None else (session, user, merchant)

    async def merchant(self, request: Request) -> Response:
        found = await self.merchant_of(request)
        if isinstance(found, Response):
            return found
        session, user, merchant = found
        return HTMLResponse(await run_in_threadpool(self._merchant_page, user, session, merchant))

    def _merchant_page(self, user: User, session: sessions.Session, merchant: Merchant) -> str:
        shelf = self.library.shelf(merchant)
        latest = shelf.latest()
        existing = _existing(merchant.reports_dir, [v.file_name for v in latest])
        filing = filing_files(merchant.reports_dir)
        return pages.merchant_page(user.name, session.csrf_secret, merchant, shelf, filing, existing)

    async def versions(self, request: Request) -> Response:
        found = await self.merchant_of(request)
        if isinstance(found, Response):
            return found
        session, user, merchant = found
        kind, period = request.path_params["kind"], _period(request.path_params["period"])
        shelf = None if period is None else await run_in_threadpool(self.library.shelf, merchant)
        versions = shelf.of(kind, period) if shelf is not None else []
        if not versions:
            return _not_found()
        existing = _existing(merchant.reports_dir, [v.file_name for v in versions])
        return HTMLResponse(pages.versions_page(user.name, session.csrf_secret, merchant, kind, period, versions, existing))

    async def download(self, request: Request) -> Response:
        found = await self.merchant_of(request)
        if isinstance(found, Response):
            return found
        _, user, merchant = found
        requested = request.path_params["path"]
        path = await run_in_threadpool(resolve_download, merchant.reports_dir, requested, self._refused())
        if path is None:
            return _not_found()
        await run_in_threadpool(audit.write, self.store, "download", user.name,
                                detail=f"{merchant.id}/{requested}", address=self.address(request))  # fmt: skip
        headers = {"content-disposition": content_disposition(f"{merchant.name}_{path.name}")}
        return FileResponse(path, headers=headers, media_type=MEDIA_TYPES[path.suffix.lower()])

    def _refused(self) -> list[Path]:
        """Files never served even if a reports folder reaches them: key files and the store."""
        keys = [m.key_file for m in self.library.merchants().merchants if m.key_file is not None]
        return [*keys, self.store.path]

    async def stylesheet(self, request: Request) -> Response:
        return Response(STYLESHEET, media_type="text/css")


STYLESHEET = resources.files("point3_pipeline.portal").joinpath("static", "portal.css").read_text(encoding="utf-8")


def _period(label: str) -> Period | None:
    try:
        return Period.parse(label)
    except ValueError:
        return None


def _existing(reports_dir: Path, names: list[str]) -> set[str]:
    folder = str(reports_dir)
    return {name for name in names if os.path.isfile(os.path.join(folder, name))}


def _forbidden(text: str) -> HTMLResponse:
    return HTMLResponse(pages.message_page("요청을 확인할 수 없습니다", text), status_code=403)


async def small_form(request: Request) -> dict[str, str] | None:
    """An url-encoded form of at most MAX_FORM_BYTES and MAX_FORM_FIELDS fields, each field's
    first value; None if larger."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    try:
        fields = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    except ValueError:  # more fields than that: parse_qs refuses rather than truncates
        return None
    return {key: values[0] for key, values in fields.items()}


async def _router_not_found(request: Request, exc: Exception) -> Response:
    return _not_found()


async def _server_error(request: Request, exc: Exception) -> Response:
    """A fault past every handler: answered outside SecurityHeaders, so it brings its own."""
    headers = {name.decode(): value.decode() for name, value in SECURITY_HEADERS}
    return HTMLResponse(pages.message_page("서버 오류", "잠시 후 다시 시도하고, 계속되면 운영자에게 알려 주세요."),
                        status_code=500, headers=headers)  # fmt: skip


async def _config_error(request: Request, exc: Exception) -> Response:
    return HTMLResponse(pages.message_page("설정 오류", "포털의 가맹점 설정을 읽을 수 없습니다. 운영자에게 알려 주세요."),
                        status_code=503)  # fmt: skip


def create_app(settings: PortalSettings, *, store: Store | None = None, hasher=HASHER) -> Starlette:
    """The portal for `settings`: its store opened (created if new), its merchants read once
    now (a mistake in the merchants file is a ConfigError, one sentence)."""
    store = store or open_store(settings.db_path)
    library = Library(settings.env)
    check_store_outside_reports(store.path, library)
    portal = Portal(settings, store, library, hasher)
    routes = [
        Route("/login", portal.login_form, methods=["GET"]),
        Route("/login", portal.login, methods=["POST"]),
        Route("/logout", portal.logout, methods=["POST"]),
        Route("/", portal.home, methods=["GET"]),
        Route("/static/portal.css", portal.stylesheet, methods=["GET"]),
        Route("/m/{merchant_id}/", portal.merchant, methods=["GET"]),
        Route("/m/{merchant_id}/versions/{kind}/{period}", portal.versions, methods=["GET"]),
        Route("/m/{merchant_id}/files/{path:path}", portal.download, methods=["GET"]),
    ]
    handlers = {404: _router_not_found, 500: _server_error, ConfigError: _config_error}
    app = Starlette(routes=routes, exception_handlers=handlers)
    app.add_middleware(SecurityHeaders)
    return app


def check_store_outside_reports(store_path: Path, library: Library) -> None:
    """The store (password hashes) must never sit in a folder the portal serves files from."""
    store_path = store_path.resolve()
    for merchant in library.merchants().merchants:
        if store_path.is_relative_to(merchant.reports_dir.resolve()):
            raise ConfigError(f"the portal's store {store_path} is inside merchant {merchant.id!r}'s reports folder "
                              f"{merchant.reports_dir}: set POINT3_PORTAL_DB to a path outside every reports folder.")
