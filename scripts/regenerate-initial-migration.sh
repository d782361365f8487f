#!/usr/bin/env bash
# Rebuild the initial Alembic migration (0001) from the current models. Use only while no
# release exists; after the first release every schema change gets a migration of its own.
# The hand-written migrations after 0001, such as 0002_message_search.py, are kept: they are
# moved aside while autogenerate runs, because Alembic refuses a history whose base is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python}
versions=src/frontdesk/migrations/versions
scratch=$(mktemp -d)
mkdir "$scratch/kept"
trap 'mv "$scratch"/kept/*.py "$versions"/ 2>/dev/null || true; rm -rf "$scratch"' EXIT
for file in "$versions"/*.py; do
    case "$(basename "$file")" in
        0001_*.py | __init__.py) ;;
        *) mv "$file" "$scratch/kept/" ;;
    esac
done
rm -f "$versions"/0001_*.py
"$python" - "$scratch/schema.db" <<'PY'
import sys
from alembic import command
from frontdesk.core.migrate import alembic_config
config = alembic_config(f"sqlite+aiosqlite:///{sys.argv[1]}")
command.revision(config, message="initial schema", autogenerate=True, rev_id="0001")
PY
sed -i 's/astext_type=Text()/astext_type=sa.Text()/g' "$versions"/0001_*.py
"$python" -m ruff format -q "$versions"/0001_*.py 2>/dev/null || true
mv "$scratch"/kept/*.py "$versions"/ 2>/dev/null || true
echo "regenerated: $(ls "$versions")"
