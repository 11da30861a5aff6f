"""Hub's own notifications (no service) unique per idempotency key and user

Revision ID: 4c2f8e1a9d30
Revises: 1bb7351bcc74
Create Date: 2026-11-25 04:30:00

uq_notifications_service_key_user treats NULL service_ids as distinct, so two concurrent
notify() calls for a task's end or a broadcast batch could both insert. Duplicates such a
race left behind are removed (the first row of each key and user stays) before the index.
"""
from alembic import op
import sqlalchemy as sa


revision = '4c2f8e1a9d30'
down_revision = '1bb7351bcc74'
branch_labels = None
depends_on = None

HUB_ROWS = "service_id IS NULL"


def upgrade():
    op.execute(
        'DELETE FROM notifications WHERE service_id IS NULL AND idempotency_key IS NOT NULL '
        'AND id NOT IN (SELECT MIN(id) FROM notifications WHERE service_id IS NULL '
        'AND idempotency_key IS NOT NULL GROUP BY idempotency_key, "user")')
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.create_index('uq_notifications_hub_key_user', ['idempotency_key', 'user'],
                              unique=True, sqlite_where=sa.text(HUB_ROWS),
                              postgresql_where=sa.text(HUB_ROWS))


def downgrade():
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_index('uq_notifications_hub_key_user', sqlite_where=sa.text(HUB_ROWS),
                            postgresql_where=sa.text(HUB_ROWS))
