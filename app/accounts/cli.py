"""Command-line tasks: ``flask --app run seed-demo`` and ``create-user``."""

import click
from flask import Flask

from app.accounts.demo import seed_demo
from app.accounts.service import create_user, get_or_create_institution
from app.extensions import db


def init_app(app: Flask) -> None:
    """Register the accounts commands on the app's CLI."""

    @app.cli.command("seed-demo")
    @click.option("--history", is_flag=True, help="also twelve months of synthetic, labelled demo activity")
    def seed_demo_command(history):
        """Create the demo institutions and accounts (idempotent)."""
        result = seed_demo()
        click.echo(f"demo data ready: {result['users']} accounts ({result['users_created']} new), "
                   f"{result['institutions']} institutions, the demo consortium ({result['orgs_created']} new orgs); "
                   "password: huizhen-demo")
        if history:
            from app.metrics.history import seed_history  # the metrics build on accounts, not the reverse

            added = seed_history()
            db.session.commit()
            click.echo(f"demo history: {added} synthetic cases added" if added else "demo history already present")

    @app.cli.command("create-user")
    @click.option("--email", required=True)
    @click.option("--name", required=True)
    @click.option("--specialty", required=True)
    @click.option("--institution", required=True, help="hospital name (created if new)")
    @click.option("--level", default="tertiary", show_default=True)
    @click.option("--role", default="doctor", show_default=True)
    @click.password_option()
    def create_user_command(email, name, specialty, institution, level, role, password):
        """Create an account."""
        inst = get_or_create_institution(name=institution, level=level)
        user = create_user(email=email, password=password, name=name, specialty=specialty,
                           institution=inst, role=role)
        db.session.commit()
        click.echo(f"created user {user.id} <{user.email}>")
