"""``flask --app run dicom-scp`` runs the DICOM listener; ``dicom-peer`` restricts calling AE titles."""

import click
from flask import Flask, current_app

from app.dicomnet import service
from app.extensions import db


def init_app(app: Flask) -> None:
    """Register the DICOM commands."""

    @app.cli.command("dicom-scp")
    def dicom_scp():
        """Run the DICOM C-STORE/C-ECHO listener on DICOM_HOST:DICOM_PORT until interrupted."""
        from app.dicomnet.scp import StorageSCP

        scp = StorageSCP(current_app._get_current_object())
        click.echo(f"DICOM listener on {scp.host}:{scp.port} (Ctrl-C stops it)")
        scp.start(block=True)

    @app.cli.group("dicom-peer")
    def dicom_peer():
        """Restrict the calling AE titles that may send into an institution's cases."""

    @dicom_peer.command("allow")
    @click.argument("institution_id", type=int)
    @click.argument("ae_title")
    def allow(institution_id: int, ae_title: str):
        """Allow a calling AE title for an institution (then only allowed titles may send)."""
        try:
            peer = service.allow_peer(institution_id=institution_id, ae_title=ae_title)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from exc
        db.session.commit()
        click.echo(f"institution {peer.institution_id} allows {peer.ae_title}")

    @dicom_peer.command("remove")
    @click.argument("institution_id", type=int)
    @click.argument("ae_title")
    def remove(institution_id: int, ae_title: str):
        """Stop allowing a calling AE title for an institution."""
        removed = service.remove_peer(institution_id=institution_id, ae_title=ae_title)
        db.session.commit()
        click.echo(f"removed {removed}")

    @dicom_peer.command("list")
    @click.option("--institution-id", type=int, default=None)
    def list_peers(institution_id: int | None):
        """List the allowed calling AE titles."""
        for peer in service.peers(institution_id=institution_id):
            click.echo(f"{peer.institution_id}\t{peer.ae_title}")
