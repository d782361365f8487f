"""message search

Full-text search over conversation message bodies, which autogenerate cannot express:
an FTS5 table on SQLite, kept in step by the conversation service, and a GIN expression
index on PostgreSQL. Written by hand; scripts/regenerate-initial-migration.sh keeps it.

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # remove_diacritics 2 folds every diacritic, including those unicode61's default
        # (1) misses when a character has several.
        op.execute(
            "CREATE VIRTUAL TABLE conversation_messages_fts USING fts5("
            "message_id UNINDEXED, body, tokenize = 'unicode61 remove_diacritics 2')"
        )
        op.execute(
            "INSERT INTO conversation_messages_fts (message_id, body) "
            "SELECT id, body FROM conversation_messages "
            "WHERE deleted_at IS NULL AND body != ''"
        )
    else:
        op.execute(
            "CREATE INDEX ix_conversation_messages_body_search ON conversation_messages "
            "USING gin (to_tsvector('simple'::regconfig, body))"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE conversation_messages_fts")
    else:
        op.execute("DROP INDEX ix_conversation_messages_body_search")
