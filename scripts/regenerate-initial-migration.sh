#!/usr/bin/env bash
# Rebuild the initial Alembic migration from the current models. Use only while no release
# exists; after the first release every schema change gets a migration of its own.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python}
versions=src/frontdesk/migrations/versions
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
rm -f "$versions"/*.py
"$python" - "$scratch/schema.db" <<'PY'
import sys
from alembic import command
from frontdesk.core.migrate import alembic_config
config = alembic_config(f"sqlite+aiosqlite:///{sys.argv[1]}")
command.revision(config, message="initial schema", autogenerate=True, rev_id="0001")
PY
sed -i 's/astext_type=Text()/astext_type=sa.Text()/g' "$versions"/*.py
"$python" -m ruff format -q "$versions" 2>/dev/null || true
echo "regenerated: $(ls "$versions")"
