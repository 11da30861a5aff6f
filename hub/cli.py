"""`flask --app hub services create|list|revoke`."""

import click
from flask import Flask
from flask.cli import AppGroup
from sqlalchemy import select

from hub.auth import create_service, revoke_service
from models import Service, db
from models.service import ALL_SCOPES, DEFAULT_SCOPES

services = AppGroup("services", help="Manage the services (API keys) that call Hub.")


@services.command("create")
@click.argument("name")
@click.option("--scopes", default=",".join(DEFAULT_SCOPES), show_default=True,
              help=f"comma-separated, from: {', '.join(ALL_SCOPES)}")
def create(name: str, scopes: str) -> None:
    """Create a service; its API key is the last line printed (shown once)."""
    wanted = [s.strip() for s in scopes.split(",") if s.strip()]
    unknown = sorted(set(wanted) - set(ALL_SCOPES))
    if unknown or not wanted:
        raise click.BadParameter(f"unknown scopes {unknown}; choose from {ALL_SCOPES}")
    if db.session.scalar(select(Service).where(Service.name == name)) is not None:
        raise click.ClickException(f"a service named {name!r} exists already")
    service, key = create_service(name, wanted)
    click.echo(f"created service {service.name} with scopes {service.scopes}")
    click.echo(key)


@services.command("list")
def list_services() -> None:
    """List services, their scopes and whether they are revoked."""
    for service in db.session.scalars(select(Service).order_by(Service.name)):
        status = "revoked" if not service.active else "active"
        click.echo(f"{service.name}\t{service.scopes}\t{status}\thub_{service.key_prefix}_…")


@services.command("revoke")
@click.argument("name")
def revoke(name: str) -> None:
    """Revoke a service's key (its calls get 401 from now on)."""
    if not revoke_service(name):
        raise click.ClickException(f"no active service named {name!r}")
    click.echo(f"revoked {name}")


def init_app(app: Flask) -> None:
    app.cli.add_command(services)
