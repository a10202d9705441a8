"""Trust on add: a repository registered with `repo add` is trusted (user_settings.trusted_repositories).

Two triggers keep the design's one store of trust, ``user_settings.trusted_repositories``,
in step with registration: a new repository's URL is appended to every user's list, and a
new user's list starts with every registered URL. `repo untrust` removes a URL afterwards.

Revision ID: 0200
Revises: 0100
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0200'
down_revision: str | None = '0100'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("""
CREATE FUNCTION agentforge_trust_new_repository() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE user_settings SET trusted_repositories = array_append(trusted_repositories, NEW.url)
   WHERE NOT (NEW.url = ANY(trusted_repositories));
  RETURN NEW;
END $$""")
    op.execute("""
CREATE TRIGGER repositories_trust_on_add AFTER INSERT ON repositories
  FOR EACH ROW EXECUTE FUNCTION agentforge_trust_new_repository()""")
    op.execute("""
CREATE FUNCTION agentforge_seed_trusted_repositories() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.trusted_repositories := ARRAY(
    SELECT DISTINCT u FROM unnest(COALESCE(NEW.trusted_repositories, '{}')
                                  || ARRAY(SELECT url FROM repositories)) AS u ORDER BY u);
  RETURN NEW;
END $$""")
    op.execute("""
CREATE TRIGGER user_settings_seed_trust BEFORE INSERT ON user_settings
  FOR EACH ROW EXECUTE FUNCTION agentforge_seed_trusted_repositories()""")
    # Repositories registered before this revision were added by the user: trusted.
    op.execute("""
UPDATE user_settings SET trusted_repositories = ARRAY(
  SELECT DISTINCT u FROM unnest(trusted_repositories || ARRAY(SELECT url FROM repositories)) AS u ORDER BY u)""")


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS user_settings_seed_trust ON user_settings")
    op.execute("DROP FUNCTION IF EXISTS agentforge_seed_trusted_repositories()")
    op.execute("DROP TRIGGER IF EXISTS repositories_trust_on_add ON repositories")
    op.execute("DROP FUNCTION IF EXISTS agentforge_trust_new_repository()")
