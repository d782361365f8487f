"""Instance administrators: created or promoted from the command line."""

from __future__ import annotations

import sqlalchemy as sa
import structlog
from email_validator import EmailNotValidError, validate_email

from frontdesk.auth.models import User
from frontdesk.core.uow import UnitOfWork

log = structlog.get_logger()


async def create_instance_admin(
    uow: UnitOfWork, *, email: str, password: str, full_name: str
) -> User:
    """Promote the account with this email, or create it verified with this password."""
    try:
        address = validate_email(email, check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise ValueError(f"invalid email address: {exc}") from exc
    user = await uow.session.scalar(sa.select(User).where(User.email == address))
    now = uow.now()
    if user is None:
        if len(password) < 8:
            raise ValueError("the password must have at least 8 characters")
        user = User(
            email=address,
            password_hash=await uow.rt.hasher.hash(password),
            full_name=full_name,
            email_verified_at=now,
            is_instance_admin=True,
            created_at=now,
            updated_at=now,
        )
        uow.session.add(user)
    else:
        user.is_instance_admin = True
        user.updated_at = now
    await uow.session.flush()
    log.info("auth.instance_admin_set", user_id=str(user.id))
    return user
