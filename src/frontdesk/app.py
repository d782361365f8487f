"""Build the ASGI application: wiring only, no business logic."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI

from frontdesk import jobs as _jobs  # noqa: F401  (registers every job handler)
from frontdesk.auth.pages import pages_router as auth_pages_router
from frontdesk.auth.routes import router as auth_router
from frontdesk.config import Settings
from frontdesk.contacts.routes import router as contacts_router
from frontdesk.conversations.canned_routes import router as canned_responses_router
from frontdesk.conversations.routes import enquiry_router as enquiry_conversation_router
from frontdesk.conversations.routes import router as conversations_router
from frontdesk.conversations.settings_routes import router as chat_settings_router
from frontdesk.conversations.visitor_admin_routes import router as chat_visitors_router
from frontdesk.conversations.visitor_routes import router as chat_visitor_router
from frontdesk.conversations.widget_routes import router as chat_widget_router
from frontdesk.core.clock import Clock
from frontdesk.core.errors import install_error_handlers
from frontdesk.core.health import router as health_router
from frontdesk.core.http import BodySizeLimitMiddleware, RequestTextMiddleware
from frontdesk.core.jobs import Worker
from frontdesk.core.logging import RequestLogMiddleware
from frontdesk.core.routing import skip_unmatchable_routers
from frontdesk.email.analytics_routes import router as email_analytics_router
from frontdesk.email.inbound_routes import router as email_inbound_router
from frontdesk.email.mailbox_routes import router as email_mailbox_router
from frontdesk.email.provider_routes import router as email_provider_router
from frontdesk.email.routes import router as email_router
from frontdesk.email.service import check_email_settings
from frontdesk.email.suppression_routes import router as email_suppression_router
from frontdesk.email.template_routes import router as email_template_router
from frontdesk.email.webhook_routes import router as email_public_router
from frontdesk.enquiries.routes import router as enquiries_router
from frontdesk.forms.routes import public_router as forms_public_router
from frontdesk.forms.routes import router as forms_router
from frontdesk.notifications.routes import router as notifications_router
from frontdesk.payments.delivery_routes import router as invoice_delivery_router
from frontdesk.payments.invoice_routes import enquiry_router as enquiry_invoice_router
from frontdesk.payments.invoice_routes import router as invoices_router
from frontdesk.payments.payment_routes import router as payments_router
from frontdesk.payments.plan_routes import router as plans_router
from frontdesk.payments.public_routes import router as payment_page_router
from frontdesk.payments.settings_routes import router as payment_settings_router
from frontdesk.payments.stripe.routes import router as stripe_settings_router
from frontdesk.payments.stripe.webhook_routes import router as stripe_webhook_router
from frontdesk.payments.subscription_routes import router as subscriptions_router
from frontdesk.realtime.gateway import Gateway
from frontdesk.realtime.routes import router as realtime_router
from frontdesk.runtime import Runtime, build_runtime
from frontdesk.storage.link_routes import router as storage_links_router
from frontdesk.storage.routes import public_router as storage_public_router
from frontdesk.storage.routes import router as storage_router
from frontdesk.workspaces.routes import router as workspaces_router

log = structlog.get_logger()

API_PREFIX = "/api/v1"


def create_app(
    settings: Settings | None = None,
    *,
    runtime: Runtime | None = None,
    clock: Clock | None = None,
    run_worker: bool = True,
) -> FastAPI:
    """Create the application. The runtime is built now and connected in the lifespan."""
    settings = settings or (runtime.settings if runtime else Settings())
    check_email_settings(settings)
    runtime = runtime or build_runtime(settings, clock=clock)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        gateway = Gateway(runtime)
        app.state.gateway = gateway
        await gateway.start()
        if run_worker:
            runtime.worker = Worker(runtime)
            runtime.worker.start()
        # Publish what a previous process committed but did not get to publish.
        await runtime.publish_pending_events()
        try:
            yield
        finally:
            if runtime.worker is not None:
                await runtime.worker.stop(settings.shutdown_grace_seconds)
                runtime.worker = None
            await gateway.stop()
            await runtime.close()

    app = FastAPI(
        title="Frontdesk",
        version="0.1.0",
        description="Enquiries, inbox, email and live updates for small businesses.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    install_error_handlers(app)
    # Added first, so it runs inside BodySizeLimitMiddleware and reads bodies through the
    # size limit.
    app.add_middleware(RequestTextMiddleware)
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        multipart_form_max_bytes=settings.form_multipart_max_bytes,
    )
    app.add_middleware(RequestLogMiddleware)

    app.include_router(health_router)
    for router in (
        auth_router,
        workspaces_router,
        contacts_router,
        enquiries_router,
        enquiry_conversation_router,
        conversations_router,
        canned_responses_router,
        forms_router,
        notifications_router,
        email_router,
        email_provider_router,
        email_suppression_router,
        email_template_router,
        email_inbound_router,
        email_analytics_router,
        email_mailbox_router,
        realtime_router,
        storage_router,
        chat_settings_router,
        chat_visitors_router,
        stripe_settings_router,
        plans_router,
        subscriptions_router,
        payment_settings_router,
        invoices_router,
        invoice_delivery_router,
        enquiry_invoice_router,
        # Last: its /payments/{payment_id} would otherwise take /payments/settings and
        # /payments/stripe.
        payments_router,
    ):
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(forms_public_router)
    app.include_router(chat_visitor_router)
    app.include_router(chat_widget_router)
    app.include_router(email_public_router)
    app.include_router(stripe_webhook_router)
    app.include_router(payment_page_router)
    app.include_router(storage_public_router)
    app.include_router(storage_links_router)
    app.include_router(auth_pages_router)
    skip_unmatchable_routers(app)
    return app


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory frontdesk.app:app_from_env``: settings from the environment."""
    from frontdesk.core.logging import configure_logging

    settings = Settings()
    configure_logging(settings)
    return create_app(settings)
