"""The FastAPI application: middleware, routers, error handling, model start-up.

``create_app()`` wires everything; ``app`` is what uvicorn serves
(``uvicorn app.web:app``). The serving engine and the promotion listener start in
the lifespan, so importing this module has no side effects beyond building the app.
"""

from __future__ import annotations

import logging
import re
from contextlib import asynccontextmanager
from pathlib import Path

from asgi_csrf import asgi_csrf
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from redis.asyncio import Redis as AsyncRedis
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp
from starsessions import SessionAutoloadMiddleware, SessionMiddleware
from starsessions.stores.redis import RedisStore

from app.accounts.deps import LoginRequired
from app.accounts.endpoints import router as account_pages
from app.adapters.endpoints import api as adapters_api
from app.adapters.endpoints import pages as admin_pages
from app.chat.endpoints import router as chat_pages
from app.errors import AppError
from app.memory.endpoints import api as facts_api
from app.memory.endpoints import pages as memory_pages
from app.openai_api.endpoints import router as openai_router
from app.policy.endpoints import pages as policy_pages
from app.security import RequestGuard, SecurityHeaders
from app.serving.admission import Admission
from app.serving.engine import create_engine
from app.serving.listener import PromotionListener
from app.settings import get_settings
from app.templating import render
from training.embeddings import SentenceEmbedder
from training.memory.statements import StatementDetector
from training.routing.router import product_router

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[1]
API_PREFIXES = ("/api/", "/v1/")
SESSION_LIFETIME_S = 14 * 24 * 3600


@asynccontextmanager
async def lifespan(app: FastAPI):
    settings = get_settings()
    engine = create_engine(settings)
    app.state.engine = engine
    app.state.admission = Admission(settings.max_queued)
    listener = None
    if settings.load_model_in_web:
        await run_in_threadpool(engine.start)
        embedder = await run_in_threadpool(SentenceEmbedder)
        app.state.statements = await run_in_threadpool(StatementDetector, embedder)
        engine.router = await run_in_threadpool(product_router, embedder)
        listener = PromotionListener(engine)
        listener.start()
    yield
    if listener:
        listener.stopping.set()


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith(API_PREFIXES) or "application/json" in request.headers.get("accept", "")


def create_app() -> FastAPI:
    settings = get_settings()
    # The product's own messages (hot-swaps, the model server) beside uvicorn's access
    # log; a no-op where logging is already set up (tests, an embedding application).
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per call to the vLLM server
    app = FastAPI(
        title="sealchat",
        description="A chatbot that learns what you teach it, in its weights (SEAL). "
        "Authenticate with `Authorization: Bearer <API key>` (see /account).",
        version="0.1.0",
        lifespan=lifespan,
    )
    # Sessions live on the server (Redis), keyed by a random id in the cookie: logging
    # out deletes them, and the cookie holds nothing but that id.
    app.add_middleware(SessionAutoloadMiddleware, paths=[re.compile(r"^/(?!static/)")])
    app.add_middleware(
        SessionMiddleware,
        store=RedisStore(connection=AsyncRedis.from_url(settings.effective_redis_url), prefix="sealchat:session:"),
        lifetime=SESSION_LIFETIME_S,
        rolling=True,
        cookie_name="sealchat_session",
        cookie_same_site="lax",
        cookie_https_only=settings.env == "production",
    )
    app.mount("/static", StaticFiles(directory=str(ROOT / "static")), name="static")
    for router in (
        account_pages,
        chat_pages,
        memory_pages,
        admin_pages,
        policy_pages,
        facts_api,
        adapters_api,
        openai_router,
    ):
        app.include_router(router)

    @app.exception_handler(AppError)
    async def app_error(request: Request, exc: AppError):
        # Busy (503) and rate limits (429) say when to come back.
        retry_after = getattr(exc, "retry_after_s", None)
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        if _wants_json(request):
            return JSONResponse(
                {"error": {"message": exc.message, "code": exc.status_code}},
                status_code=exc.status_code,
                headers=headers,
            )
        response = render(request, "error.html", status_code=exc.status_code, message=exc.message)
        if headers:
            response.headers.update(headers)
        return response

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired):
        if request.headers.get("hx-request"):
            return JSONResponse({"error": {"message": "log in first"}}, 401, headers={"HX-Redirect": "/login"})
        return RedirectResponse("/login", status_code=303)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError):
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in exc.errors())
        if _wants_json(request):
            return JSONResponse({"error": {"message": problems, "code": 422}}, 422)
        return render(request, "error.html", status_code=422, message=problems)

    return app


def _skip_csrf(scope: dict) -> bool:
    # Bearer-authenticated API routes carry no cookies worth forging.
    return scope["path"].startswith(API_PREFIXES)


# Signing in and out is always checked, cookies or not: a login CSRF would sign a
# victim into the attacker's account.
ALWAYS_PROTECTED = {"/login", "/register", "/logout"}


def build_asgi_app() -> ASGIApp:
    """The app inside its middleware: security headers, the request guard, then CSRF."""
    settings = get_settings()
    protected = asgi_csrf(
        create_app(),
        signing_secret=settings.session_secret,
        skip_if_scope=_skip_csrf,
        cookie_name="sealchat_csrf",
        always_protect=ALWAYS_PROTECTED,
    )
    return SecurityHeaders(RequestGuard(protected), production=settings.env == "production")


app = build_asgi_app()
